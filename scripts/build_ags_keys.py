#!/usr/bin/env python3
"""Build ``src/datenlabor/data/ags_keys.csv``, the official AGS key list, from the raw sources.

Raw sources (provenance in ``src/datenlabor/data/SOURCES.md``):

* ``data-sources/ags/property-tax_ags.csv`` -- every Gemeinde of the Anlage to the federal
  Mietniveau-Einstufungsverordnung (MietNEinV, BGBl. I 2021 S. 3738, Anlage S. 3739-3885,
  "Maßgeblicher Gebietsstand ist der 25. Januar 2021") as ``Gemeinde;AGS;Mietenstufe``; the
  AGS lost its leading zero there (``8335001``), it is restored here.
* ``data-sources/ags/mietneinv_th_consolidated.csv`` -- the Thüringen part of the consolidated
  (amended) MietNEinV Anlage. The original Anlage lists Thüringen as before the 2019 municipal
  reform (821 entries); the amendment marks 189 of them ``entfallen`` and adds the new
  Gemeinden (``13a``, ``14a``, ...). Thüringen is taken from this file, all other Länder from
  the file above.
* ``data-sources/ags/gv100_regierungsbezirke_2017.ndjson`` -- the Regierungsbezirk records
  (Satzart 20) of the Destatis GV100AD, Gebietsstand 31.03.2017 (unchanged since).
* BKG VG5000 (Stand 01.01.2021) Länder and Kreise: ``<shared>/data/geo/vg5000_*.geojson``;
  their attribute tables are extracted to ``data-sources/ags/vg5000_*_attributes.csv`` so that
  the build also runs without the shared data.

Checks the result (formats, uniqueness, every Gemeinde under a known Kreis, every Kreis under a
known Land) and, when the shared Destatis table 11111-02-01-4 (number of Gemeinden per Kreis,
31.12.2022) is present, prints the per-Kreis differences to it.

Usage: ``.venv/bin/python scripts/build_ags_keys.py [--shared DIR] [--check-only]``
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import os
import sys
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RAW = REPO / "data-sources" / "ags"
OUT = REPO / "src" / "datenlabor" / "data" / "ags_keys.csv"
GZIP_ABOVE = 500_000  # bytes; the package data is gzipped above this size

LEVEL_BY_LENGTH = {2: "land", 3: "regierungsbezirk", 5: "kreis", 8: "gemeinde"}
THUERINGEN = "16"


def _read_geo(shared: Path | None) -> tuple[list[dict], list[dict]]:
    """VG5000 Länder and Kreise attributes (ARS, GEN, BEZ), from the GeoJSON or the extracts."""
    result = []
    for layer in ("laender", "kreise"):
        extract = RAW / f"vg5000_{layer}_attributes.csv"
        geojson = shared / "geo" / f"vg5000_{layer}.geojson" if shared else None
        if geojson and geojson.exists():
            features = json.loads(geojson.read_text(encoding="utf-8"))["features"]
            rows = [{k: f["properties"][k] for k in ("ARS", "GEN", "BEZ")} for f in features]
            # Länder have several features (land/water parts, e.g. "Bayern (Bodensee)"):
            # dissolve by ARS, keeping the plain name of the land part.
            best: dict[str, dict] = {}
            for r in sorted(rows, key=lambda r: (r["ARS"], "(" in r["GEN"], r["GEN"])):
                best.setdefault(r["ARS"], r)
            rows = list(best.values())
            with extract.open("w", encoding="utf-8", newline="") as fh:
                writer = csv.DictWriter(fh, ["ARS", "GEN", "BEZ"], lineterminator="\n")
                writer.writeheader()
                writer.writerows(rows)
        with extract.open(encoding="utf-8", newline="") as fh:
            result.append(list(csv.DictReader(fh)))
    return result[0], result[1]


def _read_gemeinden() -> list[tuple[str, str]]:
    """(AGS, name) of all Gemeinden: MietNEinV Anlage, Thüringen from the amended version."""
    out = []
    with (RAW / "property-tax_ags.csv").open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter=";"):
            ags = row["AGS"].strip().zfill(8)
            if not ags.startswith(THUERINGEN):
                out.append((ags, " ".join(row["Gemeinde"].split())))
    with (RAW / "mietneinv_th_consolidated.csv").open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh, delimiter=";"):
            if row["Gemeindenamen"] != "entfallen":
                out.append((row["AGS"], row["Gemeindenamen"]))
    return out


def build(shared: Path | None) -> list[tuple[str, str, str]]:
    laender, kreise = _read_geo(shared)
    rows: list[tuple[str, str, str]] = [(r["ARS"], "land", r["GEN"]) for r in laender]
    with (RAW / "gv100_regierungsbezirke_2017.ndjson").open(encoding="utf-8") as fh:
        for line in fh:
            rec = json.loads(line)
            rows.append((rec["schlüssel"]["nummer"], "regierungsbezirk", rec["name"]))
    rows += [(r["ARS"], "kreis", f"{r['GEN']}, {r['BEZ']}") for r in kreise]
    rows += [(ags, "gemeinde", name) for ags, name in _read_gemeinden()]
    rows.sort()
    _check(rows)
    return rows


def _check(rows: list[tuple[str, str, str]]) -> None:
    keys = [k for k, _, _ in rows]
    dup = [k for k, n in Counter(keys).items() if n > 1]
    if dup:
        raise SystemExit(f"duplicate keys: {dup[:10]}")
    by_level: dict[str, set[str]] = {}
    for key, level, name in rows:
        if not (key.isascii() and key.isdigit()) or LEVEL_BY_LENGTH.get(len(key)) != level:
            raise SystemExit(f"bad key {key!r} for level {level}")
        if not ("01" <= key[:2] <= "16") or not name.strip():
            raise SystemExit(f"bad Land or empty name: {key!r} {name!r}")
        by_level.setdefault(level, set()).add(key)
    if len(by_level["land"]) != 16:
        raise SystemExit(f"expected 16 Länder, got {len(by_level['land'])}")
    orphans = [k for k in by_level["gemeinde"] if k[:5] not in by_level["kreis"]]
    orphans += [k for k in by_level["kreis"] if k[:2] not in by_level["land"]]
    if orphans:
        raise SystemExit(f"keys without parent: {orphans[:10]}")


def compare_with_destatis(rows: list[tuple[str, str, str]], shared: Path) -> None:
    """Print per-Kreis differences to Destatis 11111-02-01-4 (Gemeinden per Kreis, 31.12.2022)."""
    path = shared / "genesis" / "ffcsv" / "11111-02-01-4_flat_2024.csv"
    if not path.exists():
        print(f"(no Destatis comparison: {path} not found)")
        return
    ref: dict[str, int] = {}
    with path.open(encoding="utf-8", newline="") as fh:
        for rec in csv.reader(fh, delimiter=";"):
            if len(rec[7]) == 5 and rec[7].isdigit() and rec[9] not in ("-", ""):
                ref[rec[7]] = int(rec[9])
    ours = Counter(k[:5] for k, level, _ in rows if level == "gemeinde")
    diffs = {k: (ours[k], ref.get(k, 0)) for k in sorted(ours) if ours[k] != ref.get(k, 0)}
    print(f"Gemeinden: {sum(ours.values())} here, {sum(ref.values())} at Destatis 31.12.2022")
    print("Kreise whose number of Gemeinden differs (here, Destatis 31.12.2022):")
    for k, (a, b) in diffs.items():
        print(f"  {k}: {a} vs {b}")


def write(rows: list[tuple[str, str, str]]) -> Path:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["key", "level", "name"])
    writer.writerows(rows)
    data = buf.getvalue().encode("utf-8")
    gz = OUT.with_name(OUT.name + ".gz")
    if len(data) > GZIP_ABOVE:
        gz.write_bytes(gzip.compress(data, mtime=0))
        OUT.unlink(missing_ok=True)
        return gz
    OUT.write_bytes(data)
    gz.unlink(missing_ok=True)
    return OUT


def main(argv: list[str] | None = None) -> int:
    default_shared = os.environ.get("DATENLABOR_SHARED_DATA", str(REPO.parent / "shared" / "data"))
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", default=default_shared, help="the shared/data directory")
    parser.add_argument("--check-only", action="store_true", help="build and check, write nothing")
    args = parser.parse_args(argv)
    shared = Path(args.shared) if Path(args.shared).exists() else None
    rows = build(shared)
    counts = Counter(level for _, level, _ in rows)
    print("keys per level:", dict(sorted(counts.items())))
    if shared:
        compare_with_destatis(rows, shared)
    if not args.check_only:
        print("written:", write(rows).relative_to(REPO))
    return 0


if __name__ == "__main__":
    sys.exit(main())
