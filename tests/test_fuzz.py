"""A short fuzzing run of every reader and the SQL validator (atheris, in subprocesses).

Each target tries a fixed number of inputs from its seed corpus (real files and earlier findings);
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
SECONDS = 60  # a ceiling only: the runs below end each target first
# Inputs per target: about two seconds' worth on a quiet CI machine. With the fixed seed
# and a fixed count, every CI run tries the same inputs whatever the machine's speed
# (a time limit alone let a fast machine go further and fail on a new discovery).
RUNS = {"csv": 60, "genesis": 150, "json": 150, "parquet": 150, "xlsx": 90, "docx": 20000,
        "html": 8000, "markdown": 1200, "pdf": 2000, "rdf": 3000, "sql": 3000, "xes": 3000,
        "eml": 1200}  # fmt: skip


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
            f"--runs={RUNS.get(target, 200)}",
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


IMPORT_CHECK = """
import importlib, sys
sys.path.insert(0, sys.argv[1])
for target in sys.argv[2:]:
    module = importlib.import_module(f"fuzz_{target}")
    early = sorted(m for m in sys.modules if m.split(".")[0] == "datenlabor")
    assert not early, f"fuzz_{target} imports {early[:3]} before instrumentation"
    assert callable(module.prepare) and callable(module.one_input), target
print("ok")
"""


def test_targets_import_datenlabor_only_when_instrumented() -> None:
    # harness.main instruments only what prepare() imports: a target (or the shared tabular
    # helper) importing datenlabor at module level would fuzz blind, without coverage.
    proc = subprocess.run(
        [sys.executable, "-c", IMPORT_CHECK, str(REPO / "fuzz"), *TARGETS],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr[-3000:]


@pytest.mark.parametrize(
    ("target", "suffix", "fmt", "seed"),
    [
        ("csv", ".csv", "csv", "semicolon-de.csv"),
        ("genesis", ".csv", "genesis", "71231-0002_classic_cp1252.csv"),
        ("json", ".json", "json", "array.json"),
        ("parquet", ".parquet", "parquet", "small-zstd.parquet"),
        ("xlsx", ".xlsx", "xlsx", "openpyxl.xlsx"),
    ],
)
def test_tabular_targets_read_their_format(target: str, suffix: str, fmt: str, seed: str) -> None:
    # The shared helper (fuzz/tabular.py) feeds each target's input to its own reader.
    sys.path.insert(0, str(REPO / "fuzz"))
    try:
        import harness

        module = harness.load(target)
    finally:
        sys.path.remove(str(REPO / "fuzz"))
    assert (module._target.suffix, module._target.fmt) == (suffix, fmt)
    data = dict(module.seeds())[seed]
    module.prepare()
    assert module._target.reader.read(data, suffix=suffix, fmt=fmt) > 0  # rows staged
    module.one_input(data)  # the target's own entry reads it the same way, without error
    assert module._target.reader.count == 2


@pytest.mark.parametrize("status", [0, 3])
def test_a_finished_run_ends_before_the_libraries_exit_handlers(status: int) -> None:
    """libFuzzer ends a finished run with C exit(); the C++ destructors of DuckDB and Arrow
    that exit() would run next had corrupted the heap ("corrupted double-linked list") after
    every input passed. The harness ends the process first, with the status of exit()."""
    script = f"""
import ctypes, sys
sys.path.insert(0, {str(REPO / "fuzz")!r})
import harness

@ctypes.CFUNCTYPE(None, ctypes.c_void_p)
def library_destructor(_arg):  # registered at load time, as a library's destructors are
    print("library exit handler ran", flush=True)

ctypes.CDLL(None).__cxa_atexit(library_destructor, None, None)
harness._leave_at_c_exit()
print("all inputs tried", flush=True)
ctypes.CDLL(None).exit({status})  # what libFuzzer calls at the end of a run
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, cwd=REPO
    )
    assert proc.returncode == status, proc.stderr
    assert "all inputs tried" in proc.stdout
    assert "library exit handler ran" not in proc.stdout
