"""The quality report of a dataset version, computed with vectorized DuckDB SQL.

``quality_report(con, relation, schema=...)`` runs a constant number of queries: one row
count, one aggregate over all columns, one value count of the text columns with few values
(only with ``files``, see below), one detail aggregate (top values, date plausibility,
examples; skipped when nothing needs it), one query per AGS/ARS column and one for the
primary key. The report is a JSON-serialisable dict with stable keys:

``format``          ``"datenlabor-quality/1"``
``generated_on``    ISO date used as "today" for date plausibility
``row_count``, ``column_count``
``distinct_method`` ``"exact"`` (count(DISTINCT)) or ``"approximate"`` (HyperLogLog,
                    approx_count_distinct; used above 1 million rows, except for columns
                    that Parquet footers prove to hold at most 1 million distinct values:
                    those are counted exactly and say so in ``distinct_exact``)
``columns``         one dict per column, in order:
    ``name``, ``type`` (Table Schema type), ``storage_type`` (DuckDB), ``semantic``,
    ``non_null``, ``null``, ``completeness`` (share 0..1, None without rows),
    ``distinct``, ``distinct_exact`` (exact for columns with top values in any mode, and
                     for columns with a small footer bound, see ``distinct_method``),
    ``conformance``  ``{"method": "storage-type"|"declared-type"|"hint"|"semantic", ...}``:
                     typed columns conform by construction (share 1.0); text columns with a
                     non-string type in the schema: ``conforming``, ``share``, ``examples``;
                     other text columns: ``hints`` (share of non-null values that would
                     conform to integer, number, number_de ``1.234,56``, date_iso, date_de
                     ``31.12.2023``, datetime_iso, datetime_de), ``best`` (the chosen hint:
                     at least 95% conform; integers with leading zeros stay text),
                     ``suggestion`` (a field patch such as ``{"type": "number",
                     "decimalChar": ",", "groupChar": "."}``, or None) and ``examples`` of
                     values that do not fit it,
    ``range``        ``{"min", "max"}`` for numbers, dates and times;
                     ``{"min_length", "max_length"}`` for text; else None,
    ``top_values``   ``[{"value", "count"}]`` (most frequent first) for text and boolean
                     columns with at most 10 distinct values, else None,
    ``dates``        ``{"before_1900", "after_limit", "limit", "examples"}`` or None,
    ``ags``          for ``datenlabor:semantic`` ags/ars columns: ``distinct_keys``,
                     ``invalid_format`` and ``unknown`` (each ``rows``, ``distinct``,
                     ``examples``; ``DG`` for Germany is valid), ``levels`` (``{level:
                     {"distinct", "known"}}`` for germany, land, regierungsbezirk, kreis,
                     gemeindeverband (known None: not in the list), gemeinde), else None
``primary_key``     ``{"fields", "null_rows", "duplicate_keys", "duplicate_rows", "examples"}``
                    or None
``issues``          ``[{"type", "severity", "column", "message", "count"}]``; types:
                    missing-values, duplicate-key, type-error, type-hint, ags-invalid-format,
                    ags-unknown-key, ags-as-number, implausible-date; severity error|warning|info
``summary``         ``{"errors", "warnings", "infos", "score"}``: score 0..100 is the share of
                    cells without a recorded defect (missing, type error, invalid or unknown
                    key, implausible date, duplicate key row)

When the caller passes ``files`` (the Parquet files the relation reads, all of them and
nothing else, as for a version snapshot), null counts and the min/max of numbers, dates and
timestamps come from the files' footers (row-group statistics) instead of the aggregate pass,
and the footers' per-row-group dictionary sizes and value ranges bound the distinct count of a
column. The report is the same either way; only less is computed. Footers are trusted only
where they are complete and written by DuckDB (the writer of every pool file), and only for
storage types whose statistics equal DuckDB's own min()/max() (a DOUBLE column with NaN has
no min/max in DuckDB's footers and is aggregated).
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from datenlabor.errors import BadInput
from datenlabor.pool import ags
from datenlabor.pool import schema as ts

FORMAT = "datenlabor-quality/1"
EXACT_DISTINCT_UP_TO = 1_000_000
# Text columns whose footers show at most this many distinct values in every row group are
# measured per distinct value instead of per row (length, type shapes, distinct count).
FEW_VALUES_PER_GROUP = 2_000
TOP_VALUES = 10
EXAMPLES = 5
_KEYS = "__dl_ags_keys"  # the official key list, registered by datenlabor.pool.ags
_LEVELS = {2: "land", 3: "regierungsbezirk", 5: "kreis", 8: "gemeinde", 9: "gemeindeverband"}
_LEVELS[12] = "gemeinde"
# German dates for the type hint: format and day/month ranges (a calendar check is too slow)
_DE_DATE = r"(0?[1-9]|[12][0-9]|3[01])\.(0?[1-9]|1[0-2])\.[0-9]{4}"
# Narrower types a text column may conform to, as Table Schema field patches.
_HINTS = {  # hint: (field patch, description)
    "integer": ({"type": "integer"}, "integers"),
    "number": ({"type": "number"}, "numbers"),
    "number_de": (
        {"type": "number", "decimalChar": ",", "groupChar": "."},
        "numbers in German format (1.234,56)",
    ),
    "date_iso": ({"type": "date"}, "ISO dates (2023-12-31)"),
    "date_de": ({"type": "date", "format": "%d.%m.%Y"}, "German dates (31.12.2023)"),
    "datetime_iso": ({"type": "datetime"}, "ISO timestamps"),
    "datetime_de": (
        {"type": "datetime", "format": "%d.%m.%Y %H:%M:%S"},
        "German timestamps (31.12.2023 14:30:00)",
    ),
}


def quality_report(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    *,
    schema: dict,
    primary_key: list[str] | None = None,
    today: dt.date | None = None,
    exact_distinct: bool | None = None,
    files: Sequence[str | Path] | None = None,
) -> dict:
    """The quality report of the rows in ``relation`` (see the module docstring).

    ``schema`` supplies field types, formats and ``datenlabor:semantic`` hints (an inferred or a
    user schema); ``primary_key`` defaults to its ``primaryKey``. ``exact_distinct`` forces
    exact (True) or approximate (False) distinct counts for every column. ``files``: the
    Parquet files that ``relation`` reads in full (``SELECT *``, no filter), whose footers then
    replace part of the aggregate work; files that do not match the relation's row count
    are ignored.
    """
    pk = primary_key if primary_key is not None else schema.get("primaryKey") or []
    pk = [pk] if isinstance(pk, str) else list(pk)
    report = _Report(con, relation, schema, pk, today or dt.date.today(), exact_distinct)
    if files:
        report.footer = read_footers(files, [name for name, _, _ in report.cols], report.rows)
    return report.build()


# Storage types whose Parquet min/max statistics (as DuckDB writes them, read by pyarrow) are
# the values DuckDB's min()/max() return; tests/test_quality_footers.py compares them.
_FOOTER_RANGE = {
    "TINYINT": int,
    "SMALLINT": int,
    "INTEGER": int,
    "BIGINT": int,
    "DOUBLE": float,
    "FLOAT": float,
    "DATE": dt.date,
    "TIMESTAMP": dt.datetime,
}


@dataclass
class Footers:
    """Per-column facts summed over the row groups of a set of Parquet files.

    A column is in a dict only when every row group of every file supplied that fact.
    """

    rows: int = 0
    nulls: dict[str, int] = field(default_factory=dict)
    ranges: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # (None, None): no values
    distinct_bound: dict[str, int] = field(default_factory=dict)  # sum of dictionary sizes
    distinct_max: dict[str, int] = field(default_factory=dict)  # largest dictionary size


def read_footers(files: Sequence[str | Path], names: list[str], rows: int | None = None):
    """Null counts, min/max and distinct bounds of top-level columns from Parquet footers.

    Only the footers are read (no data pages). Returns None when a file was not written by
    DuckDB or when ``rows`` is given and the files hold a different number of rows.
    """
    import pyarrow.parquet as pq

    out = Footers(nulls=dict.fromkeys(names, 0), distinct_bound=dict.fromkeys(names, 0))
    low: dict[str, Any] = {}
    high: dict[str, Any] = {}
    no_range: set[str] = set()
    for path in files:
        meta = pq.read_metadata(path)
        if not (meta.created_by or "").startswith("DuckDB"):
            return None
        out.rows += meta.num_rows
        leaves: dict[str, int] = {}
        for j in range(meta.num_columns):
            col = meta.schema.column(j)
            top_level = col.max_repetition_level == 0 and col.max_definition_level <= 1
            # A path seen twice (a column named "a.b" beside a struct a with a field b) or a
            # nested leaf is not used.
            leaves[col.path] = j if top_level and col.path not in leaves else -1
        for name in names:
            if leaves.get(name, -1) < 0:
                out.nulls.pop(name, None)
                out.distinct_bound.pop(name, None)
                no_range.add(name)
        for i in range(meta.num_row_groups):
            group = meta.row_group(i)
            for name in list(out.nulls):
                stats = group.column(leaves[name]).statistics
                if stats is None or not stats.has_null_count:
                    del out.nulls[name]
                    out.distinct_bound.pop(name, None)
                    no_range.add(name)
                    continue
                out.nulls[name] += stats.null_count
                if group.num_rows == stats.null_count:
                    continue  # only NULLs here: nothing for ranges or distinct values
                if name in out.distinct_bound:
                    if stats.has_distinct_count:
                        out.distinct_bound[name] += stats.distinct_count
                        most = max(out.distinct_max.get(name, 0), stats.distinct_count)
                        out.distinct_max[name] = most
                    else:
                        del out.distinct_bound[name]
                if name in no_range:
                    continue
                if not stats.has_min_max:
                    no_range.add(name)
                    continue
                if name not in low or stats.min < low[name]:
                    low[name] = stats.min
                if name not in high or stats.max > high[name]:
                    high[name] = stats.max
    if rows is not None and out.rows != rows:
        return None
    out.ranges = {n: (low.get(n), high.get(n)) for n in out.nulls if n not in no_range}
    out.distinct_max = {n: out.distinct_max.get(n, 0) for n in out.distinct_bound}
    return out


class _Aggregate:
    """Collects aggregate expressions and runs them as one query."""

    def __init__(self) -> None:
        self.items: list[tuple[Any, str]] = []

    def add(self, key: Any, sql: str) -> None:
        self.items.append((key, sql))

    def run(self, con, source: str) -> dict:
        if not self.items:
            return {}
        row = con.sql(f"SELECT {', '.join(s for _, s in self.items)} FROM {source}").fetchone()
        return {key: value for (key, _), value in zip(self.items, row, strict=True)}


class _Report:
    def __init__(self, con, relation: str, schema: dict, pk: list, today: dt.date, exact) -> None:
        self.con, self.source, self.pk = con, ts.rel(relation), pk
        self.cols = ts.columns(con, relation)
        for key in pk:
            if key not in [n for n, _, _ in self.cols]:
                raise BadInput(f"primary key field {key!r} is not a column of the data", column=key)
        self.fields = {f["name"]: f for f in schema.get("fields", [])}
        self.missing_values = schema.get("missingValues", [""])
        self.today, self.limit = today, _plus_one_year(today)
        self.rows = con.sql(f"SELECT count(*) FROM {self.source}").fetchone()[0]
        self.exact = self.rows <= EXACT_DISTINCT_UP_TO if exact is None else exact
        self.issues: list[dict] = []
        self.defects = 0  # cells with a recorded defect, for the score
        self.footer: Footers | None = None
        self.known: dict[Any, Any] = {}  # detail facts the first pass already settled

    def issue(self, kind: str, severity: str, column, message: str, count: int, defects=0):
        self.issues.append(
            {"type": kind, "severity": severity, "column": column, "message": message}
            | {"count": count}
        )
        self.defects += defects

    def build(self) -> dict:
        specs = [self._spec(*col) for col in self.cols]
        r1 = self._first_pass(specs)
        detail = _Aggregate()
        for spec in specs:
            self._facts(spec, r1, detail)
        r2 = self.known | detail.run(self.con, self.source)
        for spec in specs:
            self._details(spec, r2)
        key_specs = [s for s in specs if s["semantic"] in ("ags", "ars") and s["text"]]
        if key_specs:
            ags.register(self.con, name=_KEYS)
        for spec in key_specs:
            spec["report"]["ags"] = self._keys(spec)
        key_report = self._primary_key(r1[("", "pk_null")]) if self.pk else None
        order = {"error": 0, "warning": 1, "info": 2}
        self.issues.sort(key=lambda i: order[i["severity"]])
        cells = self.rows * len(self.cols)
        summary = {s + "s": sum(i["severity"] == s for i in self.issues) for s in order}
        summary["score"] = (
            round(100 * (1 - min(self.defects, cells) / cells), 1) if cells else 100.0
        )
        return {
            "format": FORMAT,
            "generated_on": self.today.isoformat(),
            "row_count": self.rows,
            "column_count": len(self.cols),
            "distinct_method": "exact" if self.exact else "approximate",
            "columns": [s["report"] for s in specs],
            "primary_key": key_report,
            "issues": self.issues,
            "summary": summary,
        }

    def _spec(self, name: str, type_str: str, type_id: str) -> dict:
        stored, _ = ts.table_schema_type(type_str, type_id)
        field = self.fields.get(name, {"name": name, "type": stored})
        spec = {"name": name, "c": ts.ident(name), "stored": stored, "field": field}
        spec |= {"storage": (type_str, type_id), "text": ts.is_text(type_str, type_id)}
        spec["semantic"] = field.get(ts.SEMANTIC)
        if spec["text"] and field.get("type", "string") not in ("string", "any"):
            is_missing, spec["value"] = ts.value_sql(
                name, spec["storage"], field, self.missing_values
            )
            spec["bad"] = f"NOT {is_missing} AND {spec['value']} IS NULL"
        return spec

    def _first_pass(self, specs: list[dict]) -> dict:
        """One aggregate over all columns: counts, ranges, lengths, type shapes.

        Counts and ranges the footers supply are taken from there instead.
        """
        agg, shapes = _Aggregate(), list[str]()
        known: dict[Any, Any] = {}
        grouped: list[dict] = []
        for spec in specs:
            name, c = spec["name"], spec["c"]
            ranged = spec["stored"] in ("integer", "number", "date", "datetime", "time")
            footer = self._footer_facts(spec, ranged)
            known |= footer
            if (name, "n") not in footer:
                agg.add((name, "n"), f"count({c})")
            spec["exact"] = self.exact or self._small_distinct(spec, footer)
            if spec["text"] and "bad" not in spec and footer and self._few_values(spec):
                spec["exact"] = True
                grouped.append(spec)  # distinct, length and shapes per distinct value
                continue
            distinct = f"count(DISTINCT {c})" if spec["exact"] else f"approx_count_distinct({c})"
            agg.add((name, "distinct"), distinct)
            if ranged and (name, "range") not in footer:
                agg.add((name, "range"), f"[min({c}), max({c})]")
            if spec["text"]:
                agg.add((name, "length"), f"[min(length({c})), max(length({c}))]")
                if "bad" in spec:
                    agg.add((name, "bad"), _count_if(spec["bad"]))
                elif not spec["semantic"]:
                    shapes.append(f"{_shape_sql(spec)} AS __dl_h{len(shapes)}")
                    agg.add((name, "shapes"), f"histogram(__dl_h{len(shapes) - 1})")
        if self.pk:
            agg.add(
                ("", "pk_null"),
                _count_if(" OR ".join(f"{ts.ident(k)} IS NULL" for k in self.pk)),
            )
        source = f"(SELECT *, {', '.join(shapes)} FROM {self.source})" if shapes else self.source
        if not grouped:
            return known | agg.run(self.con, source)
        return known | self._run_grouped(agg, source, grouped)

    def _few_values(self, spec: dict) -> bool:
        f = self.footer
        most = f.distinct_max.get(spec["name"]) if f is not None else None
        return most is not None and most <= FEW_VALUES_PER_GROUP

    def _run_grouped(self, agg: _Aggregate, source: str, grouped: list[dict]) -> dict:
        """The first pass, and the facts of the grouped columns from their distinct values.

        The grouped columns are counted by value in one pass (``GROUPING SETS``, one set per
        column); lengths, type shapes (weighted by the counts) and exact distinct counts are
        then computed once per distinct value instead of once per row: the same numbers at a
        fraction of the work (DuckDB's ``histogram`` aggregate is several times slower).
        """
        out = agg.run(self.con, source)
        cols = [spec["c"] for spec in grouped]
        sets = ", ".join(f"({c})" for c in cols)
        shapes, aggs, keys = [], [], []
        for j, spec in enumerate(grouped):
            c, name = spec["c"], spec["name"]
            aggs += [f"count({c})", f"[min(length({c})), max(length({c}))]"]
            keys += [(name, "distinct"), (name, "length")]
            if not spec["semantic"]:
                shapes.append(f"{_shape_sql(spec)} AS __dl_h{j}")
                counts = ", ".join(
                    f"coalesce(sum(__dl_n) FILTER (WHERE __dl_h{j} = {k}), 0)" for k in range(10)
                )
                aggs.append(f"[{counts}]")
                keys.append((name, "shapes"))
        values = (
            f"SELECT {', '.join(cols)}, count(*) AS __dl_n FROM {self.source} "
            f"GROUP BY GROUPING SETS ({sets})"
        )
        if shapes:
            values = f"SELECT *, {', '.join(shapes)} FROM ({values})"
        row = self.con.sql(f"SELECT {', '.join(aggs)} FROM ({values})").fetchone()
        assert row is not None
        for key, value in zip(keys, row, strict=True):
            if key[1] == "shapes":
                value = {k: int(n) for k, n in enumerate(value) if n}
            out[key] = value
        return out

    def _footer_facts(self, spec: dict, ranged: bool) -> dict:
        """The non-null count and (for a ranged column) the [min, max] from the footers."""
        name, f = spec["name"], self.footer
        if f is None or name not in f.nulls:
            return {}
        facts: dict[Any, Any] = {(name, "n"): f.rows - f.nulls[name]}
        kind = _FOOTER_RANGE.get(spec["storage"][0])
        if ranged and kind is not None and name in f.ranges:
            low, high = f.ranges[name]
            # A value of another Python type means the file does not store what DuckDB
            # reads (a logical type pyarrow maps differently): aggregate instead.
            typed = all(v is None or type(v) is kind for v in (low, high))
            if typed and (low is None) == (high is None):
                facts[(name, "range")] = [low, high]
        return facts

    def _small_distinct(self, spec: dict, footer: dict) -> bool:
        """Whether the footers prove at most EXACT_DISTINCT_UP_TO distinct values.

        Bounds: the non-null count, the sum of per-row-group dictionary sizes, and for
        integers and dates the width of the value range. Such columns are counted exactly:
        count(DISTINCT) over few distinct values is also cheaper than HyperLogLog.
        """
        name, f = spec["name"], self.footer
        if f is None or (name, "n") not in footer:
            return False
        bounds = [footer[(name, "n")]]
        if name in f.distinct_bound:
            bounds.append(f.distinct_bound[name])
        low, high = footer.get((name, "range"), (None, None))
        if isinstance(low, int) and isinstance(high, int):
            bounds.append(high - low + 1)
        elif type(low) is dt.date and type(high) is dt.date:
            bounds.append((high - low).days + 1)
        return min(bounds) <= EXACT_DISTINCT_UP_TO

    def _facts(self, spec: dict, r1: dict, detail: _Aggregate) -> None:
        """Column facts from the first pass; queue what the detail pass must look at."""
        name, c, rows = spec["name"], spec["c"], self.rows
        n = r1[(name, "n")]
        spec["report"] = col = {
            "name": name,
            "type": spec["field"].get("type", spec["stored"]),
            "storage_type": spec["storage"][0],
            "semantic": spec["semantic"],
            "non_null": n,
            "null": rows - n,
            "completeness": round(n / rows, 6) if rows else None,
            "distinct": r1[(name, "distinct")],
            "distinct_exact": spec["exact"],
            "conformance": {"method": "storage-type", "share": 1.0},
            "range": None,
            "top_values": None,
            "dates": None,
            "ags": None,
        }
        if (name, "range") in r1:
            col["range"] = dict(zip(["min", "max"], map(_json, r1[(name, "range")]), strict=True))
        if (name, "length") in r1:
            col["range"] = dict(
                zip(["min_length", "max_length"], r1[(name, "length")], strict=True)
            )
        if rows - n:
            what = f"all {_n(rows, 'value')}" if not n else f"{rows - n:,} of {_n(rows, 'value')}"
            text = f"{what} missing ({(rows - n) / rows:.1%})"
            severity = "error" if name in self.pk else "warning"
            self.issue("missing-values", severity, name, text, rows - n, rows - n)
        if not spec["text"]:
            col["conformance"]["note"] = (
                f"typed column ({spec['storage'][0]}): conforms by construction"
            )
            named = ts.key_name(name, strong=True) or spec["semantic"] in ("ags", "ars")
            if spec["stored"] == "integer" and named:
                text = "regional key stored as a number: leading zeros are lost (01001 -> 1001)"
                self.issue("ags-as-number", "warning", name, text, n)
        elif spec["semantic"]:
            col["conformance"] = {"method": "semantic", "note": f"checked as {spec['semantic']}"}
        elif "bad" in spec:
            bad = r1[(name, "bad")]
            col["conformance"] = {
                "method": "declared-type",
                "type": col["type"],
                "conforming": n - bad,
            }
            col["conformance"] |= {"share": round((n - bad) / n, 6) if n else None, "examples": []}
            if bad:
                detail.add((name, "examples"), _examples(c, spec["bad"], EXAMPLES))
        else:
            _hint(spec, r1, n, detail)
        if (
            col["distinct"] <= TOP_VALUES + 6
            and n
            and (spec["text"] or spec["stored"] == "boolean")
        ):
            detail.add((name, "hist"), f"histogram({c})")  # approximate counts may be too high
        date_sql = _date_sql(spec)
        if date_sql:
            spec["date_sql"] = date_sql
            shown = c if spec["text"] else date_sql
            low, high = r1.get((name, "range"), (None, None)) if not spec["text"] else (None, None)
            clear = {  # the range shows no value before 1900 / after the limit: nothing to count
                "old": _not_before(low, r1[(name, "n")], dt.date(1900, 1, 1)),
                "new": _not_after(high, r1[(name, "n")], self.limit),
            }
            for key, cond in (("old", "< DATE '1900-01-01'"), ("new", f"> DATE '{self.limit}'")):
                if clear[key]:
                    self.known |= {(name, key): 0, (name, key + "_ex"): []}
                    continue
                detail.add((name, key), _count_if(f"{date_sql} {cond}"))
                detail.add(
                    (name, key + "_ex"), _examples(shown, f"{date_sql} {cond}", 3, key == "new")
                )

    def _details(self, spec: dict, r2: dict) -> None:
        name, col = spec["name"], spec["report"]
        conf = col["conformance"]
        if (name, "examples") in r2:
            conf["examples"] = examples = [_json(v) for v in r2[(name, "examples")] or []]
            if conf["method"] == "declared-type":
                bad = col["non_null"] - conf["conforming"]
                text = f"{_n(bad, 'value')} not valid as {col['type']}, e.g. {_list(examples)}"
                self.issue("type-error", "error", name, text, bad, bad)
        if conf["method"] == "hint" and conf["suggestion"]:
            self.issue("type-hint", "info", name, _hint_message(col), col["non_null"])
        if (name, "hist") in r2:
            hist = r2[(name, "hist")] or {}
            col["distinct"], col["distinct_exact"] = len(hist), True
            if len(hist) <= TOP_VALUES:
                ordered = sorted(hist.items(), key=lambda kv: (-kv[1], str(kv[0])))
                col["top_values"] = [{"value": _json(k), "count": v} for k, v in ordered]
        if "date_sql" in spec:
            old, new = r2[(name, "old")], r2[(name, "new")]
            examples = [
                _json(v) for v in (r2[(name, "old_ex")] or []) + (r2[(name, "new_ex")] or [])
            ]
            col["dates"] = {"before_1900": old, "after_limit": new, "limit": self.limit.isoformat()}
            col["dates"]["examples"] = examples
            if old or new:
                parts = [f"{old:,} before 1900"] * bool(old) + [
                    f"{new:,} after {self.limit}"
                ] * bool(new)
                text = f"{' and '.join(parts)}, e.g. {_list(examples)}"
                self.issue("implausible-date", "warning", name, text, old + new, old + new)

    def _keys(self, spec: dict) -> dict:
        """Format and official-list checks of a regional key column, over its distinct keys.

        GENESIS' ``DG`` (Germany as a whole) counts as a valid, known key.
        """
        c, source = spec["c"], self.source
        level = "CASE WHEN key = 'DG' THEN 'germany' ELSE CASE length(key) "
        level += " ".join(f"WHEN {n} THEN '{lv}'" for n, lv in _LEVELS.items()) + " END END"
        ok = f"(key = 'DG' OR {ags.format_ok_sql('key')})"
        known = f"(level = 'germany' OR {ags.known_sql('key', _KEYS)})"
        aggs = ["count(*)"]
        for cond in ("NOT ok", "ok AND NOT known AND level <> 'gemeindeverband'"):
            aggs += [
                f"coalesce(sum(n) FILTER (WHERE {cond}), 0)",
                f"count(*) FILTER (WHERE {cond})",
            ]
            # Top keys by frequency, then name: a bounded top-N aggregate (a list() over
            # millions of distinct bad keys ran out of memory on a 1 GiB upload).
            examples = (
                f"min_by(key, struct_pack(a := -n, b := key), {EXAMPLES}) FILTER (WHERE {cond})"
            )
            aggs.append(f"coalesce({examples}, [])")
        levels = ["germany", *dict.fromkeys(_LEVELS.values())]
        for lv in levels:
            aggs.append(f"count(*) FILTER (WHERE ok AND level = '{lv}')")
            aggs.append(f"count(*) FILTER (WHERE ok AND level = '{lv}' AND known)")
        keys = (
            f"WITH k AS (SELECT {c} AS key, count(*) AS n FROM {source} WHERE {c} IS NOT NULL "
            f"GROUP BY ALL), c AS (SELECT key, n, {ok} AS ok, {level} AS level FROM k) "
            f"SELECT * FROM (SELECT *, {known} AS known FROM c)"
        )
        row = self.con.sql(f"SELECT {', '.join(aggs)} FROM ({keys})").fetchone()
        assert row is not None
        bad, unknown = (
            dict(zip(["rows", "distinct", "examples"], row[i : i + 3], strict=True)) for i in (1, 4)
        )
        result = {"distinct_keys": row[0], "invalid_format": bad, "unknown": unknown, "levels": {}}
        for i, lv in enumerate(levels):
            if row[7 + 2 * i]:
                known_count = None if lv == "gemeindeverband" else row[8 + 2 * i]
                result["levels"][lv] = {"distinct": row[7 + 2 * i], "known": known_count}
        name, label = spec["name"], spec["semantic"].upper()
        if bad["rows"]:
            text = (
                f"no valid {label} key (2, 3, 5, 8, 9 or 12 digits, Land 01-16): "
                f"{_n(bad['rows'], 'value')} ({bad['distinct']:,} distinct), "
                f"e.g. {_list(bad['examples'])}"
            )
            self.issue("ags-invalid-format", "error", name, text, bad["rows"], bad["rows"])
        if unknown["rows"]:
            text = (
                f"not in the official key list (Gebietsstand {ags.GEBIETSSTAND}): "
                f"{_n(unknown['distinct'], 'key')} in {_n(unknown['rows'], 'row')}, e.g. "
                f"{_list(unknown['examples'])}; outdated keys or sub-municipal units?"
            )
            self.issue("ags-unknown-key", "warning", name, text, unknown["rows"], unknown["rows"])
        return result

    def _primary_key(self, null_rows: int) -> dict:
        keys = ", ".join(ts.ident(k) for k in self.pk)
        notnull = " AND ".join(f"{ts.ident(k)} IS NOT NULL" for k in self.pk)
        casts = ", ".join(f"CAST({ts.ident(k)} AS VARCHAR)" for k in self.pk)
        row = self.con.sql(
            f"WITH d AS (SELECT {keys}, count(*) AS n FROM {self.source} WHERE {notnull} "
            f"GROUP BY ALL HAVING count(*) > 1) SELECT count(*), coalesce(sum(n), 0), "
            f"(SELECT list([{casts}, n::VARCHAR]) FROM "
            f"(SELECT * FROM d ORDER BY n DESC, {keys} LIMIT {EXAMPLES})) FROM d"
        ).fetchone()
        dup, dup_rows = row[0], int(row[1])
        examples = [{"key": e[:-1], "count": int(e[-1])} for e in row[2] or []]
        if dup:
            shown = _list([", ".join(e["key"]) for e in examples])
            text = f"{_n(dup, 'key value')} in {_n(dup_rows, 'row')}, e.g. {shown}"
            self.issue("duplicate-key", "error", ", ".join(self.pk), text, dup_rows, dup_rows - dup)
        return {"fields": self.pk, "null_rows": null_rows, "duplicate_keys": dup} | {
            "duplicate_rows": dup_rows,
            "examples": examples,
        }


def _count_if(condition: str) -> str:
    return f"coalesce(count_if({condition}), 0)"  # count_if over no rows is NULL


def _examples(sql: str, condition: str, k: int, largest: bool = False) -> str:
    """Up to k distinct example values (the smallest or largest) where the condition holds."""
    agg = "max" if largest else "min"
    return f"list_distinct({agg}({sql}, 50) FILTER (WHERE {condition}))[1:{k}]"


def _hint(spec: dict, r1: dict, n: int, detail: _Aggregate) -> None:
    """Shares of narrower types a text column would conform to, and a suggestion."""
    h = r1[(spec["name"], "shapes")] or {}
    integer = h.get(1, 0) + h.get(9, 0)
    counts = {"integer": integer, "number": integer + h.get(2, 0) + h.get(3, 0)}
    counts["number_de"] = integer + h.get(2, 0) + h.get(4, 0)
    for i, hint in enumerate(["date_iso", "date_de", "datetime_iso", "datetime_de"]):
        counts[hint] = h.get(5 + i, 0)
    best = None
    if n and counts["integer"] >= ts.SHARE * n:
        best = None if h.get(9) else "integer"  # leading zeros: keys or codes, keep as text
    elif n and counts["number_de"] > counts["number"] and counts["number_de"] >= ts.SHARE * n:
        best = "number_de"
    elif n:
        ranked = ["number", "date_iso", "date_de", "datetime_iso", "datetime_de"]
        best = next((h for h in ranked if counts[h] >= ts.SHARE * n), None)
    spec["report"]["conformance"] = {
        "method": "hint",
        "share": 1.0,
        "hints": {hint: (round(counts[hint] / n, 6) if n else None) for hint in _HINTS},
        "best": best,
        "suggestion": dict(_HINTS[best][0]) if best else None,
        "examples": [],
    }
    if best and counts[best] < n:
        condition = f"NOT ({_hint_sql(best, spec)})"
        detail.add((spec["name"], "examples"), _examples(spec["c"], condition, EXAMPLES))


def _shape_sql(spec: dict) -> str:
    """Classify each text value once (cheap gate, then a cascade) instead of testing all hints.

    0 other, 1 integer, 9 integer with a leading zero, 2 number in both formats (1.234),
    3 number (1234.5), 4 German number (1.234,5), 5 ISO date, 6 German date (format and
    day/month ranges only: strptime is too slow here), 7 ISO timestamp, 8 German timestamp.
    """
    c = spec["c"]

    def h(hint: str) -> str:
        return _hint_sql(hint, spec)

    de_date = rf"regexp_full_match({c}, '{_DE_DATE}')"
    return (  # cheap string tests first, so that each value meets two or three regexes
        f"CASE WHEN {c} IS NULL THEN NULL "
        f"WHEN ascii({c}) NOT BETWEEN 43 AND 57 "  # first character not in +,-./0-9
        f"OR NOT regexp_full_match({c}, '[-+.0-9][-+.,:0-9TZeE ]*') THEN 0 "
        f"WHEN contains({c}, ':') THEN CASE WHEN {h('datetime_iso')} THEN 7 "
        f"WHEN {h('datetime_de')} THEN 8 ELSE 0 END "
        f"WHEN contains({c}, ',') THEN CASE WHEN {h('number_de')} THEN 4 ELSE 0 END "
        f"WHEN substr({c}, 5, 1) = '-' THEN CASE WHEN {h('date_iso')} THEN 5 ELSE 0 END "
        f"WHEN substr({c}, -5, 1) = '.' AND {de_date} THEN 6 "
        f"WHEN {h('integer')} THEN CASE WHEN {c} LIKE '0_%' THEN 9 ELSE 1 END "
        f"WHEN {h('number')} THEN CASE WHEN {h('number_de')} THEN 2 ELSE 3 END "
        f"WHEN {h('number_de')} THEN 4 ELSE 0 END"
    )


def _hint_sql(hint: str, spec: dict) -> str:
    """Whether a value conforms to a hint: the SQL check_against_schema uses (for numbers just
    its regex, which implies a successful cast)."""
    field = {"name": spec["name"], **_HINTS[hint][0]}
    if field["type"] in ("integer", "number"):
        return f"regexp_full_match({spec['c']}, {ts.lit(ts.number_regex(field))})"
    return f"{ts.value_sql(spec['name'], spec['storage'], field, [])[1]} IS NOT NULL"


def _hint_message(col: dict) -> str:
    conf = col["conformance"]
    best, share = conf["best"], conf["hints"][conf["best"]]
    text = f"text column, but {share:.1%} of the values are {_HINTS[best][1]}"
    if conf["examples"]:
        text += f"; the others are e.g. {_list(conf['examples'])}"
    patch = ", ".join(f"{k} {v!r}" for k, v in conf["suggestion"].items() if k != "type")
    return text + f"; consider type {conf['suggestion']['type']}" + (f" ({patch})" if patch else "")


def _date_sql(spec: dict) -> str | None:
    """SQL for the column's values as dates/timestamps, or None for non-date columns."""
    if spec["stored"] in ("date", "datetime"):
        return spec["c"]
    conf = spec["report"]["conformance"]
    if "value" in spec and spec["field"].get("type") in ("date", "datetime"):
        return spec["value"]
    if conf.get("method") == "hint" and conf["suggestion"] and conf["best"].startswith("date"):
        _, value = ts.value_sql(spec["name"], spec["storage"], conf["suggestion"], [])
        return value
    return None


def _not_before(low: Any, n: int, bound: dt.date) -> bool:
    """True if a typed date/timestamp column's minimum shows no value before ``bound``."""
    if not n:
        return True
    if type(low) is dt.date:
        return low >= bound
    if type(low) is dt.datetime and low.tzinfo is None:
        return low >= dt.datetime.combine(bound, dt.time())
    return False


def _not_after(high: Any, n: int, bound: dt.date) -> bool:
    """True if a typed date/timestamp column's maximum shows no value after ``bound``
    (in SQL a timestamp after midnight of ``bound`` is after it)."""
    if not n:
        return True
    if type(high) is dt.date:
        return high <= bound
    if type(high) is dt.datetime and high.tzinfo is None:
        return high <= dt.datetime.combine(bound, dt.time())
    return False


def _plus_one_year(day: dt.date) -> dt.date:
    try:
        return day.replace(year=day.year + 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year + 1, day=28)


def _json(value: Any) -> Any:
    """A JSON-serialisable form of a value DuckDB returned."""
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}{'' if count == 1 else 's'}"


def _list(values: list) -> str:
    return ", ".join(repr(v) if isinstance(v, str) else str(v) for v in values[:EXAMPLES])


def render_text(report: dict) -> str:
    """The report as plain text for a terminal or a log: findings first, then the columns."""
    s = report["summary"]
    out = [
        f"Quality report of {report['generated_on']}: {report['row_count']:,} rows, "
        f"{report['column_count']} columns (distinct counts {report['distinct_method']})",
        f"Score {s['score']:.1f} of 100: {_n(s['errors'], 'error')}, "
        f"{_n(s['warnings'], 'warning')}, {_n(s['infos'], 'note')}",
        "",
    ]
    if report["issues"]:
        out.append("Findings")
        for i in report["issues"]:
            head = f"  {i['severity'].upper():<8} {i['type']:<19} {i['column'] or '-'}: "
            out += textwrap.wrap(
                i["message"], width=100, initial_indent=head, subsequent_indent=" " * 31
            )
    else:
        out.append("No findings.")
    pk = report["primary_key"]
    if pk:
        out.append("")
        state = "unique" if not pk["duplicate_keys"] else f"{pk['duplicate_keys']:,} duplicated"
        out.append(
            f"Primary key ({', '.join(pk['fields'])}): {state}, {_n(pk['null_rows'], 'row')} "
            "with a missing key part"
        )
    out += ["", "Columns"]
    table = [("name", "type", "complete", "distinct", "range", "notes")]
    for c in report["columns"]:
        complete = "-" if c["completeness"] is None else f"{c['completeness']:.1%}"
        distinct = ("" if c["distinct_exact"] else "~") + f"{c['distinct']:,}"
        table.append((c["name"], c["type"], complete, distinct, _range_text(c), _notes(c)))
    widths = [min(max(len(row[i]) for row in table), 28) for i in range(5)]
    for row in table:
        cells = [row[i][: widths[i]].ljust(widths[i]) for i in range(5)]
        out.append(("  " + "  ".join(cells) + "  " + row[5]).rstrip())
    tops = [c for c in report["columns"] if c["top_values"]]
    if tops:
        out += ["", "Top values"]
        for c in tops:
            values = ", ".join(
                f"{'(missing)' if t['value'] is None else t['value']} ({t['count']:,})"
                for t in c["top_values"]
            )
            out += textwrap.wrap(
                values, 100, initial_indent=f"  {c['name']}: ", subsequent_indent="    "
            )
    return "\n".join(out) + "\n"


def _range_text(c: dict) -> str:
    r = c["range"]
    if not r:
        return ""
    if "min_length" in r:
        return "" if r["min_length"] is None else f"length {r['min_length']}-{r['max_length']}"
    return "" if r["min"] is None else f"{r['min']} .. {r['max']}"


def _notes(c: dict) -> str:
    notes = []
    if c["semantic"]:
        notes.append(c["semantic"].upper() if c["semantic"] != "status" else "GENESIS status")
    if c["ags"]:
        for level, n in c["ags"]["levels"].items():
            known = "" if n["known"] is None else f" ({n['known']:,} known)"
            notes.append(f"{_n(n['distinct'], level + ' key')}{known}")
    conf = c["conformance"]
    if conf.get("method") == "hint" and conf.get("best"):
        notes.append(f"looks like {conf['best']} ({conf['hints'][conf['best']]:.1%})")
    if conf.get("method") == "declared-type" and conf["share"] is not None and conf["share"] < 1:
        notes.append(f"{conf['share']:.1%} valid {c['type']}")
    if c["dates"] and (c["dates"]["before_1900"] or c["dates"]["after_limit"]):
        bad = c["dates"]["before_1900"] + c["dates"]["after_limit"]
        notes.append(f"{_n(bad, 'implausible date')}")
    return "; ".join(notes)
