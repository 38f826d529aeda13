"""Ingest benchmark: a ~1 GB German-style CSV into Parquet, Datenlabor vs pandas vs DuckDB.

Usage (from the repository root)::

    .venv/bin/python bench/ingest.py [--size-mb 1024] [--repeat 3] [--euro] [--keep]
                                     [--data-dir bench/_data] [--json PATH|-] [--profile]

The test file is generated once and cached in ``--data-dir`` (git-ignored): cp1252, ``;``
separator, CRLF line ends (``--newline lf`` for LF), decimal comma with thousands groups
(``1.234,56``), dates ``dd.mm.yyyy``, an 8-digit AGS text column with leading zeros, text
columns with umlauts and ß, integers and some empty cells. Without ``--euro`` no byte lies in
0x80-0x9F, so the file is also valid latin-1; with ``--euro`` the free-text column also holds
``€`` (0x80) and ``–`` (0x96), which DuckDB's latin-1 decoder refuses.

Every contender runs in a fresh subprocess (so peak RSS is its own), the contenders take turns
run by run (so machine noise spreads over all of them), and the medians are reported. Sizes
are MiB (2**20 bytes), throughput is file size / wall time of the work in MiB/s. Timing starts
after the imports; the result checks (row count, text round trip, sums) run after the timer
stopped and are not part of the time.

What each writes (printed per contender): Datenlabor zstd Parquet in 256 MB files with
122,880-row groups (its staging COPY); DuckDB one zstd file, default row groups (the same
codec since run 5; ``--duckdb-compression snappy`` gives DuckDB's default as in runs 1-4);
pandas one snappy file (pyarrow's default). ``--profile`` also times the version's quality
report again after the ingest, over the rows only and with the Parquet footers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
MiB = 1024 * 1024
CONTENDERS = ("datenlabor", "pandas", "duckdb")
LABELS = {
    "datenlabor": "Datenlabor ingest",
    "pandas": "pandas read_csv + to_parquet",
    "duckdb": "DuckDB read_csv -> COPY parquet",
}
GOALS = {"vs_duckdb": 0.7, "vs_pandas": 5.0, "rss_mib": 1024.0}
GENERATOR_VERSION = 2  # bump when the generated content changes (invalidates the cache)
BLOCK_ROWS = 250_000

# (AGS, Gemeinde, Einwohner): real keys, several with a leading zero and with umlauts or ß.
GEMEINDEN = [
    ("01001000", "Flensburg", 91_113),
    ("01002000", "Kiel", 246_601),
    ("01003000", "Lübeck", 216_530),
    ("01004000", "Neumünster", 79_905),
    ("02000000", "Hamburg", 1_852_478),
    ("03101000", "Braunschweig", 251_804),
    ("03159016", "Göttingen", 118_946),
    ("03241001", "Hannover", 545_045),
    ("03355022", "Lüneburg", 77_601),
    ("03404000", "Osnabrück", 167_366),
    ("04011000", "Bremen", 569_352),
    ("05111000", "Düsseldorf", 629_047),
    ("05116000", "Mönchengladbach", 268_465),
    ("05315000", "Köln", 1_084_831),
    ("05358024", "Jülich", 32_614),
    ("05515000", "Münster", 320_946),
    ("05913000", "Dortmund", 595_471),
    ("06412000", "Frankfurt am Main", 773_068),
    ("06531005", "Gießen", 92_550),
    ("07111000", "Koblenz", 115_298),
    ("07315000", "Mainz", 220_552),
    ("08111000", "Stuttgart", 632_865),
    ("08416041", "Tübingen", 92_811),
    ("08435059", "Überlingen", 23_067),
    ("09162000", "München", 1_512_491),
    ("09362000", "Regensburg", 159_465),
    ("09563000", "Fürth", 131_433),
    ("09564000", "Nürnberg", 523_026),
    ("09663000", "Würzburg", 128_246),
    ("10041100", "Saarbrücken", 181_959),
    ("11000000", "Berlin", 3_755_251),
    ("12054000", "Potsdam", 185_750),
    ("13003000", "Rostock", 209_061),
    ("14612000", "Dresden", 563_311),
    ("14713000", "Leipzig", 616_093),
    ("15002000", "Halle (Saale)", 238_061),
    ("15084550", "Weißenfels", 39_658),
    ("16051000", "Erfurt", 214_969),
    ("16055000", "Weimar", 65_138),
]
BEHOERDEN = [
    "Bürgeramt",
    "Ordnungsamt",
    "Straßenverkehrsbehörde",
    "Jugendamt",
    "Gesundheitsamt",
    "Bauaufsichtsbehörde",
    "Ausländerbehörde",
    "Standesamt",
    "Sozialamt",
    "Kämmerei",
    "Führerscheinstelle",
    "Gewerbeaufsichtsamt",
]
BEMERKUNGEN = [
    "Antrag vollständig",
    "Unterlagen nachgereicht",
    "Rückfrage beim Bürger",
    "Gebühr erlassen",
    "Frist verlängert",
    "Prüfung durch Sachgebiet Straßenbau",
    "Zuständigkeit geklärt",
    "Bescheid erteilt",
    "Widerspruch eingelegt",
    "Größe der Fläche geschätzt",
    "Anhörung gemäß § 28 VwVfG",
    "Außendienst erforderlich",
    "Übermittlung an Landesamt",
    "Schlüsselübergabe erfolgt",
    "Maßnahme abgeschlossen",
    "Öffentliche Bekanntmachung",
    "Zahlung über Stadtkasse",
    "Ermäßigung gewährt",
    "Grundstück in Hanglage",
    "Nachweis fehlt",
]
# Only with --euro: cp1252 bytes 0x80 (€) and 0x96 (–).
BEMERKUNGEN_EURO = [
    "Gebühr 25 € – bezahlt",
    "Zuschuss bis 1.500 € bewilligt",
    "Rückzahlung – Frist 14 Tage",
    "Pauschale 80 € erhoben",
    "Säumniszuschlag 12,50 €",
]
COLUMNS = [
    "id",
    "ags",
    "gemeinde",
    "behoerde",
    "datum",
    "betrag",
    "anzahl",
    "einwohner",
    "anteil",
    "bemerkung",
]
TEXT_COLUMNS = ["ags", "gemeinde", "behoerde", "bemerkung"]


# -- test data -------------------------------------------------------------------------------


def _grouped(values: Any) -> Any:
    """German thousands groups for non-negative integers: 1234567 -> '1.234.567'."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    v = np.asarray(values, dtype=np.int64)

    def pad3(x: Any) -> Any:
        return pc.utf8_lpad(pc.cast(pa.array(x), pa.string()), width=3, padding="0")

    g0, g1, g2 = v % 1000, (v // 1000) % 1000, v // 1_000_000
    plain = pc.cast(pa.array(v), pa.string())
    thousands = pc.binary_join_element_wise(
        pc.cast(pa.array(v // 1000), pa.string()), pad3(g0), "."
    )
    millions = pc.binary_join_element_wise(
        pc.cast(pa.array(g2), pa.string()), pad3(g1), pad3(g0), "."
    )
    out = pc.if_else(pa.array(v >= 1000), thousands, plain)
    return pc.if_else(pa.array(v >= 1_000_000), millions, out)


def _block(rng: Any, first_id: int, n: int, euro: bool) -> dict[str, Any]:
    """One block of ``n`` rows as pyarrow string columns (None = empty cell) plus facts."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    def s(x: Any) -> Any:
        return pc.cast(pa.array(x), pa.string())

    def blank(arr: Any, share: float) -> Any:
        mask = pa.array(rng.random(n) < share)
        return pc.if_else(mask, pa.scalar(None, pa.string()), arr)

    g = rng.integers(0, len(GEMEINDEN), n)
    ags = pa.array([a for a, _, _ in GEMEINDEN]).take(pa.array(g))
    gemeinde = pa.array([name for _, name, _ in GEMEINDEN]).take(pa.array(g))
    einwohner = _grouped([e for _, _, e in GEMEINDEN]).take(pa.array(g))
    prefix = pa.array(BEHOERDEN).take(pa.array(rng.integers(0, len(BEHOERDEN), n)))
    behoerde = pc.binary_join_element_wise(prefix, gemeinde, " ")

    days = np.datetime64("2015-01-01") + rng.integers(0, 3652, n).astype("timedelta64[D]")
    datum = blank(pc.strftime(pa.array(days), format="%d.%m.%Y"), 0.005)

    # betrag: log-normal amounts in cents, 2% negative, up to ~10 million euros.
    cents = np.minimum((np.exp(rng.normal(8.0, 2.0, n)) * 100).astype(np.int64), 999_999_999)
    neg = rng.random(n) < 0.02
    euros = _grouped(cents // 100)
    frac = pc.utf8_lpad(s(cents % 100), width=2, padding="0")
    amount = pc.binary_join_element_wise(euros, frac, ",")
    amount = pc.if_else(pa.array(neg), pc.binary_join_element_wise("-", amount, ""), amount)
    empty_betrag = rng.random(n) < 0.01
    betrag = pc.if_else(pa.array(empty_betrag), pa.scalar(None, pa.string()), amount)

    anzahl_v = rng.integers(0, 500, n)
    empty_anzahl = rng.random(n) < 0.01
    anzahl = pc.if_else(pa.array(empty_anzahl), pa.scalar(None, pa.string()), s(anzahl_v))

    permille = rng.integers(0, 100_000, n)  # anteil: 0,000 .. 99,999 (decimal comma, no groups)
    anteil = pc.binary_join_element_wise(
        s(permille // 1000), pc.utf8_lpad(s(permille % 1000), width=3, padding="0"), ","
    )

    pool = BEMERKUNGEN + (BEMERKUNGEN_EURO if euro else [])
    first = rng.integers(0, len(BEMERKUNGEN), n)
    if euro:  # 5% of the rows start with a fragment holding € or –
        special = rng.random(n) < 0.05
        first = np.where(special, rng.integers(len(BEMERKUNGEN), len(pool), n), first)
    second = rng.integers(0, len(BEMERKUNGEN), n)
    f1 = pa.array(pool).take(pa.array(first))
    f2 = pa.array(pool).take(pa.array(second))
    both = pc.binary_join_element_wise(f1, f2, ", ")
    bemerkung = pc.if_else(pa.array(rng.random(n) < 0.5), both, f1)
    bemerkung = blank(bemerkung, 0.4)

    ids = s(np.arange(first_id, first_id + n, dtype=np.int64))
    cols = {
        "id": ids,
        "ags": ags,
        "gemeinde": gemeinde,
        "behoerde": behoerde,
        "datum": datum,
        "betrag": betrag,
        "anzahl": anzahl,
        "einwohner": einwohner,
        "anteil": anteil,
        "bemerkung": bemerkung,
    }

    def count(arr: Any, needle: str) -> int:
        return int(pc.sum(pc.match_substring(arr, needle)).as_py() or 0)

    signed = np.where(neg, -cents, cents)
    facts = {
        "rows": n,
        "sum_anzahl": int(anzahl_v[~empty_anzahl].sum()),
        "sum_einwohner": int(np.array([e for _, _, e in GEMEINDEN], dtype=np.int64)[g].sum()),
        "n_betrag": int((~empty_betrag).sum()),
        "sum_betrag_cents": int(signed[~empty_betrag].sum()),
        "n_datum": n - datum.null_count,
        "n_bemerkung": n - bemerkung.null_count,
        "n_gemeinde_umlaut_ue": count(gemeinde, "ü"),
        "n_behoerde_sz": count(behoerde, "ß"),
        "n_bemerkung_sz": count(bemerkung, "ß"),
        "n_bemerkung_euro": count(bemerkung, "€"),
        "n_bemerkung_dash": count(bemerkung, "–"),
    }
    return {"cols": cols, "facts": facts}


def _samples(cols: dict[str, Any], euro: bool) -> list[dict[str, Any]]:
    """A few rows (text columns) to compare after the round trip: the first row, the first
    row with ß and, with --euro, the first with € in the free text."""
    import pyarrow.compute as pc

    picks = {0}
    for needle in ["ß", "ä"] + (["€", "–"] if euro else []):
        hits = pc.indices_nonzero(
            pc.fill_null(pc.match_substring(cols["bemerkung"], needle), False)
        )
        if len(hits):
            picks.add(hits[0].as_py())
    return [
        {"id": int(cols["id"][i].as_py()), **{c: cols[c][i].as_py() or None for c in TEXT_COLUMNS}}
        for i in sorted(picks)
    ]


def generate(
    path: Path, *, size_mib: float, euro: bool, newline: str, seed: int = 20240501
) -> dict:
    """Write the test CSV (cp1252) in vectorised blocks; return its facts for the checks."""
    import numpy as np
    import pyarrow.compute as pc

    eol = "\r\n" if newline == "crlf" else "\n"
    target = int(size_mib * MiB)
    facts: dict[str, int] = {}
    samples: list[dict[str, Any]] = []
    tmp = path.with_suffix(".partial")
    start = time.perf_counter()
    # ~115 bytes per row: start with a block that does not overshoot a small target.
    written, next_id, block_no, rows = 0, 1, 0, max(1, min(BLOCK_ROWS, target // 115))
    with tmp.open("wb") as fh:
        written += fh.write((";".join(COLUMNS) + eol).encode("cp1252"))
        while written < target:
            rng = np.random.default_rng([seed, block_no])
            block = _block(rng, next_id, rows, euro)
            cols = block["cols"]
            line = pc.binary_join_element_wise(
                *[cols[c] for c in COLUMNS], ";", null_handling="replace", null_replacement=""
            )
            line = pc.binary_join_element_wise(line, "", eol)
            # The UTF-8 bytes of all lines are one contiguous buffer: re-encode it as cp1252.
            offsets = np.frombuffer(line.buffers()[1], dtype=np.int32)
            lo, hi = offsets[line.offset], offsets[line.offset + len(line)]
            raw = memoryview(line.buffers()[2])[lo:hi]
            data = bytes(raw).decode("utf-8").encode("cp1252")
            fh.write(data)
            written += len(data)
            for k, v in block["facts"].items():
                facts[k] = facts.get(k, 0) + v
            if block_no < 2:
                samples += _samples(cols, euro)
            last = {
                "id": int(cols["id"][-1].as_py()),
                **{c: cols[c][-1].as_py() or None for c in TEXT_COLUMNS},
            }
            next_id += rows
            block_no += 1
            # Size the next block so that the file ends close to the target size.
            per_row = len(data) / rows
            rows = max(1, min(BLOCK_ROWS, int((target - written) / per_row) + 1))
            del line, raw, data, cols, block  # keep peak memory low
    tmp.replace(path)
    samples.append(last)
    meta = {
        "generator_version": GENERATOR_VERSION,
        "size_mib": size_mib,
        "euro": euro,
        "newline": newline,
        "seed": seed,
        "bytes": path.stat().st_size,
        "columns": COLUMNS,
        "facts": facts,
        "samples": samples,
        "seconds": round(time.perf_counter() - start, 1),
    }
    return meta


def ensure_data(
    data_dir: Path, *, size_mib: float, euro: bool, newline: str, regenerate: bool
) -> tuple[Path, dict]:
    """The cached test file for these parameters, generated if missing or stale."""
    data_dir.mkdir(parents=True, exist_ok=True)
    stem = f"german_{size_mib:g}mib_{newline}{'_euro' if euro else ''}"
    path, meta_path = data_dir / f"{stem}.csv", data_dir / f"{stem}.json"
    if not regenerate and path.is_file() and meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if (
            meta.get("generator_version") == GENERATOR_VERSION
            and meta.get("bytes") == path.stat().st_size
        ):
            return path, meta
    print(
        f"generating {path} ({size_mib:g} MiB, euro={euro}, newline={newline}) ...", file=sys.stderr
    )
    meta = generate(path, size_mib=size_mib, euro=euro, newline=newline)
    meta_path.write_text(json.dumps(meta, indent=1, ensure_ascii=False))
    print(
        f"  {meta['bytes'] / MiB:.0f} MiB, {meta['facts']['rows']:,} rows in {meta['seconds']} s",
        file=sys.stderr,
    )
    return path, meta


# -- contenders (each runs in its own subprocess) --------------------------------------------


def _maxrss_mib() -> float:
    # Linux reports ru_maxrss in KiB: the kernel's high-water mark of this process.
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class _Clock:
    """Wall time and CPU time (user + system, all threads) of this process since start."""

    def __init__(self) -> None:
        self.w0, self.c0 = time.perf_counter(), os.times()

    def stop(self) -> dict[str, float]:
        c1 = os.times()
        cpu = (c1.user - self.c0.user) + (c1.system - self.c0.system)
        return {"wall_s": time.perf_counter() - self.w0, "cpu_s": cpu}


def _check_sql(rel: str) -> str:
    return (
        "SELECT count(*) AS rows, sum(anzahl) AS sum_anzahl, sum(einwohner) AS sum_einwohner, "
        "count(betrag) AS n_betrag, "
        "sum(betrag) AS sum_betrag, count(datum) AS n_datum, count(bemerkung) AS n_bemerkung, "
        "count_if(contains(gemeinde, 'ü')) AS n_gemeinde_umlaut_ue, "
        "count_if(contains(behoerde, 'ß')) AS n_behoerde_sz, "
        "count_if(contains(bemerkung, 'ß')) AS n_bemerkung_sz, "
        "count_if(contains(bemerkung, '€')) AS n_bemerkung_euro, "
        "count_if(contains(bemerkung, '–')) AS n_bemerkung_dash, "
        "count_if(contains(concat(gemeinde, behoerde, bemerkung), chr(65533))) AS n_replacement "
        f"FROM {rel}"
    )


def _check(query: Any, rel: str, meta: dict) -> dict:
    """Compare a contender's output with what was generated; ``query(sql)`` -> pyarrow Table."""
    want = meta["facts"]
    got = query(_check_sql(rel)).to_pylist()[0]
    problems = []
    for key in (
        "rows",
        "n_betrag",
        "n_datum",
        "n_bemerkung",
        "n_gemeinde_umlaut_ue",
        "n_behoerde_sz",
        "n_bemerkung_sz",
        "n_bemerkung_euro",
        "n_bemerkung_dash",
    ):
        if int(got[key] or 0) != want[key]:
            problems.append(f"{key}: got {got[key]}, expected {want[key]}")
    for key in ("sum_anzahl", "sum_einwohner"):
        if round(float(got[key] or 0)) != want[key]:
            problems.append(f"{key}: got {got[key]}, expected {want[key]}")
    if abs(float(got["sum_betrag"] or 0) - want["sum_betrag_cents"] / 100) > 1.0:
        problems.append(
            f"sum_betrag: got {got['sum_betrag']}, expected {want['sum_betrag_cents'] / 100}"
        )
    if got["n_replacement"]:
        problems.append(f"{got['n_replacement']} rows hold U+FFFD (text decoded wrongly)")
    ids = ", ".join(str(s["id"]) for s in meta["samples"])
    rows = query(f"SELECT id, {', '.join(TEXT_COLUMNS)} FROM {rel} WHERE id IN ({ids}) ORDER BY id")
    by_id = {int(r["id"]): r for r in rows.to_pylist()}
    for s in meta["samples"]:
        r = by_id.get(s["id"])
        if r is None:
            problems.append(f"row id {s['id']} missing")
            continue
        for c in TEXT_COLUMNS:
            if (r[c] or None) != s[c]:
                problems.append(f"id {s['id']} {c}: got {r[c]!r}, expected {s[c]!r}")
    return {"ok": not problems, "problems": problems[:10], "rows": int(got["rows"])}


def _parquet_types(files: list[Path]) -> dict[str, str]:
    import pyarrow.parquet as pq

    return {f.name: str(f.type) for f in pq.read_schema(files[0])}


def _parquet_layout(files: list[Path]) -> dict[str, Any]:
    """What a contender wrote: codecs, files, row groups, writer (for a like-for-like check)."""
    import pyarrow.parquet as pq

    codecs: set[str] = set()
    groups = 0
    writer = ""
    for f in files:
        meta = pq.read_metadata(f)
        writer = meta.created_by or ""
        groups += meta.num_row_groups
        for i in range(meta.num_row_groups):
            rg = meta.row_group(i)
            codecs |= {rg.column(j).compression for j in range(rg.num_columns)}
    return {
        "codecs": sorted(codecs),
        "files": len(files),
        "row_groups": groups,
        "writer": writer.split(" (")[0],
    }


def run_datenlabor(csv: Path, work: Path, meta: dict) -> dict:
    import datenlabor

    t0 = time.perf_counter()
    pool = datenlabor.open(work / "pool")
    t_open = time.perf_counter() - t0
    clock = _Clock()
    info = pool.ingest(csv, dataset="bench")
    timed = clock.stop()
    rss = _maxrss_mib()
    check = _check(pool.query, "bench", meta)
    rss_checks = _maxrss_mib()  # the checks' queries run through pool.query (SqlSession)
    files = sorted((work / "pool" / "tables").glob("*/*.parquet"))
    d = info.detection or {}
    path = f"detected {d.get('encoding')}: " + (
        f"transcoded {d['transcoded']} first" if d.get("transcoded") else "DuckDB reads it directly"
    )
    return {
        **timed,
        "open_s": t_open,
        "maxrss_mib": rss,
        "maxrss_after_checks_mib": rss_checks,
        "check": check,
        "types": _parquet_types(files) if files else {},
        "output_mib": sum(f.stat().st_size for f in files) / MiB,
        "layout": _parquet_layout(files),
        "path": path,
        "detection": {
            k: d.get(k)
            for k in ("encoding", "delimiter", "decimal", "thousands", "date_format", "columns")
        },
        "quality_issues": [
            (i["type"], i["column"], i["count"])
            for i in pool.dataset("bench").quality().get("issues", [])
        ],
    }


def run_pandas(csv: Path, work: Path, meta: dict) -> dict:
    import duckdb
    import pandas as pd

    out = work / "pandas.parquet"
    clock = _Clock()
    df = pd.read_csv(
        csv,
        sep=";",
        encoding="cp1252",
        decimal=",",
        thousands=".",
        dtype={"ags": str},
        parse_dates=["datum"],
        dayfirst=True,
    )
    df.to_parquet(out)  # pyarrow's default codec: snappy
    timed = clock.stop()
    rss = _maxrss_mib()
    del df
    con = duckdb.connect()
    check = _check(lambda sql: con.sql(sql).to_arrow_table(), f"read_parquet('{out}')", meta)
    return {
        **timed,
        "maxrss_mib": rss,
        "check": check,
        "types": _parquet_types([out]),
        "output_mib": out.stat().st_size / MiB,
        "layout": _parquet_layout([out]),
        "path": "C engine, encoding cp1252",
    }


def _encodings_extension() -> Path:
    import duckdb
    import duckdb_extension_encodings

    root = (
        Path(duckdb_extension_encodings.__file__).parent / "extensions" / f"v{duckdb.__version__}"
    )
    return root / "encodings.duckdb_extension"


# DuckDB 1.5.5's sniffer ignores thousands='.' when it detects types: "1.234,56" and
# "214.969" stay VARCHAR. An analyst who wants numbers names those columns, so we do too
# (the other contenders deliver them as numbers; this keeps the comparison like for like).
DUCKDB_TYPES = "{'ags': 'VARCHAR', 'betrag': 'DOUBLE', 'einwohner': 'BIGINT'}"
# The same codec Datenlabor's staging COPY writes (zstd; DuckDB's default would be snappy),
# so both write the same kind of file. Row group size (122,880 rows), threads and insertion
# order are DuckDB's defaults in both. --duckdb-compression snappy gives the baseline of
# runs 1-4 in bench/RESULTS.md (passed to the child through this environment variable).
DUCKDB_COMPRESSION = "zstd"
COMPRESSION_ENV = "DATENLABOR_BENCH_DUCKDB_COMPRESSION"


def run_duckdb(csv: Path, work: Path, meta: dict) -> dict:
    import duckdb

    out = work / "duckdb.parquet"
    con = duckdb.connect()
    compression = os.environ.get(COMPRESSION_ENV, DUCKDB_COMPRESSION)

    def copy(encoding: str) -> None:
        con.execute(
            f"COPY (SELECT * FROM read_csv('{csv}', delim=';', decimal_separator=',', "
            f"thousands='.', dateformat='%d.%m.%Y', encoding='{encoding}', "
            f"types={DUCKDB_TYPES})) TO '{out}' (FORMAT parquet, COMPRESSION {compression})"
        )

    failed: dict[str, Any] = {}
    clock = _Clock()
    try:
        copy("latin-1")
        path = "encoding='latin-1' (built-in decoder)"
    except duckdb.Error as exc:
        # Bytes 0x80-0x9F: the built-in latin-1 decoder refuses the file. Fall back to the
        # encodings extension's CP1252 decoder; only the successful attempt is timed.
        failed = {
            "latin1_failed_after_s": round(clock.stop()["wall_s"], 2),
            "latin1_error": str(exc).strip().splitlines()[0][:200],
        }
        out.unlink(missing_ok=True)
        clock = _Clock()
        con.execute(f"LOAD '{_encodings_extension()}'")
        copy("CP1252")
        path = "encoding='CP1252' (encodings extension; latin-1 refused the file)"
    timed = clock.stop()
    rss = _maxrss_mib()
    check = _check(lambda sql: con.sql(sql).to_arrow_table(), f"read_parquet('{out}')", meta)
    return {
        **timed,
        "maxrss_mib": rss,
        "check": check,
        "types": _parquet_types([out]),
        "output_mib": out.stat().st_size / MiB,
        "layout": _parquet_layout([out]),
        "path": path,
        **failed,
    }


# -- phase breakdown of a Datenlabor ingest ----------------------------------------------------


class _PhaseTimer:
    """Wraps functions by dotted name to record wall and CPU time per call (nesting kept)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.missing: list[str] = []
        self.depth = 0
        self.active = True  # False: wrapped functions run untimed

    def wrap(self, owner: Any, attr: str, label: str, *, background: bool = False) -> None:
        """Time calls of ``owner.attr``; ``background`` for a function that runs in a helper
        thread beside the other phases (its CPU is that thread's, it is not nested)."""
        import functools
        import threading

        original = getattr(owner, attr, None)
        if original is None:  # the code moved on: time what exists, say what did not
            self.missing.append(f"{getattr(owner, '__name__', owner)}.{attr}")
            return
        timer = self

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            if not timer.active:
                return original(*args, **kwargs)
            side = background or threading.current_thread() is not threading.main_thread()
            event: dict[str, Any] = {"label": label, "depth": 0 if side else timer.depth}
            if side:
                event["background"] = True
            timer.events.append(event)
            if not side:
                timer.depth += 1
            w0 = time.perf_counter()
            c0 = time.thread_time() if side else sum(os.times()[:2])
            try:
                return original(*args, **kwargs)
            finally:
                c1 = time.thread_time() if side else sum(os.times()[:2])
                event["wall_s"] = time.perf_counter() - w0
                event["cpu_s"] = c1 - c0
                if not side:
                    timer.depth -= 1

        setattr(owner, attr, timed)


def run_profile(csv: Path, work: Path, meta: dict) -> dict:
    """One Datenlabor ingest with its phases timed by wrapping the functions that run them."""
    import datenlabor
    import datenlabor.pool.delta as delta
    import datenlabor.pool.ingest as ingest
    import datenlabor.pool.ingest.csv as csvmod
    import datenlabor.pool.ingest.reading as reading
    import datenlabor.pool.ingest.source as source
    import datenlabor.pool.pool as poolmod
    import datenlabor.pool.quality as quality
    import datenlabor.pool.schema as schema

    t = _PhaseTimer()
    # The scan runs in a helper thread while the file is sniffed and staged (text files
    # DuckDB reads directly), or first, in the main thread (other formats, transcoding).
    t.wrap(source, "scan", "1 scan: SHA-256 + UTF-8/cp1252 check (source.scan)")
    t.wrap(ingest, "scan", "1 scan: SHA-256 + UTF-8/cp1252 check (source.scan)")
    t.wrap(ingest, "guess", "1 encoding guess from the sample (source.guess)")
    t.wrap(reading.Reading, "settle", "4 wait for the background scan (Reading.settle)")
    t.wrap(ingest, "_genesis_kind", "  GENESIS header check (64 KiB)")
    t.wrap(csvmod, "transcode", "2 transcode to UTF-8 (source.transcode)")
    t.wrap(csvmod, "read_head", "3 read + decode sample (read_head)")
    t.wrap(csvmod, "_sniff", "3 DuckDB sniff_csv on sample")
    t.wrap(csvmod, "_decide_types", "3 type detection on sample")
    t.wrap(delta, "delta_select", "4 DESCRIBE of the CSV relation")
    t.wrap(delta, "stage", "4 DuckDB COPY -> Parquet staging (delta.stage)")
    t.wrap(delta, "commit", "5 Delta commit (delta.commit)")
    t.wrap(delta, "snapshot_files", "5 Delta snapshot files")
    t.wrap(schema, "infer_table_schema", "6 schema inference (schema.infer_table_schema)")
    t.wrap(schema, "_semantics", "  AGS/status semantics aggregate")
    t.wrap(poolmod, "quality_report", "7 quality report (quality.quality_report)")
    t.wrap(quality._Aggregate, "run", "  aggregate pass")
    # Older and newer layouts of quality.py: whichever exists is timed.
    t.wrap(quality, "_check_keys", "  AGS key check")
    t.wrap(quality, "_primary_key", "  primary key check")
    report_cls = getattr(quality, "_Report", None)
    if report_cls is not None:
        t.wrap(report_cls, "_run_grouped", "  first pass + value pass (text columns, footers)")
        t.wrap(report_cls, "_keys", "  AGS key check")
        t.wrap(report_cls, "_primary_key", "  primary key check")
    t.wrap(poolmod.Pool, "_record", "8 metadata store record (SQLite)")
    pool = datenlabor.open(work / "pool")
    w0, c0 = time.perf_counter(), os.times()
    pool.ingest(csv, dataset="bench")
    c1 = os.times()
    wall = time.perf_counter() - w0
    cpu = (c1.user - c0.user) + (c1.system - c0.system)
    rss = _maxrss_mib()
    t.active = False
    return {
        "wall_s": wall,
        "cpu_s": cpu,
        "maxrss_mib": rss,
        "events": t.events,
        "not_timed": t.missing,
        "quality_variants": _quality_variants(pool),
    }


def _quality_variants(pool: Any) -> dict[str, Any]:
    """The version's quality report again, after the timed ingest: over the rows only, and with
    the Parquet footers of the version's files (``quality_report(files=...)``)."""
    import inspect

    from datenlabor.pool import quality
    from datenlabor.pool.schema import infer_table_schema
    from datenlabor.query.connection import connect

    files, _ = pool.dataset("bench").files()
    con = connect(memory_limit=pool.settings.duckdb_memory)
    listed = ", ".join("'" + str(f).replace("'", "''") + "'" for f in files)
    con.execute(f"CREATE TEMP VIEW version_rows AS SELECT * FROM read_parquet([{listed}])")
    schema = infer_table_schema(con, "version_rows")
    variants: dict[str, Any] = {}
    kinds: dict[str, dict[str, Any]] = {"rows only": {}}
    if "files" in inspect.signature(quality.quality_report).parameters:
        kinds["with footers"] = {"files": files}
    reports = {}
    for _ in range(2):  # taking turns; the faster of two runs each
        for label, kw in kinds.items():
            w0, c0 = time.perf_counter(), os.times()
            reports[label] = quality.quality_report(con, "version_rows", schema=schema, **kw)
            c1 = os.times()
            run = {
                "wall_s": time.perf_counter() - w0,
                "cpu_s": (c1.user - c0.user) + (c1.system - c0.system),
                "exact_distinct_columns": sum(
                    c["distinct_exact"] for c in reports[label]["columns"]
                ),
            }
            if label not in variants or run["wall_s"] < variants[label]["wall_s"]:
                variants[label] = run
    if len(reports) == 2:
        a, b = reports.values()
        same = ("non_null", "null", "range", "conformance", "dates", "ags", "top_values")
        variants["same facts"] = (
            all(
                all(x[k] == y[k] for k in same)
                for x, y in zip(a["columns"], b["columns"], strict=True)
            )
            and a["issues"] == b["issues"]
        )
    con.close()
    return variants


def _timed(fn: Any) -> dict:
    w0, c0 = time.perf_counter(), os.times()
    fn()
    c1 = os.times()
    return {
        "wall_s": time.perf_counter() - w0,
        "cpu_s": (c1.user - c0.user) + (c1.system - c0.system),
    }


def run_experiments(csv: Path, work: Path, meta: dict) -> dict:
    """What the two big phases would cost done differently (suggestions, not Datenlabor code).

    Scan: each ingredient of ``source.scan`` alone over the file, and cheaper ways to find
    bytes 0x80-0x9F. Staging: Datenlabor's own COPY statement (same relation, options and
    memory limit) and variants of it, each on a fresh connection.
    """
    import hashlib
    import re

    import duckdb

    from datenlabor.pool import delta
    from datenlabor.pool.ingest import open_reading
    from datenlabor.pool.ingest.source import transcode
    from datenlabor.query.connection import connect

    chunk_size = 8 * MiB
    c1_bytes = bytes(range(0x80, 0xA0))

    def over_file(step: Any) -> Any:
        def go() -> None:
            with csv.open("rb") as fh:
                while chunk := fh.read(chunk_size):
                    step(chunk)

        return go

    c1_re = re.compile(rb"[\x80-\x9f]")
    scan = {
        "read 8 MiB chunks only": _timed(over_file(lambda c: None)),
        "hashlib.sha256 update": _timed(over_file(hashlib.sha256().update)),
        "re.search([\\x80-\\x9f]) (as in scan)": _timed(over_file(c1_re.search)),
        "bytes.translate(None, C1) length": _timed(
            over_file(lambda c: len(c.translate(None, c1_bytes)))
        ),
        "sha256 + translate check": _timed(
            over_file(lambda c, h=hashlib.sha256(): (h.update(c), len(c.translate(None, c1_bytes))))
        ),
    }

    con = connect(temp_dir=work / "tmp", memory_limit="600MB")
    reading = open_reading(con, csv, work_dir=work, sample_bytes=4 * MiB)
    select = delta.delta_select(con, reading.relation)
    con.close()
    # Is DuckDB's latin-1 decoder really the fast path? Transcode in Python, read as UTF-8.
    utf8 = work / "utf8.csv"
    if reading.source.encoding in ("cp1252", "latin-1") and "encoding='latin-1'" in select:
        scan["transcode to UTF-8 (source.transcode)"] = _timed(
            lambda: transcode(reading.source, utf8)
        )
    datenlabor_opts = (
        "FORMAT parquet, COMPRESSION zstd, FILE_SIZE_BYTES '256MB', "
        "FILENAME_PATTERN 'part-{i}', ROW_GROUP_SIZE 122880"
    )
    variants = {
        "Datenlabor's COPY (zstd, 256MB files, 600MB limit)": (select, datenlabor_opts, "600MB"),
        "same, COMPRESSION snappy": (select, datenlabor_opts.replace("zstd", "snappy"), "600MB"),
        "same, no memory limit": (select, datenlabor_opts, None),
        "same, strict_mode=false": (
            select.replace("strict_mode=true", "strict_mode=false"),
            datenlabor_opts,
            "600MB",
        ),
        "same, read only (count(*), no Parquet)": (select, None, "600MB"),
    }
    if utf8.is_file():
        on_utf8 = select.replace(str(csv), str(utf8)).replace(
            "encoding='latin-1'", "encoding='utf-8'"
        )
        variants["same on the UTF-8 copy (encoding='utf-8')"] = (on_utf8, datenlabor_opts, "600MB")
        variants["same on the UTF-8 copy, read only"] = (on_utf8, None, "600MB")
    staging: dict[str, Any] = {}
    for label, (sql, opts, limit) in variants.items():
        target = work / "variant"
        shutil.rmtree(target, ignore_errors=True)
        target.mkdir()
        c = connect(temp_dir=work / "tmp", memory_limit=limit)
        stmt = f"COPY ({sql}) TO '{target}' ({opts})" if opts else f"SELECT count(*) FROM ({sql})"
        try:
            staging[label] = _timed(lambda c=c, stmt=stmt: c.execute(stmt))
        except duckdb.Error as exc:
            staging[label] = {"error": str(exc).splitlines()[0]}
        c.close()
        shutil.rmtree(target, ignore_errors=True)
    reading.cleanup()
    utf8.unlink(missing_ok=True)
    return {
        "wall_s": 0.0,
        "maxrss_mib": _maxrss_mib(),
        "scan": scan,
        "staging": staging,
        "relation": reading.relation,
    }


RUNNERS = {
    "datenlabor": run_datenlabor,
    "pandas": run_pandas,
    "duckdb": run_duckdb,
    "profile": run_profile,
    "experiments": run_experiments,
}


def child_main(name: str, csv: Path, work: Path, meta_path: Path, result: Path) -> None:
    meta = json.loads(meta_path.read_text())
    work.mkdir(parents=True, exist_ok=True)
    out = RUNNERS[name](csv, work, meta)
    result.write_text(json.dumps(out, default=str, ensure_ascii=False))


# -- parent: run the children, poll their memory, summarise -------------------------------------


def _cpu_jiffies() -> tuple[int, int]:
    """(busy, total) CPU time of the whole machine in clock ticks, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def wait_for_quiet(max_wait_s: float, busy_below: float = 0.25) -> dict:
    """Wait (at most ``max_wait_s``) until other work uses under ``busy_below`` of the CPUs.

    The machines are shared; a run that starts while someone's test suite runs measures them,
    not us. Returns how long we waited and the last busy share seen.
    """
    start = time.perf_counter()
    share = 1.0
    while True:
        b0, t0 = _cpu_jiffies()
        time.sleep(1.0)
        b1, t1 = _cpu_jiffies()
        share = (b1 - b0) / max(1, t1 - t0)
        waited = time.perf_counter() - start
        if share < busy_below or waited >= max_wait_s:
            return {"waited_s": round(waited, 1), "busy_share_before": round(share, 2)}


def run_child(
    name: str, csv: Path, meta_path: Path, runs_dir: Path, keep: bool, tag: str, wait_s: float = 0.0
) -> dict:
    import psutil

    quiet = wait_for_quiet(wait_s) if wait_s > 0 else {}

    work = runs_dir / f"{name}-{tag}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    result = work / "result.json"
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        name,
        "--csv",
        str(csv),
        "--work",
        str(work),
        "--meta",
        str(meta_path),
        "--result",
        str(result),
    ]
    busy0, _ = _cpu_jiffies()
    w0 = time.perf_counter()
    proc = psutil.Popen(cmd)
    peak, child_cpu = 0, 0.0
    while proc.poll() is None:
        try:
            procs = [proc, *proc.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in procs if p.is_running()))
            t = proc.cpu_times()
            child_cpu = t.user + t.system + t.children_user + t.children_system
        except psutil.Error:
            pass
        time.sleep(0.05)
    wall = time.perf_counter() - w0
    busy1, _ = _cpu_jiffies()
    tick = os.sysconf("SC_CLK_TCK")
    if proc.returncode != 0 or not result.is_file():
        raise SystemExit(f"{name} run failed (exit {proc.returncode}); see the output above")
    out = json.loads(result.read_text())
    out["polled_peak_rss_mib"] = peak / MiB
    # CPU used by everything else on the machine while the child ran, in cores (0..nproc).
    out["other_cores_busy"] = round(max(0.0, ((busy1 - busy0) / tick - child_cpu) / wall), 2)
    out.update(quiet)
    if not keep:
        shutil.rmtree(work, ignore_errors=True)
    return out


def machine_info() -> dict:
    import duckdb
    import numpy
    import pandas
    import psutil
    import pyarrow

    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    commit, dirty = "unknown", []
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=HERE,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "src"],
            cwd=HERE.parent,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        pass
    return {
        "git_commit": commit,
        "src_files_uncommitted": len([x for x in dirty if x.strip()]),
        "date": dt.datetime.now().astimezone().isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "ram_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "cpu": cpu,
        "python": platform.python_version(),
        "duckdb": duckdb.__version__,
        "pandas": pandas.__version__,
        "pyarrow": pyarrow.__version__,
        "numpy": numpy.__version__,
    }


def summarise(runs: dict[str, list[dict]], size_bytes: int) -> dict:
    size_mib = size_bytes / MiB
    rows = {}
    for name, results in runs.items():
        walls = [r["wall_s"] for r in results]
        wall = statistics.median(walls)
        rows[name] = {
            "runs": len(results),
            "wall_s": wall,
            "walls_s": [round(w, 2) for w in walls],
            "best_wall_s": min(walls),
            "best_mib_s": size_mib / min(walls),
            "cpu_s": statistics.median(r["cpu_s"] for r in results),
            "mib_s": size_mib / wall,
            "peak_rss_mib": statistics.median(r["maxrss_mib"] for r in results),
            "polled_peak_rss_mib": statistics.median(r["polled_peak_rss_mib"] for r in results),
            "other_cores_busy": statistics.median(r["other_cores_busy"] for r in results),
            "checks_ok": all(r["check"]["ok"] for r in results),
            "problems": next((r["check"]["problems"] for r in results if not r["check"]["ok"]), []),
            "path": results[-1].get("path"),
            "types": results[-1].get("types"),
            "output_mib": results[-1].get("output_mib"),
            "layout": results[-1].get("layout"),
            **{
                k: results[-1][k]
                for k in ("latin1_failed_after_s", "latin1_error")
                if k in results[-1]
            },
        }
    goals: dict[str, Any] = {}
    dl = rows.get("datenlabor")
    if dl:
        for row in rows.values():
            row["datenlabor_speedup"] = dl["mib_s"] / row["mib_s"]
            row["datenlabor_speedup_best"] = dl["best_mib_s"] / row["best_mib_s"]
            row["datenlabor_cpu_ratio"] = row["cpu_s"] / dl["cpu_s"]
        if "duckdb" in rows:
            x = dl["mib_s"] / rows["duckdb"]["mib_s"]
            goals["throughput >= 0.7x DuckDB"] = {"value": x, "pass": x >= GOALS["vs_duckdb"]}
        if "pandas" in rows:
            x = dl["mib_s"] / rows["pandas"]["mib_s"]
            goals["throughput >= 5x pandas"] = {"value": x, "pass": x >= GOALS["vs_pandas"]}
        goals["peak RSS < 1 GiB"] = {
            "value": dl["peak_rss_mib"],
            "pass": dl["peak_rss_mib"] < GOALS["rss_mib"],
        }
        goals["result checks (rows, text, sums)"] = {
            "value": dl["checks_ok"],
            "pass": dl["checks_ok"],
        }
        # Noise only ever adds time: the best run of each contender is a second opinion.
        for name, key, goal in (
            ("duckdb", "vs_duckdb", "0.7x DuckDB"),
            ("pandas", "vs_pandas", "5x pandas"),
        ):
            if name in rows:
                x = dl["best_mib_s"] / rows[name]["best_mib_s"]
                goals[f"(best runs) throughput >= {goal}"] = {
                    "value": x,
                    "pass": x >= GOALS[key],
                    "informative": True,
                }
    return {"size_mib": size_mib, "contenders": rows, "goals": goals}


def render(summary: dict, meta: dict, args: argparse.Namespace) -> str:
    f = meta["facts"]
    lines = [
        f"file: {summary['size_mib']:.0f} MiB, {f['rows']:,} rows, cp1252, {meta['newline'].upper()}, "
        f"euro={meta['euro']} (€ rows: {f['n_bemerkung_euro']:,})",
        "",
        "| contender | runs | median wall s | MiB/s | peak RSS MiB | Datenlabor speed-up | checks "
        "| best run MiB/s | speed-up (best runs) | CPU s | other load (cores) |",
        "|---|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|",
    ]
    for name, r in summary["contenders"].items():
        speed = f"{r['datenlabor_speedup']:.2f}x" if "datenlabor_speedup" in r else "-"
        lines.append(
            f"| {LABELS[name]} | {r['runs']} | {r['wall_s']:.1f} | {r['mib_s']:.1f} | "
            f"{r['peak_rss_mib']:.0f} | {speed} | {'ok' if r['checks_ok'] else 'FAILED'} | "
            f"{r['best_mib_s']:.1f} | {r.get('datenlabor_speedup_best', 0):.2f}x | "
            f"{r['cpu_s']:.1f} | {r['other_cores_busy']:.2f} |"
        )
    lines.append("")
    lines.append(
        "Datenlabor speed-up = Datenlabor MiB/s / contender MiB/s. Peak RSS = the child's "
        "ru_maxrss at the end of the timed work (polled RSS, 50 ms, in --json). CPU s = "
        "user+system time of the timed work, all threads (median). Other load = cores "
        "used by other processes during the run (median)."
    )
    for name, r in summary["contenders"].items():
        lines.append(f"- {name}: {r['path']}; wall per run {r['walls_s']} s")
        if r.get("layout"):
            lay = r["layout"]
            lines.append(
                f"  writes {r['output_mib']:.0f} MiB: {'/'.join(lay['codecs'])}, "
                f"{lay['files']} file(s), {lay['row_groups']} row groups ({lay['writer']})"
            )
        if r.get("latin1_error"):
            lines.append(
                f"  latin-1 attempt failed after {r['latin1_failed_after_s']} s: {r['latin1_error']}"
            )
        for p in r["problems"]:
            lines.append(f"  CHECK FAILED: {p}")
    if summary["goals"]:
        lines += ["", "Goal checks (Datenlabor):"]
        for goal, g in summary["goals"].items():
            value = g["value"]
            shown = (
                f"{value:.2f}x"
                if "x " in goal
                else f"{value:.0f} MiB"
                if "RSS" in goal
                else str(value)
            )
            verdict = "PASS" if g["pass"] else "FAIL"
            if g.get("informative"):
                verdict += " (second opinion, not the goal check)"
            lines.append(f"- {goal}: {shown} -> {verdict}")
    return "\n".join(lines)


def render_profile(prof: dict, size_bytes: int) -> str:
    lines = [
        "",
        f"Datenlabor phase breakdown (one run): wall {prof['wall_s']:.1f} s, CPU {prof['cpu_s']:.1f} s, "
        f"{size_bytes / MiB / prof['wall_s']:.1f} MiB/s, peak RSS {prof['maxrss_mib']:.0f} MiB",
        "",
        "| phase | wall s | share | CPU s | cores busy |",
        "|---|---:|---:|---:|---:|",
    ]
    top = 0.0
    for e in prof["events"]:
        if e["depth"] == 0 and not e.get("background"):
            top += e["wall_s"]
        cores = e["cpu_s"] / e["wall_s"] if e["wall_s"] > 0 else 0.0
        label = ("&nbsp;&nbsp;" * e["depth"]) + e["label"].strip()
        if e.get("background"):
            label += " — in a helper thread, overlapping the phases below (CPU: that thread)"
        lines.append(
            f"| {label} | {e['wall_s']:.2f} | {e['wall_s'] / prof['wall_s']:.0%} | "
            f"{e['cpu_s']:.2f} | {cores:.1f} |"
        )
    rest = prof["wall_s"] - top
    lines.append(
        f"| other (row count, DESCRIBE, store, cleanup) | {rest:.2f} | {rest / prof['wall_s']:.0%} | | |"
    )
    variants = prof.get("quality_variants") or {}
    if variants:
        lines += ["", "Quality report of the version again, after the ingest (not in its time):"]
        for label, v in variants.items():
            if isinstance(v, dict):
                lines.append(
                    f"- {label}: wall {v['wall_s']:.2f} s, CPU {v['cpu_s']:.2f} s, "
                    f"{v['exact_distinct_columns']} columns with exact distinct counts"
                )
        if "same facts" in variants:
            lines.append(f"- same counts, ranges, checks and issues: {variants['same facts']}")
    return "\n".join(lines)


def render_experiments(exp: dict, size_bytes: int) -> str:
    size = size_bytes / MiB
    lines = [
        "",
        f"Experiments (one run each; other load {exp['other_cores_busy']:.2f} cores):",
        "",
        "| what | wall s | MiB/s | CPU s |",
        "|---|---:|---:|---:|",
    ]
    for group in ("scan", "staging"):
        for label, t in exp[group].items():
            if "error" in t:
                lines.append(f"| {group}: {label} | error: {t['error']} | | |")
            else:
                lines.append(
                    f"| {group}: {label} | {t['wall_s']:.2f} | {size / t['wall_s']:.0f} | "
                    f"{t['cpu_s']:.2f} |"
                )
    return "\n".join(lines)


def report_from(path: Path) -> int:
    """Re-render a stored result (the summary is recomputed from its runs)."""
    stored = json.loads(path.read_text())
    meta = stored["file"]
    summary = summarise(stored["runs"], meta["bytes"])
    m = stored["machine"]
    print(
        f"{m['date']}: {m['nproc']} cores, {m['ram_gib']} GiB RAM, {m['cpu']}, Python {m['python']}, "
        f"duckdb {m['duckdb']}, pandas {m['pandas']}, pyarrow {m['pyarrow']}; "
        f"git {m.get('git_commit')} (+{m.get('src_files_uncommitted')} uncommitted src files)"
    )
    print(f"command: {stored['command']}")
    print(render(summary, meta, argparse.Namespace()))
    if stored.get("profile"):
        print(render_profile(stored["profile"], meta["bytes"]))
    if stored.get("experiments"):
        print(render_experiments(stored["experiments"], meta["bytes"]))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--size-mb", type=float, default=1024, help="test file size in MiB (default 1024)"
    )
    p.add_argument("--repeat", type=int, default=3, help="runs per contender; medians are reported")
    p.add_argument(
        "--pandas-repeat", type=int, default=None, help="runs for pandas (default: --repeat)"
    )
    p.add_argument(
        "--euro",
        action="store_true",
        help="put € and – (cp1252 0x80/0x96) into the free text: not latin-1 compatible",
    )
    p.add_argument("--newline", choices=("crlf", "lf"), default="crlf")
    p.add_argument("--data-dir", type=Path, default=HERE / "_data")
    p.add_argument(
        "--keep", action="store_true", help="keep the outputs of every run in DATA_DIR/runs"
    )
    p.add_argument("--contenders", default=",".join(CONTENDERS), help="comma-separated subset")
    p.add_argument(
        "--profile",
        action="store_true",
        help="also time Datenlabor's ingest phases (one extra run)",
    )
    p.add_argument(
        "--experiments",
        action="store_true",
        help="also time the scan ingredients and variants of Datenlabor's COPY",
    )
    p.add_argument(
        "--duckdb-compression",
        choices=("zstd", "snappy"),
        default=DUCKDB_COMPRESSION,
        help="codec of the DuckDB contender (default zstd, as Datenlabor writes; snappy is "
        "DuckDB's default and the baseline of runs 1-4)",
    )
    p.add_argument("--regenerate", action="store_true", help="regenerate the test file")
    p.add_argument(
        "--wait-idle",
        type=float,
        default=120,
        metavar="S",
        help="before each run wait up to S seconds for other work to use < 25%% "
        "of the CPUs (0: do not wait)",
    )
    p.add_argument("--generate-only", action="store_true")
    p.add_argument(
        "--json", metavar="PATH", help="write the results as JSON to PATH ('-': stdout, no table)"
    )
    p.add_argument(
        "--report-from",
        type=Path,
        metavar="JSON",
        help="print the tables again from a JSON file written by --json; run nothing",
    )
    # Internal: run one contender in this (child) process.
    p.add_argument("--child", choices=sorted(RUNNERS), help=argparse.SUPPRESS)
    p.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--meta", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child:
        child_main(args.child, args.csv, args.work, args.meta, args.result)
        return 0
    if args.report_from:
        return report_from(args.report_from)

    os.environ[COMPRESSION_ENV] = args.duckdb_compression  # read by the DuckDB child
    data_dir = args.data_dir.resolve()
    csv, meta = ensure_data(
        data_dir,
        size_mib=args.size_mb,
        euro=args.euro,
        newline=args.newline,
        regenerate=args.regenerate,
    )
    if args.generate_only:
        return 0
    meta_path = csv.with_suffix(".json")
    runs_dir = data_dir / "runs"
    names = [n.strip() for n in args.contenders.split(",") if n.strip()]
    for n in names:
        if n not in CONTENDERS:
            p.error(f"unknown contender {n!r}")
    repeats = {n: args.repeat for n in names}
    if "pandas" in repeats and args.pandas_repeat is not None:
        repeats["pandas"] = args.pandas_repeat
    runs: dict[str, list[dict]] = {n: [] for n in names}
    quiet = args.json == "-"
    machine = machine_info()  # before the runs: the code under test may change while they run
    # Round-robin: run i of every contender before run i+1 of any.
    for i in range(max(repeats.values())):
        for n in names:
            if i >= repeats[n]:
                continue
            r = run_child(n, csv, meta_path, runs_dir, args.keep, f"{i + 1}", args.wait_idle)
            runs[n].append(r)
            if not quiet:
                print(
                    f"  {n} run {i + 1}: {r['wall_s']:.1f} s (CPU {r['cpu_s']:.1f} s), "
                    f"{meta['bytes'] / MiB / r['wall_s']:.1f} MiB/s, "
                    f"peak RSS {r['maxrss_mib']:.0f} MiB, checks {'ok' if r['check']['ok'] else 'FAILED'}, "
                    f"other load {r['other_cores_busy']:.2f} cores",
                    file=sys.stderr,
                )
    summary = summarise(runs, meta["bytes"])
    profile = None
    if args.profile:
        profile = run_child("profile", csv, meta_path, runs_dir, args.keep, "1", args.wait_idle)
    experiments = None
    if args.experiments:
        experiments = run_child(
            "experiments", csv, meta_path, runs_dir, args.keep, "1", args.wait_idle
        )
    result = {
        "machine": machine,
        "command": " ".join(
            [".venv/bin/python", "bench/ingest.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "file": {k: meta[k] for k in ("bytes", "euro", "newline", "seed", "columns", "facts")},
        **summary,
        "runs": runs,
        "profile": profile,
        "experiments": experiments,
    }
    if args.json:
        text = json.dumps(result, indent=1, default=str, ensure_ascii=False)
        if args.json == "-":
            print(text)
        else:
            Path(args.json).write_text(text)
    if not quiet:
        print(render(summary, meta, args))
        if profile:
            print(render_profile(profile, meta["bytes"]))
        if experiments:
            print(render_experiments(experiments, meta["bytes"]))
    ok = all(g["pass"] for g in summary["goals"].values() if not g.get("informative"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
