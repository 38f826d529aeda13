"""Directly-follows edges from the packed-word sort agree with the radix path and with a
plain-Python computation; logs the packed words cannot hold take the radix path."""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict

import numpy as np
import pytest

from datenlabor.procedures.traces import Traces


def traces(cases: list[list[tuple[int, int]]], names: list[str]) -> Traces:
    """Traces from cases given as (activity code, time in microseconds) lists."""
    lengths = [len(c) for c in cases]
    starts = np.concatenate(([0], np.cumsum(lengths)[:-1])).astype(np.int64)
    return Traces(
        case_nos=np.arange(len(cases), dtype=np.int64),
        starts=starts,
        codes=np.array([a for c in cases for a, _ in c], dtype=np.int32),
        activities=names,
        ts_us=np.array([t for c in cases for _, t in c], dtype=np.int64),
    )


def python_edges(cases: list[list[tuple[int, int]]]) -> dict[tuple[int, int], dict[str, float]]:
    gaps: dict[tuple[int, int], list[float]] = defaultdict(list)
    for c in cases:
        for (a, ta), (b, tb) in itertools.pairwise(c):
            gaps[(a, b)].append((tb - ta) / 1e6)

    def figures(g: list[float]) -> dict[str, float]:
        return {
            "count": len(g), "mean_s": statistics.fmean(g), "median_s": statistics.median(g),
            "p90_s": float(np.quantile(g, 0.9)), "min_s": min(g), "max_s": max(g),
            "total_s": sum(g),
        }  # fmt: skip

    return {e: figures(g) for e, g in gaps.items()}


def random_cases(rng: np.random.Generator, n: int, k: int, big: int) -> list[list[tuple[int, int]]]:
    out = []
    for _ in range(n):
        length = int(rng.integers(1, 8))
        t = int(rng.integers(0, 10**12))
        case = []
        for _ in range(length):
            t += int(rng.integers(0, big))
            case.append((int(rng.integers(0, k)), t))
        out.append(case)
    return out


@pytest.mark.parametrize(("k", "big"), [(3, 10**6), (9, 10**11), (40, 3 * 10**13)])
def test_packed_edges_agree_with_python_and_radix(k: int, big: int) -> None:
    rng = np.random.default_rng(k)
    cases = random_cases(rng, 2000, k, big)
    tr = traces(cases, [f"A{i:02d}" for i in range(k)])
    packed, radix = tr._packed_edges(), tr._radix_edges()
    assert packed is not None and radix is not None
    assert packed.column_names == radix.column_names
    for name in packed.column_names:
        if name in ("total_s", "mean_s"):  # an exact integer sum against float additions
            assert packed.column(name).to_pylist() == pytest.approx(
                radix.column(name).to_pylist(), rel=1e-12
            )
        else:  # the same numbers bit for bit, quantiles included
            assert packed.column(name).to_pylist() == radix.column(name).to_pylist(), name
    expected = python_edges(cases)
    rows = packed.to_pylist()
    assert {(r["a"], r["b"]) for r in rows} == set(expected)
    for r in rows:
        for key, value in expected[(r["a"], r["b"])].items():
            assert r[key] == pytest.approx(value, rel=1e-12), key


def test_gaps_the_words_cannot_hold_take_the_radix_path() -> None:
    backwards = [[(0, 5_000_000), (1, 1_000_000)], [(1, 0), (0, 10)]]  # time runs backwards
    tr = traces(backwards, ["a", "b"])
    assert tr._packed_edges() is None
    rows = {(r["a"], r["b"]): r for r in tr.edges_table().to_pylist()}  # type: ignore[union-attr]
    assert rows[(0, 1)]["min_s"] == -4.0 and rows[(1, 0)]["max_s"] == 1e-5
    huge = [[(0, 0), (1, 1 << 62)]]  # 146,000 years between two events
    assert traces(huge, ["a", "b"])._packed_edges() is None
    assert traces(huge, ["a", "b"]).edges_table() is not None
