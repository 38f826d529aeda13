"""Agreement with pm4py (the reference tool, AGPL, dev-only) on the real receipt log.

The same real log as CSV, XES and XES.gz (1,434 cases, 8,577 events) is imported with
Datenlabor and read with pm4py's own readers; case durations, directly-follows counts and
performance (median, mean), variants with their counts and start/end activities must be the
same. All events of the log have lifecycle ``complete``; both tools use every event by
default (pm4py does not filter lifecycles unless asked).
"""

from __future__ import annotations

import warnings
from typing import Any

import pytest

from conftest import shared_file
from datenlabor.procedures import import_log, open_log

pm4py = pytest.importorskip("pm4py")
warnings.filterwarnings("ignore", module="pm4py")

CASES, EVENTS = 1434, 8577


def pm4py_log(name: str) -> Any:
    path = shared_file(f"eventlogs/{name}")
    if name.endswith(".csv"):
        import pandas as pd

        df = pd.read_csv(path)
        return pm4py.format_dataframe(
            df,
            case_id="case:concept:name",
            activity_key="concept:name",
            timestamp_key="time:timestamp",
        )
    return pm4py.read_xes(str(path))


@pytest.fixture(scope="module")
def ours(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    import datenlabor

    pool = datenlabor.open(tmp_path_factory.mktemp("pm4py") / "pool")
    out: dict[str, dict[str, Any]] = {}
    try:
        for name in ("receipt.csv", "receipt.xes", "receipt.xes.gz"):
            slug = name.replace(".", "-")
            import_log(pool, shared_file(f"eventlogs/{name}"), dataset=slug)
            with open_log(pool, slug) as log:
                out[name] = {
                    "summary": log.summary(),
                    "durations": sorted(
                        log.arrow(f"SELECT duration_s FROM {log.ensure_cases()}")
                        .column(0)
                        .to_pylist()
                    ),
                    "dfg": log.dfg().rows(),
                    "variants": {tuple(r["activities"]): r["cases"] for r in log.variants().rows()},
                }
    finally:
        pool.store.dispose()
    return out


@pytest.mark.parametrize("name", ["receipt.csv", "receipt.xes", "receipt.xes.gz"])
def test_agrees_with_pm4py(ours: dict[str, dict[str, Any]], name: str) -> None:
    ref = pm4py_log(name)
    mine = ours[name]
    assert (mine["summary"]["cases"], mine["summary"]["events"]) == (CASES, EVENTS)

    durations = sorted(float(d) for d in pm4py.get_all_case_durations(ref))
    assert mine["durations"] == pytest.approx(durations, abs=1e-6)

    counts, starts, ends = pm4py.discover_dfg(ref)
    perf = pm4py.discover_performance_dfg(ref)[0]
    edges = {(r["from"], r["to"]): r for r in mine["dfg"]}
    assert {k: r["count"] for k, r in edges.items()} == {k: int(v) for k, v in counts.items()}
    for key, stats in perf.items():
        assert edges[key]["median_s"] == pytest.approx(float(stats["median"]), abs=1e-6)
        assert edges[key]["mean_s"] == pytest.approx(float(stats["mean"]), rel=1e-9)
        assert edges[key]["max_s"] == pytest.approx(float(stats["max"]), abs=1e-6)
    assert mine["summary"]["start_activities"] == {k: int(v) for k, v in starts.items()}
    assert mine["summary"]["end_activities"] == {k: int(v) for k, v in ends.items()}

    variants = pm4py.get_variants(ref)
    assert mine["variants"] == {tuple(k): int(v) for k, v in variants.items()}
    assert mine["summary"]["variants"] == len(variants) == 116


def test_formats_give_identical_results(ours: dict[str, dict[str, Any]]) -> None:
    csv, xes, gz = (ours[n] for n in ("receipt.csv", "receipt.xes", "receipt.xes.gz"))
    for key in ("durations", "dfg", "variants"):
        assert csv[key] == xes[key] == gz[key]
