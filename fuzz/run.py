"""Run one fuzz target (or all) with atheris/libFuzzer and summarise the run.

    .venv/bin/python fuzz/run.py csv --seconds 60          # one target, one minute
    .venv/bin/python fuzz/run.py all --seconds 10           # every target, 10 s each
    .venv/bin/python fuzz/run.py csv --replay crash-1a2b…   # one input through the contract
    .venv/bin/python fuzz/run.py --list

The corpus starts from real files (shared data, tests/fixtures, earlier findings under
tests/fixtures/fuzz/TARGET/) and is kept in ``--workdir`` (default
/tmp/datenlabor-fuzz/TARGET/corpus) so that a later run goes on from where this one stopped.
Crashes, hangs (``--timeout`` seconds per input) and memory blow-ups (``--rss-mb``) are saved
as ``crash-*``, ``timeout-*``, ``oom-*`` next to the corpus; the exit status is 1 then.
The last line printed is a JSON summary: executions, exec/s, coverage, corpus, findings.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

FUZZ_DIR = Path(__file__).resolve().parent
TARGETS = sorted(p.stem.removeprefix("fuzz_") for p in FUZZ_DIR.glob("fuzz_*.py"))
FINDING = re.compile(r"^(crash|timeout|oom|leak|slow-unit)-")


def _module(target: str):
    sys.path.insert(0, str(FUZZ_DIR))
    import harness

    return harness, harness.load(target)


def seed_corpus(target: str, folder: Path) -> int:
    """Write the target's seeds into ``folder`` (named by content hash); returns the count."""
    _harness, module = _module(target)
    folder.mkdir(parents=True, exist_ok=True)
    count = 0
    for _name, data in module.seeds():
        data = data[: module.MAX_LEN]
        (folder / hashlib.sha1(data).hexdigest()).write_bytes(data)
        count += 1
    return count


def run(
    target: str,
    seconds: int,
    *,
    workdir: Path,
    timeout: int,
    rss_mb: int,
    seed: int = 0,
    runs: int = 0,
) -> dict:
    _harness, module = _module(target)
    corpus, seeds, findings = workdir / "corpus", workdir / "seeds", workdir / "findings"
    for folder in (corpus, findings):
        folder.mkdir(parents=True, exist_ok=True)
    n_seeds = seed_corpus(target, seeds)
    before = {p.name for p in findings.iterdir()}
    cmd = [
        sys.executable,
        str(FUZZ_DIR / f"fuzz_{target}.py"),
        f"-max_total_time={seconds}",
        f"-seed={seed}",  # 0: libFuzzer picks one; a fixed seed repeats the mutation sequence
        # with a fixed seed, a fixed number of inputs makes the run the same on a fast and a
        # slow machine (a time limit alone lets a fast machine go further and find more)
        *([f"-runs={runs}"] if runs else []),
        f"-timeout={timeout}",
        f"-rss_limit_mb={rss_mb}",
        f"-max_len={module.MAX_LEN}",
        f"-artifact_prefix={findings}/",
        "-print_final_stats=1",
        "-detect_leaks=0",
        str(corpus),
        str(seeds),
    ]
    env = dict(os.environ, PYTHONPATH=str(FUZZ_DIR), PYTHONHASHSEED="0")
    started = time.monotonic()
    # Fuzzing may itself hang in a way libFuzzer's timer cannot interrupt: hard stop as well.
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, env=env, timeout=seconds + timeout + 120
        )
        output, code = proc.stdout + proc.stderr, proc.returncode
    except subprocess.TimeoutExpired as exc:
        raw = (exc.stdout or b"") + (exc.stderr or b"")
        output = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
        code = -9
    wall = time.monotonic() - started
    new = sorted(
        p.name for p in findings.iterdir() if p.name not in before and FINDING.match(p.name)
    )
    summary = {
        "target": target,
        "seconds": seconds,
        "wall_s": round(wall, 1),
        "seeds": n_seeds,
        "executions": _stat(output, "number_of_executed_units"),
        "exec_per_s": _stat(output, "average_exec_per_sec"),
        "peak_rss_mb": _stat(output, "peak_rss_mb"),
        "coverage": _last(output, r"cov: (\d+)"),
        "features": _last(output, r"ft: (\d+)"),
        "corpus": _last(output, r"corp: (\d+)"),
        "findings": [str(findings / n) for n in new],
        "exit_code": code,
    }
    summary["ok"] = code == 0 and not new
    if not summary["ok"]:
        tail = "\n".join(output.splitlines()[-60:])
        print(tail, file=sys.stderr)
    return summary


def _stat(output: str, name: str) -> int | None:
    m = re.search(rf"stat::{name}:\s+(\d+)", output)
    return int(m.group(1)) if m else None


def _last(output: str, pattern: str) -> int | None:
    found = re.findall(pattern, output)
    return int(found[-1]) if found else None


def replay(target: str, paths: list[Path]) -> int:
    """Run saved inputs through the target's contract in this process (no atheris)."""
    harness, module = _module(target)
    module.prepare()
    check = harness.checked(module.one_input)
    for path in paths:
        started = time.monotonic()
        check(path.read_bytes())
        print(f"{path}: ok in {time.monotonic() - started:.2f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("target", nargs="?", help=f"one of {', '.join(TARGETS)} or 'all'")
    parser.add_argument("--seconds", type=int, default=60, help="fuzzing time per target")
    parser.add_argument("--timeout", type=int, default=20, help="seconds one input may take")
    parser.add_argument("--rss-mb", type=int, default=2048, help="memory limit of the fuzzer")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/datenlabor-fuzz"))
    parser.add_argument(
        "--seed", type=int, default=0, help="libFuzzer random seed (0: a new one per run)"
    )
    parser.add_argument(
        "--runs", type=int, default=0, help="stop after this many inputs (0: only --seconds)"
    )
    parser.add_argument("--replay", type=Path, nargs="+", help="run these inputs once")
    parser.add_argument("--list", action="store_true", help="list the targets")
    args = parser.parse_args(argv)
    if args.list or not args.target:
        print("\n".join(TARGETS))
        return 0
    targets = TARGETS if args.target == "all" else [args.target]
    unknown = [t for t in targets if t not in TARGETS]
    if unknown:
        parser.error(f"unknown target {unknown[0]!r}; targets are {', '.join(TARGETS)}")
    if args.replay:
        return replay(targets[0], args.replay)
    failed = False
    for target in targets:
        summary = run(
            target,
            args.seconds,
            workdir=args.workdir / target,
            timeout=args.timeout,
            rss_mb=args.rss_mb,
            seed=args.seed,
            runs=args.runs,
        )
        print(json.dumps(summary), flush=True)
        failed |= not summary["ok"]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
