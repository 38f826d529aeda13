"""Disclosure rules, hierarchies and primary suppression against hand-computed cases."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from datenlabor.disclosure import TOTAL, Dim, Rules, protect
from datenlabor.disclosure.hierarchy import (
    ags_parent,
    infer_parents,
    parent_map,
    read_code_list,
    time_parent,
)
from datenlabor.errors import BadInput


def test_rules_json_round_trip() -> None:
    rules = Rules(
        dims=[Dim("region", "ags"), Dim("monat", "time"), Dim("art", {"A1": "A", "B": None})],
        measures=["betrag"],
        contributor="firma_id",
        p_percent=10.0,
        method="optimal",
    )
    again = Rules.from_json(rules.to_json())
    assert again == rules
    assert again.to_json()["dominance"] == [2, 85.0]


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"dims": ["a"], "min_frequency": 0}, "min_frequency"),
        ({"dims": ["a"], "min_frequency": "3"}, "min_frequency"),
        ({"dims": ["a"], "dominance": [2, 120]}, "dominance"),
        ({"dims": ["a"], "dominance": [0, 85]}, "dominance"),
        ({"dims": ["a"], "method": "hypercube"}, "method"),
        ({"dims": ["a"], "zero_cells": "maybe"}, "zero_cells"),
        ({"dims": [{"name": "a", "hierarchy": "gemeinde"}]}, "dims[0].hierarchy"),
        ({"dims": [{"name": "a", "hierarchy": {"x": TOTAL}}]}, "dims[0].hierarchy"),
        ({"dims": ["a", "a"]}, "dims"),
        ({"dims": []}, "dims"),
        ({}, "dims"),
        ({"dims": ["a"], "measures": ["a"]}, "a"),
        ({"dims": ["a"], "colour": "red"}, "disclosure"),
        ({"dims": ["a"], "measures": ["m"], "method": "cellkey"}, "method"),
        ({"dims": ["a"], "p_percent": -1}, "p_percent"),
    ],
)
def test_rules_reject_bad_fields_by_name(data: dict, field: str) -> None:
    with pytest.raises(BadInput) as exc:
        Rules.from_json(data)
    assert exc.value.column == field


def test_ags_and_time_levels() -> None:
    assert [ags_parent(c) for c in ("09162000", "09162", "091", "09")] == [
        "09162",
        "091",
        "09",
        None,
    ]
    assert ags_parent("091620000000") == "091620000"
    assert ags_parent("091620000") == "09162"
    assert [time_parent(c) for c in ("2024-05", "2024-Q2", "2024")] == ["2024-Q2", "2024", None]
    assert time_parent("2024-12") == "2024-Q4"
    with pytest.raises(ValueError):
        ags_parent("9162")
    with pytest.raises(ValueError):
        time_parent("2024-13")


def test_parent_map_rejects_mixed_levels_and_cycles() -> None:
    with pytest.raises(BadInput, match="also the total") as exc:
        parent_map("region", "ags", ["09162", "09162000"])
    assert exc.value.column == "region"
    with pytest.raises(BadInput, match="cycle"):
        parent_map("art", {"a": "b", "b": "a"}, ["a"])
    with pytest.raises(BadInput, match="not in the dimension's code list"):
        parent_map("art", {"a": None}, ["z"])
    with pytest.raises(BadInput, match="not a time code"):
        parent_map("monat", "time", ["Mai 2024"])
    pm = parent_map("art", {"A1": "A", "A2": "A", "B": None}, ["A1", "B"])
    assert pm == {"A1": "A", "A": TOTAL, "B": TOTAL}


def test_infer_parents_skips_missing_levels() -> None:
    codes = [TOTAL, "09", "09162", "09163"]
    assert infer_parents("r", codes, None) == {"09": TOTAL, "09162": "09", "09163": "09"}
    assert infer_parents("t", [TOTAL, "2024", "2024-01"], None) == {
        "2024": TOTAL,
        "2024-01": "2024",
    }
    assert infer_parents("x", [TOTAL, "rot", "blau"], None) == {"rot": TOTAL, "blau": TOTAL}


def test_read_code_list_names_line(tmp_path) -> None:  # type: ignore[no-untyped-def]
    good = tmp_path / "art.csv"
    good.write_text("code,parent\nA,\nA1,A\nA2,A\n", encoding="utf-8")
    assert read_code_list(good) == {"A": None, "A1": "A", "A2": "A"}
    bad = tmp_path / "bad.csv"
    bad.write_text("code,parent\nA,\nA,\n", encoding="utf-8")
    with pytest.raises(BadInput) as exc:
        read_code_list(bad)
    assert exc.value.line == 3 and exc.value.column == "code"


def _protect(rows: dict, rules: Rules, sql: str = "SELECT * FROM t"):  # type: ignore[no-untyped-def]
    con = duckdb.connect()
    con.register("t", pa.table(rows))
    return protect(con, sql, rules)


def _cell(prot, **codes):  # type: ignore[no-untyped-def]
    rows = prot.table.to_pylist()
    hits = [r for r in rows if all(r[k] == v for k, v in codes.items())]
    assert len(hits) == 1, hits
    return hits[0]


def test_frequency_rule_and_totals_by_hand() -> None:
    # region 01001: 1 record, 01002: 4, 01003: 5 -> Land 01 has 10; all in one Regierungsbezirk.
    regions = ["01001"] + ["01002"] * 4 + ["01003"] * 5
    prot = _protect({"region": regions}, Rules(dims=[Dim("region", "ags")]))
    assert _cell(prot, region=TOTAL)["n"] == 10
    assert _cell(prot, region="010")["n"] == 10  # Regierungsbezirk level (a single one here)
    small = _cell(prot, region="01001")
    assert small["status"] == "primary" and small["n"] is None
    # Hiding 01001 alone is useless: one more cell of the Land must go.
    assert prot.report["primary"] == 1 and prot.report["secondary"] >= 1
    assert (
        sum(r["status"] == "secondary" for r in prot.table.to_pylist()) == prot.report["secondary"]
    )
    assert prot.audit() == []


def test_dominance_and_p_percent_levels_by_hand() -> None:
    # Cell X: firms contribute 90, 5, 5 (X = 100). Cell Y: 40, 30, 30. Cell Z: 50, 50, 10, 10.
    rows = {
        "k": ["X"] * 3 + ["Y"] * 3 + ["Z"] * 4,
        "firma": ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"],
        "umsatz": [90.0, 5, 5, 40, 30, 30, 50, 50, 10, 10],
    }
    rules = Rules(dims=[Dim("k")], measures=["umsatz"], contributor="firma", p_percent=10.0)
    prot = _protect(rows, rules)
    status = {r["k"]: r["status"] for r in prot.table.to_pylist()}
    # X: top 2 = 95 > 85 % of 100 -> dominance; Y: 70 <= 85; Z: 100 > 85 % of 120 = 102? no.
    assert status["X"] == "primary"
    assert status["Y"] != "primary"
    assert status["Z"] != "primary"  # 100 <= 102, and p%: 120-50-50 = 20 >= 5
    t = prot.targets[0]
    codes = prot.cells.codes[0]
    x = int(np.flatnonzero(codes == "X")[0])
    # UPL = max(dominance: 100/85*95 - 100, p%: 0.1*90 - (100-90-5)) = max(11.76.., 4)
    assert t.upper[x] == pytest.approx(100 / 85 * 95 - 100)
    assert t.lower[x] == pytest.approx(100 / 85 * 95 - 100)
    assert prot.audit() == []


def test_p_percent_alone_and_contributor_sums() -> None:
    # One firm has two records in cell X: its contribution is 60 + 30 = 90.
    rows = {
        "k": ["X", "X", "X", "X", "Y", "Y", "Y"],
        "firma": ["a", "a", "b", "c", "d", "e", "f"],
        "umsatz": [60.0, 30, 6, 4, 10, 10, 10],
    }
    rules = Rules(
        dims=[Dim("k")], measures=["umsatz"], contributor="firma", dominance=None, p_percent=10.0
    )
    prot = _protect(rows, rules)
    x = _cell(prot, k="X")
    assert x["status"] == "primary" and x["n"] is None  # 100 - 90 - 6 = 4 < 9
    t = prot.targets[0]
    i = int(np.flatnonzero(prot.cells.codes[0] == "X")[0])
    assert t.upper[i] == pytest.approx(0.1 * 90 - (100 - 90 - 6))
    assert int(prot.cells.contributors[i]) == 3


def test_zero_cells_configurable() -> None:
    rows = {"k": ["A", "B", "B", "B", "C", "C", "C"], "v": [0.0, 1, 2, 3, 4, 5, 6]}
    safe = _protect(rows, Rules(dims=[Dim("k")], measures=["v"], dominance=None))
    assert _cell(safe, k="A")["status"] == ""
    ruled = _protect(
        rows, Rules(dims=[Dim("k")], measures=["v"], dominance=None, zero_cells="rules")
    )
    assert _cell(ruled, k="A")["status"] == "primary"
    assert ruled.audit() == []


def test_bad_source_names_the_column() -> None:
    with pytest.raises(BadInput) as exc:
        _protect({"k": ["A", None]}, Rules(dims=[Dim("k")]))
    assert exc.value.column == "k"
    with pytest.raises(BadInput) as exc:
        _protect({"k": ["A"], "v": [-1.0]}, Rules(dims=[Dim("k")], measures=["v"]))
    assert exc.value.column == "v" and "negative" in str(exc.value)
    with pytest.raises(BadInput) as exc:
        _protect({"k": ["A"]}, Rules(dims=[Dim("k"), Dim("nope")]))
    assert exc.value.column == "nope"
    with pytest.raises(BadInput) as exc:
        _protect({"k": ["A"]}, Rules(dims=[Dim("k", "ags")]))
    assert exc.value.column == "k"


def test_time_dimension_from_dates() -> None:
    import datetime as dt

    days = [dt.date(2024, m, 3) for m in (1, 1, 1, 2, 4, 4, 4, 4)]
    prot = _protect({"tag": days}, Rules(dims=[Dim("tag", "time")]))
    codes = {r["tag"]: r["n"] for r in prot.table.to_pylist() if r["status"] == ""}
    assert codes[TOTAL] == 8 and codes["2024"] == 8
    assert codes["2024-Q1"] == 4 and codes["2024-Q2"] == 4 and codes["2024-04"] == 4
    assert _cell(prot, tag="2024-02")["status"] == "primary"
    # Q1 = January + February: January must go too, or February is Q1 minus January.
    assert _cell(prot, tag="2024-01")["status"] == "secondary"
    assert prot.audit() == []
