"""The stored activity number (``activity_no``): written by the import and the simulator,
read instead of the activity text, checked against the names on every read; logs stored
before it existed, and columns of that name that number something else, are read from the
activity text with the same results."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

import datenlabor
from conftest import FIXTURES
from datenlabor.procedures import Filters, Mapping, import_log, open_log
from datenlabor.procedures.simulate import Simulation, Step, simulate, write_log

CSV = FIXTURES / "procedures" / "antraege.csv"
MAPPING = Mapping(activity="Schritt", resource="Bearbeitung")


@pytest.fixture(scope="module")
def pool(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    p = datenlabor.open(tmp_path_factory.mktemp("actno") / "pool", user="test@example.org")
    yield p
    p.store.dispose()


def results(pool: Any, slug: str, filters: Filters | None = None) -> dict[str, Any]:
    """Everything computed from the traces, with activity names (never codes)."""
    with open_log(pool, slug, filters=filters) as log:
        tr = log.traces()
        return {
            "activities": list(tr.activities),
            "codes": tr.codes.tolist(),
            "dfg": log.dfg().rows(),
            "variants": log.variants().rows(),
            "waiting": log.waiting_times().rows(),
            "cases": log.cases().rows(),
            "summary": {
                k: v for k, v in log.summary().items() if k not in ("provenance", "dataset")
            },
        }


def test_import_numbers_activities_alphabetically(pool) -> None:  # type: ignore[no-untyped-def]
    import_log(pool, CSV, dataset="antraege", mapping=MAPPING)
    t = pool.dataset("antraege").read()
    names = sorted(set(t.column("activity").to_pylist()))
    assert names == ["Bescheid", "Eingang", "Prüfung"]
    for name, no in zip(
        t.column("activity").to_pylist(), t.column("activity_no").to_pylist(), strict=True
    ):
        assert no == names.index(name)
    assert t.schema.field("activity_no").type == pa.int32()


def test_simulator_numbers_the_names_that_occur() -> None:
    # Two steps share a name, one never happens (p=0): numbers stay dense and alphabetical.
    steps = (
        Step("Eingang", 0.0),
        Step("Zahlung", 10, p=0.0),
        Step("Prüfung", 10),
        Step("Ärger", 5, p=0.5),
        Step("Prüfung", 10),
    )
    t = simulate(Simulation(cases=300, seed=4, steps=steps))
    names = sorted(set(t.column("activity").cast(pa.string()).to_pylist()))
    assert names == ["Eingang", "Prüfung", "Ärger"]  # code point order: Ä after P
    acts = t.column("activity").cast(pa.string()).to_pylist()
    assert t.column("activity_no").to_pylist() == [names.index(a) for a in acts]


def _strip(path: Path, target: Path, numbers: pa.Array | None) -> Path:
    """The same events without activity_no (a log stored before it) or with other numbers."""
    t = pq.read_table(path)
    i = t.column_names.index("activity_no")
    t = t.remove_column(i)
    if numbers is not None:
        t = t.add_column(i, "activity_no", numbers)
    pq.write_table(t, target)
    return target


def test_old_and_foreign_numbers_give_the_same_results(pool, tmp_path) -> None:  # type: ignore[no-untyped-def]
    sim = write_log(simulate(Simulation(cases=400, seed=5)), tmp_path / "sim.parquet")
    pool.ingest(sim, dataset="neu", format="parquet")
    old = _strip(sim, tmp_path / "old.parquet", None)
    pool.ingest(old, dataset="alt", format="parquet")
    t = pq.read_table(sim)
    n = t.num_rows
    # A column of that name numbering something else (here: per event, not per name).
    other = pa.array(np.arange(n, dtype=np.int32) % 3)
    pool.ingest(_strip(sim, tmp_path / "x.parquet", other), dataset="fremd", format="parquet")
    # Numbers in another order than the names (a bijection): remapped, not trusted blindly.
    no = t.column("activity_no").to_numpy()
    shuffled = pa.array(((no * 7 + 3) % 97).astype(np.int32))
    pool.ingest(_strip(sim, tmp_path / "s.parquet", shuffled), dataset="anders", format="parquet")
    with open_log(pool, "alt") as log:
        assert "activity_no" not in log.columns
    reference = results(pool, "neu")
    names = sorted(set(t.column("activity").cast(pa.string()).to_pylist()))
    assert reference["activities"] == names
    acts = t.column("activity").cast(pa.string()).to_pylist()
    assert reference["codes"] == [names.index(a) for a in acts]  # the stored log is in seq order
    for slug in ("alt", "fremd", "anders"):
        assert results(pool, slug) == reference, slug


def test_filtered_log_numbers_only_its_activities(pool, tmp_path) -> None:  # type: ignore[no-untyped-def]
    # Filtering away every case with a rejection leaves fewer activities: the codes of the
    # filtered log are dense again, as when the names were numbered from the text.
    sim = write_log(simulate(Simulation(cases=300, seed=6)), tmp_path / "f.parquet")
    t = pq.read_table(sim)
    rejected = pc.equal(t.column("activity").cast(pa.string()), "Bescheid abgelehnt")
    cases = set(t.filter(rejected).column("case_no").to_pylist())
    assert 0 < len(cases) < 300
    table = t.append_column(
        "rejected", pa.array([c in cases for c in t.column("case_no").to_pylist()])
    )
    pq.write_table(table, tmp_path / "g.parquet")
    pool.ingest(tmp_path / "g.parquet", dataset="gefiltert", format="parquet")
    pool.ingest(_strip(tmp_path / "g.parquet", tmp_path / "h.parquet", None), dataset="g-alt",
                format="parquet")  # fmt: skip
    f = Filters(attributes={"rejected": ["false"]})
    mine, old = results(pool, "gefiltert", f), results(pool, "g-alt", f)
    assert "Bescheid abgelehnt" not in mine["activities"]
    assert mine == old
    assert sorted(set(mine["codes"])) == list(range(len(mine["activities"])))
