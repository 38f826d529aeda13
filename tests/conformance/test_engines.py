"""Conformance: the same queries, quality checks, KPIs and disclosure aggregates on every engine.

Like Ibis's backend tests, every case is parametrized over the engines (``engine``: duckdb,
spark). Each result is checked against an expectation computed independently in Python from
the version's rows, and Spark's against DuckDB's. Where an engine is known to differ, the
case says so with ``@pytest.mark.differs(spark="kind: reason")`` — kinds: ``floats`` (equal
to 1e-9 relative, not bit for bit: summation order) and ``unsupported`` (the engine refuses
the construct with a clear error, never a wrong answer). Each declared difference that
applies is also reported as a "declared difference" warning in pytest's summary.

Real data: GENESIS 12411-0006 (population by age and sex) and the receipt event log;
generated data with NULLs, umlauts, dates, timestamps, decimals and an empty table. One
Spark session per xdist worker (it lives as long as the process).
"""

from __future__ import annotations

import datetime as dt
import math
import statistics
import warnings
from collections import Counter, defaultdict
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import datenlabor
from conftest import shared_file
from datenlabor.engines.shared import pool_connection, quality, query
from datenlabor.engines.transpile import UnsupportedOnSpark
from datenlabor.errors import BadInput

ENGINES = ["duckdb", "spark"]


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from datenlabor.procedures import import_log

    root = tmp_path_factory.mktemp("conformance")
    p = datenlabor.open(root / "pool", user="conformance@example.org")
    p.ingest(shared_file("genesis/12411-0006.csv"), dataset="bev")
    import_log(p, shared_file("eventlogs/receipt.csv"), dataset="receipt")
    mixed = pa.table(
        {
            "id": pa.array(range(1, 9), pa.int64()),
            "name": ["Müller", "Straße", None, "Öztürk", "Müller", "Ärger", "", "Weiß"],
            "tag": ["a", None, "b", "a", None, "c", "b", "a"],
            "day": pa.array(
                [dt.date(2024, 1, 31), dt.date(2024, 2, 1), None, dt.date(2023, 12, 31),
                 dt.date(2024, 2, 29), dt.date(2024, 3, 1), dt.date(1999, 1, 1),
                 dt.date(2024, 1, 1)], pa.date32()),
            "ts": pa.array(
                [dt.datetime(2024, 3, 31, 1, 30), dt.datetime(2024, 3, 31, 3, 30), None,
                 dt.datetime(2024, 10, 27, 2, 30), dt.datetime(2024, 1, 1, 0, 0, 0, 1),
                 dt.datetime(2023, 12, 31, 23, 59, 59), dt.datetime(2000, 2, 29, 12),
                 dt.datetime(2024, 6, 1)], pa.timestamp("us")),
            "amount": pa.array(
                [Decimal("12.50"), Decimal("-3.10"), Decimal("0.01"), None, Decimal("1000000.99"),
                 Decimal("7.25"), Decimal("0.00"), Decimal("2.30")], pa.decimal128(10, 2)),
            "ratio": [0.1, 0.2, 0.3, None, 1e-9, 3.3, float("nan"), 2.0 / 3.0],
            "flag": [True, False, None, True, True, False, False, True],
        }
    )  # fmt: skip
    pq.write_table(mixed, root / "mixed.parquet")
    pq.write_table(mixed.slice(0, 0), root / "leer.parquet")
    p.ingest(root / "mixed.parquet", dataset="mixed", format="parquet")
    p.ingest(root / "leer.parquet", dataset="leer", format="parquet")
    yield p
    p.store.dispose()


@pytest.fixture(params=ENGINES)
def engine(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def declared(request: pytest.FixtureRequest, engine: str) -> str | None:
    """The kind of difference the case declares for ``engine`` (warned), or None."""
    marker = request.node.get_closest_marker("differs")
    reason = marker.kwargs.get(engine) if marker else None
    if reason:
        # A plain UserWarning: pytest-xdist sends warnings to the controller by class, and
        # a class defined in a test module cannot be imported there.
        warnings.warn(f"declared difference, {request.node.name}: {reason}", stacklevel=2)
        return str(reason).split(":", 1)[0]
    return None


def same(a: Any, b: Any, *, floats: bool = False) -> bool:
    """Equal; floats bit for bit (NaN equals NaN) unless ``floats`` allows 1e-9 relative."""
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) or math.isnan(b):
            return math.isnan(a) and math.isnan(b)
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12) if floats else a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k], floats=floats) for k in a)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(
            same(x, y, floats=floats) for x, y in zip(a, b, strict=True)
        )
    return type(a) is type(b) and a == b if a is not None and b is not None else a is b


def rows(pool: Any, slug: str) -> list[dict[str, Any]]:
    return pool.dataset(slug).read().to_pylist()


# -- pool SQL -----------------------------------------------------------------------------------
def _bev_by_sex(r: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for x in r:
        if x["value"] is not None:
            groups[x["Geschlecht"]].append(x["value"])
    return [(k, float(sum(v)), len(v)) for k, v in sorted(groups.items())]


def _mixed_names(r: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for x in r:
        groups[x["name"]].append(x)
    order = sorted(groups, key=lambda k: (k is not None, k or ""))
    return [
        (k, len(groups[k]), sum(1 for x in groups[k] if x["tag"] is not None),
         sum((x["amount"] for x in groups[k] if x["amount"] is not None), Decimal("0.00"))
         if any(x["amount"] is not None for x in groups[k]) else None)
        for k in order
    ]  # fmt: skip


def _months(r: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    c = Counter(x["day"].replace(day=1) for x in r if x["day"] is not None)
    return sorted(c.items())


def _decimals(r: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    v = sorted(x["amount"] for x in r if x["amount"] is not None)
    mid = (v[len(v) // 2 - 1] + v[len(v) // 2]) / 2 if len(v) % 2 == 0 else v[len(v) // 2]
    return [(sum(v), v[0], v[-1], mid.quantize(Decimal("0.01"), rounding="ROUND_DOWN"))]


def _running(r: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    out, total = [], Decimal("0.00")
    seen = False
    for x in sorted(r, key=lambda x: x["id"]):
        if x["amount"] is not None:
            total += x["amount"]
            seen = True
        out.append((x["id"], total if seen else None))
    return out


SQL_CASES = [
    pytest.param(
        'SELECT "Geschlecht", sum(value), count(value) FROM bev GROUP BY 1 ORDER BY 1',
        lambda p: _bev_by_sex(rows(p, "bev")),
        id="genesis-group-sum",
    ),
    pytest.param(
        'SELECT count(*) FROM "bev@1" WHERE status IS NOT NULL OR value IS NULL',
        lambda p: [(sum(1 for x in rows(p, "bev") if x["status"] or x["value"] is None),)],
        id="genesis-version-syntax",
    ),
    pytest.param(
        "SELECT name, count(*), count(tag), sum(amount) FROM mixed GROUP BY name "
        "ORDER BY name NULLS FIRST",
        lambda p: _mixed_names(rows(p, "mixed")),
        id="nulls-umlauts-group",
    ),
    pytest.param(
        "SELECT id, lower(name), length(name), name || '/' || tag, name LIKE '%ü%' "
        "FROM mixed ORDER BY id",
        lambda p: [
            (
                x["id"],
                x["name"].lower() if x["name"] is not None else None,
                len(x["name"]) if x["name"] is not None else None,
                f"{x['name']}/{x['tag']}"
                if x["name"] is not None and x["tag"] is not None
                else None,
                "ü" in x["name"] if x["name"] is not None else None,
            )
            for x in sorted(rows(p, "mixed"), key=lambda x: x["id"])
        ],
        id="text-functions",
    ),
    pytest.param(
        "SELECT CAST(date_trunc('month', day) AS DATE) AS m, count(*) FROM mixed "
        "WHERE day IS NOT NULL GROUP BY 1 ORDER BY 1",
        lambda p: _months(rows(p, "mixed")),
        id="dates-by-month",
    ),
    pytest.param(
        "SELECT id, strftime(day, '%d.%m.%Y'), CAST(ts AS DATE), date_diff('second', ts, "
        "TIMESTAMP '2024-12-31 00:00:00') FROM mixed ORDER BY id",
        lambda p: [
            (
                x["id"],
                x["day"].strftime("%d.%m.%Y") if x["day"] else None,
                x["ts"].date() if x["ts"] else None,
                int((dt.datetime(2024, 12, 31) - x["ts"].replace(microsecond=0)).total_seconds())
                if x["ts"]
                else None,
            )
            for x in sorted(rows(p, "mixed"), key=lambda x: x["id"])
        ],
        id="timestamps-and-formats",
    ),
    pytest.param(
        "SELECT sum(amount), min(amount), max(amount), median(amount) FROM mixed",
        lambda p: _decimals(rows(p, "mixed")),
        id="decimals",
    ),
    pytest.param(
        "SELECT id, sum(amount) OVER (ORDER BY id) FROM mixed ORDER BY id",
        lambda p: _running(rows(p, "mixed")),
        id="window-running-sum",
    ),
    pytest.param(
        "SELECT count(*), sum(amount), max(day), min(name) FROM leer",
        lambda p: [(0, None, None, None)],
        id="empty-table",
    ),
    pytest.param(
        "SELECT count(*), sum(i), [10, 20, 30][2], max(i, 3) FROM range(10) t(i)",
        lambda p: [(10, Decimal(45), 20, [9, 8, 7])],
        id="range-index-topn",
    ),
    pytest.param(
        "SELECT sum(ratio) FILTER (WHERE NOT isnan(ratio)), count(*) FILTER (WHERE flag) "
        "FROM mixed",
        lambda p: [
            (
                math.fsum(
                    x["ratio"]
                    for x in rows(p, "mixed")
                    if x["ratio"] is not None and not math.isnan(x["ratio"])
                ),
                sum(1 for x in rows(p, "mixed") if x["flag"]),
            )
        ],
        id="double-sum",
        marks=pytest.mark.differs(
            duckdb="floats: a double sum depends on the summation order",
            spark="floats: a double sum depends on the summation order",
        ),
    ),
    pytest.param(
        "SELECT count(*) FROM mixed WHERE date_diff('month', day, DATE '2024-03-01') = 1",
        lambda p: [
            (
                sum(
                    1
                    for x in rows(p, "mixed")
                    if x["day"] and (2024 - x["day"].year) * 12 + 3 - x["day"].month == 1
                ),
            )
        ],
        id="calendar-date-diff",
        marks=pytest.mark.differs(
            spark="unsupported: Spark counts whole months, DuckDB month boundaries"
        ),
    ),
]


@pytest.mark.parametrize(("sql", "expected"), SQL_CASES)
def test_pool_sql(pool: Any, engine: str, sql: str, expected: Any,
                  request: pytest.FixtureRequest) -> None:  # fmt: skip
    kind = declared(request, engine)
    if kind == "unsupported":
        with pytest.raises(UnsupportedOnSpark):
            query(pool, sql, engine)
        return
    got = query(pool, sql, engine)
    result = [tuple(r.values()) for r in got.to_pylist()]
    assert same(result, expected(pool), floats=kind == "floats"), (result, expected(pool))
    if engine != "duckdb":
        reference = query(pool, sql, "duckdb")
        assert got.schema == reference.schema  # names and types as DuckDB returns them
        assert same(got.to_pylist(), reference.to_pylist(), floats=kind == "floats")


def test_sql_validation_is_the_same(pool: Any, engine: str) -> None:
    for bad in ("DROP TABLE bev", "SELECT * FROM read_csv('/etc/passwd')", "SELECT 1; SELECT 2"):
        with pytest.raises(BadInput):
            query(pool, bad, engine)
    with pytest.raises(BadInput, match="nosuch"):
        query(pool, "SELECT * FROM nosuch", engine)


# -- quality checks -----------------------------------------------------------------------------
@pytest.mark.parametrize("slug", ["bev", "mixed"])
def test_quality_report(pool: Any, engine: str, slug: str) -> None:
    stored = pool.dataset(slug).quality()  # computed by DuckDB at ingest
    today = dt.date.fromisoformat(stored["generated_on"])
    got = quality(pool, slug, engine=engine, today=today)
    assert same(got, stored), [
        (a["name"], {k: (a[k], b[k]) for k in a if not same(a[k], b[k])})
        for a, b in zip(got["columns"], stored["columns"], strict=True)
    ]


# -- procedure KPIs -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def receipt_facts(pool: Any) -> dict[str, Any]:
    """Key figures of the receipt log computed in plain Python from its rows."""
    events = sorted(rows(pool, "receipt"), key=lambda x: x["seq"])
    cases: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for e in events:
        cases[e["case_no"]].append(e)
    durations = [(c[-1]["timestamp"] - c[0]["timestamp"]).total_seconds() for c in cases.values()]
    return {
        "cases": len(cases),
        "events": len(events),
        "activities": len({e["activity"] for e in events}),
        "variants": len({tuple(e["activity"] for e in c) for c in cases.values()}),
        "throughput_median_s": statistics.median(durations),
        "throughput_mean_s": statistics.fmean(durations),
        "start_activities": Counter(c[0]["activity"] for c in cases.values()),
    }


def test_kpi_summary(pool: Any, engine: str, receipt_facts: dict[str, Any]) -> None:
    from datenlabor.procedures import open_log

    with open_log(pool, "receipt", engine=engine) as log:
        summary = log.summary()
    for key in ("cases", "events", "activities", "variants"):
        assert summary[key] == receipt_facts[key], key
    for key in ("throughput_median_s", "throughput_mean_s"):
        assert math.isclose(summary[key], receipt_facts[key], rel_tol=1e-9), key
    assert summary["start_activities"] == dict(receipt_facts["start_activities"])
    assert sum(e["count"] for e in summary["dfg"]) == summary["events"] - summary["cases"]


ANALYSES = ["cases_over_time", "throughput", "histogram", "waiting_times", "rework",
            "workload", "variants", "dfg", "bottlenecks"]  # fmt: skip


@pytest.mark.differs(spark="floats: means and sums of durations in another summation order")
def test_kpi_analyses_match_duckdb(pool: Any, request: pytest.FixtureRequest) -> None:
    """Every analysis of the procedure dashboards, with filters, gives DuckDB's rows."""
    from datenlabor.procedures import open_log

    declared(request, "spark")
    filters = {"start": "2011-01-01", "end": "2011-07-01", "period_mode": "intersecting"}
    results: dict[str, dict[str, Any]] = {}
    for eng in ENGINES:
        with open_log(pool, "receipt", engine=eng, filters=filters) as log:
            results[eng] = {name: getattr(log, name)().to_dict() for name in ANALYSES}
            results[eng]["throughput_by"] = log.throughput(by="case:channel").to_dict()
    for name, reference in results["duckdb"].items():
        assert reference["rows"], name  # the filter keeps data: the comparison means something
        assert same(results["spark"][name], reference, floats=True), name


# -- the aggregation before disclosure control --------------------------------------------------
def test_disclosure_cells(pool: Any, engine: str) -> None:
    from datenlabor.disclosure.rules import Dim, Rules
    from datenlabor.disclosure.table import aggregate

    sql = (
        'SELECT "Geschlecht", "Stichtag", value FROM bev '
        "WHERE value IS NOT NULL AND \"Geschlecht\" <> 'Insgesamt'"
    )
    rules = Rules(dims=[Dim("Geschlecht")], measures=["value"])
    with pool_connection(pool, sql, engine) as con:
        cells = aggregate(con, sql, rules, top_k=2)
    facts: dict[str, list[int]] = defaultdict(list)
    for x in rows(pool, "bev"):
        if x["value"] is not None and x["Geschlecht"] != "Insgesamt":
            facts[x["Geschlecht"]].append(x["value"])
    facts["Insgesamt"] = [v for k in list(facts) for v in facts[k]]
    got = {
        str(code): (
            int(cells.records[i]),
            float(cells.values["value"][i]),
            list(cells.top["value"][i]),
        )
        for i, code in enumerate(cells.codes[0])
    }
    assert got == {
        k: (len(v), float(sum(v)), [float(x) for x in sorted(v, reverse=True)[:2]])
        for k, v in facts.items()
    }
