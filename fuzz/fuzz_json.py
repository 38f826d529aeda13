"""Fuzz target: JSON arrays of objects and NDJSON."""

from __future__ import annotations

import harness
from tabular import TabularTarget

TARGET = "json"
INSTRUMENT = ("datenlabor",)
MAX_LEN = 32 * 1024
_target = TabularTarget(suffix=".json", fmt="json")
prepare, one_input = _target.prepare, _target.one_input


def seeds() -> harness.Iterator[harness.Seed]:
    from datenlabor.demo import write_requests_ndjson

    yield from harness.files(
        "shared:ckan/package_show_response.json", "shared:ckan/group_list_response.json"
    )
    path = write_requests_ndjson(harness.scratch() / "requests.ndjson", n=20)
    yield path.name, path.read_bytes()
    yield "array.json", b'[{"ags": "08222", "n": 12, "x": 1.5, "d": "2024-01-31"}, {"ags": null}]'
    yield "lines.ndjson", b'{"a": 1, "b": {"c": [1, 2]}}\n{"a": 2, "b": null}\n'
    yield from harness.regressions(TARGET)


if __name__ == "__main__":
    harness.main(__name__)
