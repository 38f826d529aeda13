"""The `procedures` commands, run as real processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from conftest import FIXTURES

DIR = FIXTURES / "procedures"


def run(pool: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "datenlabor.cli", "--pool", str(pool), "procedures", *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}: {proc.stderr}")
    return proc


def test_import_and_kpis_json(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    out = run(
        pool, "import", str(DIR / "antraege_de.csv"), "--dataset", "antraege",
        "--activity", "Schritt", "--resource", "Bearbeitung", "--json",
    )  # fmt: skip
    imported = json.loads(out.stdout)
    assert imported["version"] == 1 and imported["eventlog"]["cases"] == 4
    kpis = json.loads(run(pool, "kpis", "antraege", "--json").stdout)
    for key in ("cases", "events", "variants", "throughput_median_s", "dfg"):
        assert key in kpis
    assert (kpis["cases"], kpis["events"], kpis["variants"]) == (4, 12, 3)
    assert kpis["throughput_median_s"] == 2.5 * 86400
    edge = next(e for e in kpis["dfg"] if (e["from"], e["to"]) == ("Eingang", "Prüfung"))
    assert {"from", "to", "count", "median_s"} <= set(edge)
    assert (edge["count"], edge["median_s"]) == (4, (4 * 3600 + 86400) / 2)
    assert kpis["provenance"]["dataset"] == "antraege" and kpis["provenance"]["version"] == 1
    online = json.loads(run(pool, "kpis", "antraege", "--where", "Kanal=online", "--json").stdout)
    assert online["cases"] == 2
    assert online["provenance"]["filters"] == {"attributes": {"Kanal": ["online"]}}


def test_show_deadline_and_errors(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    run(pool, "import", str(DIR / "antraege.xes.gz"), "--dataset", "log")
    variants = json.loads(run(pool, "show", "log", "variants", "--json").stdout)
    assert variants["totals"] == {"variants": 3, "cases": 4}
    assert variants["provenance"]["dataset"] == "log"
    table = run(pool, "show", "log", "throughput", "--by", "case:Kanal").stdout
    assert "online" in table and "Post" in table
    deadline = json.loads(
        run(pool, "deadline", "log", "Eingang -> Bescheid within 3 months", "--json").stdout
    )
    assert deadline["totals"]["breached"] == 1 and deadline["totals"]["open"] == 1
    bad = run(pool, "show", "log", "wetter", check=False)
    assert bad.returncode == 2 and "unknown analysis" in bad.stderr
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("case_id,activity,timestamp\nA,x,2024-01-01\nA,y,später\n", encoding="utf-8")
    failed = run(pool, "import", str(bad_csv), "--dataset", "bad", check=False)
    assert failed.returncode == 2
    assert "line 3" in failed.stderr and "'timestamp'" in failed.stderr


def test_simulate_to_file_and_pool(tmp_path: Path) -> None:
    pool = tmp_path / "pool"
    target = tmp_path / "sim.csv"
    run(pool, "simulate", "--cases", "300", "--seed", "7", "-o", str(target), "-d", "sim")
    assert target.read_text(encoding="utf-8").startswith("seq,case_no,case_id,activity,timestamp")
    kpis = json.loads(run(pool, "kpis", "sim", "--json").stdout)
    assert kpis["cases"] == 300
    run(pool, "import", str(target), "--dataset", "sim-csv")  # the CSV imports as a log
    again = json.loads(run(pool, "kpis", "sim-csv", "--json").stdout)
    assert {k: again[k] for k in ("cases", "events", "variants", "dfg")} == {
        k: kpis[k] for k in ("cases", "events", "variants", "dfg")
    }
