"""Dashboard specs (validation with line numbers), shipped boundaries, process-map layout."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from datenlabor.dashboards import boundaries
from datenlabor.dashboards.processmap import END, START, layout
from datenlabor.dashboards.spec import load_spec
from datenlabor.errors import BadInput

SPECS = Path(__file__).resolve().parents[1] / "src" / "datenlabor" / "data" / "dashboards"

GOOD = """\
title: {de: Anträge, en: Applications}
sources:
  log: {log: antraege-log}
  tabelle: {dataset: antraege, columns: {region: Kreisschlüssel}}
filters:
  - {id: period, type: period, default: {start: 2024-01-01, end: 2024-07-01}}
  - {id: region, type: region, column: region, level: land}
tiles:
  - {id: cases, type: kpi, measure: cases}
  - {id: volume, type: bar, metric: cases_over_time, freq: week}
  - {id: map, type: map, value: throughput_median}
  - {id: sums, type: bar, source: tabelle, x: Monat, y: Anträge}
"""


def _error(text: str) -> BadInput:
    with pytest.raises(BadInput) as info:
        load_spec(text, file="board.yaml")
    return info.value


def test_valid_spec_and_defaults() -> None:
    spec = load_spec(GOOD)
    assert [t.id for t in spec.tiles] == ["cases", "volume", "map", "sums"]
    assert spec.source_of(spec.tiles[0])[0] == "log"  # the first source by default
    assert spec.tiles[3].y == ["Anträge"]  # a single column becomes a list
    assert spec.period_filter() is not None and spec.visibility == "internal"


@pytest.mark.parametrize(
    ("old", "new", "line", "field", "says"),
    [
        (
            "metric: cases_over_time",
            "metric: cases_per_moon",
            10,
            "tiles.1.metric",
            "choose one of",
        ),
        ("type: kpi", "type: pie", 9, "tiles.0.type", "'kpi'"),
        ("level: land}", "level: bundesland}", 7, "filters.1.level", "'land'"),
        ("source: tabelle", "source: nirgends", 12, "tiles.3.source", "no source 'nirgends'"),
        ("x: Monat, ", "", 12, "tiles.3.x", "needs x and y"),
        ("measure: cases}", "measure: cases, colour: red}", 9, "tiles.0.colour", "Extra inputs"),
        ("{id: map,", "{id: volume,", None, "(top level)", "tile id 'volume' used twice"),
    ],
)
def test_errors_name_line_and_field(
    old: str, new: str, line: int | None, field: str, says: str
) -> None:
    assert old in GOOD
    err = _error(GOOD.replace(old, new))
    assert err.file == "board.yaml"
    assert err.column == field
    if line is not None:
        assert err.line == line
    assert says in err.reason


def test_deadline_rule_checked_where_written() -> None:
    text = GOOD + "  - {id: late, type: kpi, measure: breach_rate, deadline: 'A -> B soon'}\n"
    err = _error(text)
    assert (err.line, err.column) == (13, "tiles.4.deadline")
    assert "cannot read deadline rule" in err.reason
    err = _error(GOOD + "  - {id: late, type: kpi, measure: breach_rate}\n")
    assert err.column == "tiles.4.deadline" and "needs a deadline rule" in err.reason


def test_broken_yaml_and_wrong_shapes() -> None:
    err = _error("title: x\nsources: {a: {log: b}\ntiles: []\n")
    assert err.line is not None and err.line >= 2 and "not valid YAML" in err.reason
    assert "YAML mapping" in _error("- a\n- b\n").reason
    err = _error("title: x\nsources:\n  a: {log: b, sql: SELECT 1}\ntiles: [{id: k, type: kpi}]\n")
    assert (err.line, err.column) == (3, "sources.a") and "exactly one of" in err.reason


def test_shipped_demo_specs_are_valid() -> None:
    for path in SPECS.glob("*.yaml"):
        spec = load_spec(path.read_text(encoding="utf-8"), file=path.name)
        assert len(spec.tiles) == 12, path.name  # the benchmark's 12-tile dashboards
        assert {t.type for t in spec.tiles} >= {"kpi", "bar", "histogram", "process_map"}


# -- boundaries -----------------------------------------------------------------------------
def test_boundaries_package_data() -> None:
    land, kreis = boundaries.load("land"), boundaries.load("kreis")
    assert [f["id"] for f in land["features"]] == [f"{i:02d}" for i in range(1, 17)]
    assert len(kreis["features"]) == 401
    assert boundaries.names("land")["05"] == "Nordrhein-Westfalen"
    assert boundaries.names("kreis")["09162"] == "München, Kreisfreie Stadt"
    assert boundaries.names("kreis")["09184"] == "München, Landkreis"
    assert "GeoBasis-DE / BKG" in land["attribution"]
    size = sum(p.stat().st_size for p in boundaries.DATA.glob("*.geojson"))
    assert size < 1_000_000
    # every Kreis key is also in the official key list the rest of the pool checks against
    from datenlabor.pool import ags

    keys = set(ags.key_table().column("key").to_pylist())
    assert {f["id"] for f in kreis["features"]} <= keys


def test_boundaries_rebuild_from_the_real_source(tmp_path: Path) -> None:
    pytest.importorskip("shapely")
    from conftest import shared_file

    src = shared_file("geo/vg5000_laender.geojson").parent
    sizes = boundaries.build(src, tmp_path)
    try:
        for name in ("laender", "kreise"):
            built = json.loads((tmp_path / f"{name}.geojson").read_text(encoding="utf-8"))
            shipped = json.loads((boundaries.DATA / f"{name}.geojson").read_text(encoding="utf-8"))
            assert built == shipped, f"{name}.geojson is not what the build makes"
        assert sizes["kreise"] < 700_000
        # The Länder were merged: Bayern (land and Bodensee parts) is one feature.
        import shapely
        from shapely.geometry import shape

        laender = json.loads((tmp_path / "laender.geojson").read_text(encoding="utf-8"))
        by = next(f for f in laender["features"] if f["id"] == "09")
        assert shape(by["geometry"]).is_valid
        kreise = [shape(f["geometry"]) for f in shipped["features"]]
        # A coverage: no two Kreise overlap after simplification.
        assert shapely.coverage_is_valid(kreise)
    finally:
        boundaries.load.cache_clear()
        boundaries.names.cache_clear()


# -- process map layout ---------------------------------------------------------------------
def test_layout_layers_loops_and_positions() -> None:
    edges = [
        {"from": "Eingang", "to": "Prüfung", "count": 10, "median_s": 60.0},
        {"from": "Prüfung", "to": "Nachforderung", "count": 4, "median_s": 3600.0},
        {"from": "Nachforderung", "to": "Prüfung", "count": 4, "median_s": 86400.0},
        {"from": "Prüfung", "to": "Bescheid", "count": 10, "median_s": 7200.0},
        {"from": "Bescheid", "to": "Bescheid", "count": 1, "median_s": 5.0},
    ]
    g = layout(edges, start={"Eingang": 10}, end={"Bescheid": 10})
    y = {n["id"]: n["y"] for n in g["nodes"]}
    assert y[START] < y["Eingang"] < y["Prüfung"] < y["Bescheid"] < y[END]
    assert y["Prüfung"] < y["Nachforderung"]
    back = {(e["from"], e["to"]) for e in g["edges"] if e["back"]}
    assert back == {("Nachforderung", "Prüfung"), ("Bescheid", "Bescheid")}
    widths = {(e["from"], e["to"]): e["width"] for e in g["edges"]}
    assert widths[("Eingang", "Prüfung")] > widths[("Prüfung", "Nachforderung")]
    for n in g["nodes"]:  # inside the drawing, no two nodes on one spot
        assert n["x"] >= 0 and n["x"] + n["w"] <= g["width"] and n["y"] + n["h"] <= g["height"]
    assert len({(n["x"], n["y"]) for n in g["nodes"]}) == len(g["nodes"])
    slow = layout(edges, start={"Eingang": 10}, end={"Bescheid": 10}, measure="performance")
    widths = {(e["from"], e["to"]): e["width"] for e in slow["edges"]}
    assert widths[("Nachforderung", "Prüfung")] > widths[("Eingang", "Prüfung")]
    assert layout([], start={}, end={})["nodes"] == []
