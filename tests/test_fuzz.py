"""A time-boxed fuzzing run of every reader and the SQL validator (atheris, in subprocesses).

Each target runs for a few seconds from its seed corpus (real files and earlier findings);
any exception other than BadInput, any hang (per-input timeout) or memory blow-up fails the
test and leaves the input in the work folder. Longer runs: ``fuzz/run.py TARGET --seconds N``
(docs/reliability.md).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
RUN = REPO / "fuzz" / "run.py"
TARGETS = sorted(p.stem.removeprefix("fuzz_") for p in (REPO / "fuzz").glob("fuzz_*.py"))
SECONDS = 2


def test_every_reader_has_a_target() -> None:
    readers = {"csv", "genesis", "xlsx", "json", "parquet", "xes", "eml", "rdf", "sql"}
    extractors = {"html", "markdown", "pdf", "docx"}
    assert readers | extractors <= set(TARGETS)


@pytest.mark.parametrize("target", TARGETS)
def test_fuzz_target(target: str, tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(RUN),
            target,
            f"--seconds={SECONDS}",
            # A fixed seed: the same mutations in every CI run, so a failure here is a
            # regression, not a new random discovery (random long runs: fuzz/run.py).
            "--seed=20261206",
            "--timeout=20",
            "--rss-mb=2048",
            f"--workdir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=REPO,
    )
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    assert lines, proc.stdout + proc.stderr
    summary = json.loads(lines[-1])
    assert summary["ok"], f"{summary}\n{proc.stderr[-4000:]}"
    assert summary["findings"] == []
    assert summary["executions"] and summary["executions"] >= summary["seeds"]
    assert summary["coverage"] and summary["coverage"] > 0
