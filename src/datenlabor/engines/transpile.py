"""DuckDB-dialect SQL to Spark SQL, with sqlglot.

Datenlabor writes every shared computation once, in DuckDB's dialect (the default engine).
For Spark the statement is parsed with sqlglot and written out as Spark SQL. sqlglot covers
most of the dialect gap; the rewrites below close the places where its output would run on
Spark but *mean something else* (a wrong answer), and every construct we cannot express is
refused with :class:`UnsupportedOnSpark` naming it, never passed through.
"""

from __future__ import annotations

import functools
import re

import sqlglot
from sqlglot import exp
from sqlglot.dialects.duckdb import DuckDB
from sqlglot.errors import ErrorLevel, SqlglotError, UnsupportedError

from datenlabor.errors import BadInput

READ = "duckdb"
WRITE = "spark"

# DuckDB integer types without a Spark counterpart: the Spark type that holds every value.
_WIDER = {
    exp.DataType.Type.UTINYINT: "SMALLINT",
    exp.DataType.Type.USMALLINT: "INT",
    exp.DataType.Type.UINT: "BIGINT",
    exp.DataType.Type.UBIGINT: "DECIMAL(20, 0)",
    exp.DataType.Type.INT128: "DECIMAL(38, 0)",
    exp.DataType.Type.UINT128: "DECIMAL(38, 0)",
    exp.DataType.Type.TIMESTAMP_S: "TIMESTAMP_NTZ",
    exp.DataType.Type.TIMESTAMP_MS: "TIMESTAMP_NTZ",
    exp.DataType.Type.TIMESTAMP_NS: "TIMESTAMP_NTZ",
    # DuckDB's TIMESTAMP has no time zone (Spark: TIMESTAMP_NTZ), TIMESTAMPTZ is an instant
    # shown in the session time zone (Spark: TIMESTAMP_LTZ); Spark's bare TIMESTAMP is LTZ.
    exp.DataType.Type.TIMESTAMP: "TIMESTAMP_NTZ",
    exp.DataType.Type.TIMESTAMPTZ: "TIMESTAMP_LTZ",
}
_NOT_ON_SPARK = {
    exp.DataType.Type.UUID: "the UUID type",
    exp.DataType.Type.INTERVAL: "INTERVAL values in results",
    exp.DataType.Type.TIME: "the TIME type",
    exp.DataType.Type.TIMETZ: "the TIME WITH TIME ZONE type",
    exp.DataType.Type.ENUM: "ENUM types",
    exp.DataType.Type.UNION: "UNION types",
}


class _DuckDB(DuckDB):
    """DuckDB as sqlglot reads it, except that ``len(x)`` is a list's length (sqlglot takes it
    for a string length; on lists DuckDB's ``len`` and Spark's ``size`` agree, and on text
    Spark refuses ``size``, an error rather than a wrong answer)."""

    class Parser(DuckDB.Parser):
        FUNCTIONS = {  # noqa: RUF012 (sqlglot's own attribute)
            **DuckDB.Parser.FUNCTIONS,
            "LEN": exp.ArraySize.from_arg_list,
        }


class UnsupportedOnSpark(BadInput):
    """A construct of the DuckDB dialect that has no equivalent on Spark."""

    def __init__(self, construct: str) -> None:
        super().__init__(
            f"not supported on the Spark engine: {construct}; run it with --engine duckdb "
            "or rewrite it (see docs/scale-out.md, 'Declared differences')"
        )
        self.construct = construct


def to_spark(sql: str) -> str:
    """Spark SQL for one DuckDB-dialect statement (cached: KPI queries repeat)."""
    return _to_spark(sql)


@functools.lru_cache(maxsize=1024)
def _to_spark(sql: str) -> str:
    try:
        tree = sqlglot.parse_one(sql, read=_DuckDB)
    except SqlglotError as exc:
        raise BadInput(f"SQL syntax error: {str(exc).splitlines()[0]}") from exc
    tree = tree.transform(_rewrite, copy=False)
    try:
        return tree.sql(dialect=WRITE, unsupported_level=ErrorLevel.RAISE)
    except UnsupportedError as exc:
        raise UnsupportedOnSpark(str(exc).splitlines()[0]) from exc


def _rewrite(node: exp.Expression) -> exp.Expression:
    """Rewrite ``node``; sqlglot does not descend into a replacement, so its children are
    rewritten here."""
    new = _rewrite_node(node)
    if new is not node:
        for child in list(new.iter_expressions()):
            child.replace(child.transform(_rewrite, copy=False))
    return new


def _rewrite_node(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.GenerateSeries):
        return _series(node)
    top = node.this if isinstance(node, exp.Filter) else None
    if isinstance(top, (exp.Max, exp.Min)) and top.expressions:
        return _top_n(top, node.expression)  # max(x, n) FILTER (WHERE c): filter goes inside
    if isinstance(node, (exp.Max, exp.Min)) and node.expressions:
        return _top_n(node)
    if isinstance(node, (exp.List, exp.ArrayAgg)):
        return _ordered_list(node)
    if isinstance(node, exp.GroupConcat) and isinstance(node.this, exp.Order):
        raise UnsupportedOnSpark("string_agg(… ORDER BY …) (ordered string aggregation)")
    if isinstance(node, exp.PercentileCont | exp.PercentileDisc) and not isinstance(
        node.parent, exp.WithinGroup
    ):
        return _percentile(node.this, node.args.get("expression"), node.key)
    if isinstance(node, exp.Quantile):  # DuckDB quantile() is quantile_disc()
        return _percentile(node.this, node.args.get("quantile"), "percentiledisc")
    if isinstance(node, exp.ApproxQuantile):
        raise UnsupportedOnSpark("approx_quantile() (the sketches of DuckDB and Spark differ)")
    if isinstance(node, exp.Window) and _unordered_row_number(node):
        # An arbitrary numbering on both engines; Spark insists on an ORDER BY.
        node.set(
            "order",
            exp.Order(
                expressions=[
                    exp.Ordered(
                        this=exp.Anonymous(this="monotonically_increasing_id", expressions=[])
                    )
                ]
            ),
        )
        return node
    if isinstance(node, exp.Cast) and node.to.this == exp.DataType.Type.UBIGINT:
        hexed = _hex_literal_text(node.this)
        if hexed is not None:  # '0x…' text: DuckDB reads it as hexadecimal
            conv = exp.Anonymous(
                this="conv",
                expressions=[hexed, exp.Literal.number(16), exp.Literal.number(10)],
            )
            return exp.Cast(this=conv, to=exp.DataType.build("DECIMAL(20, 0)", dialect=WRITE))
    if isinstance(node, exp.DataType):
        if node.this in _NOT_ON_SPARK:
            raise UnsupportedOnSpark(_NOT_ON_SPARK[node.this])
        if node.this in _WIDER:
            return exp.DataType.build(_WIDER[node.this], dialect=WRITE)
    if isinstance(node, exp.Bracket) and any(isinstance(e, exp.Slice) for e in node.expressions):
        return _slice(node)
    if isinstance(node, exp.Bracket):
        return _subscript(node)
    if isinstance(node, exp.TimeToUnix):  # epoch(ts): seconds with fraction, not truncated
        return exp.Div(this=_micros(node.this), expression=exp.Literal.number("1e6"))
    if isinstance(node, exp.Anonymous) and node.name.lower() == "epoch_us":
        return _micros(node.expressions[0])
    if isinstance(node, exp.DateDiff):
        return _date_diff(node)
    if isinstance(node, (exp.Pivot, exp.Summarize)):
        raise UnsupportedOnSpark(f"{node.key.upper()} statements")
    if isinstance(node, exp.RegexpFullMatch):  # Java regex: anchor the whole pattern
        return _full_match(node)
    if isinstance(node, exp.RegexpReplace) and node.args.get("modifiers") is not None:
        return _regexp_replace(node)
    if isinstance(node, exp.Anonymous) and node.name.lower() == "try_strptime":
        return _try_strptime(node)
    if isinstance(node, exp.Anonymous) and node.name.lower() == "list_distinct":
        # Spark keeps the first occurrence order; DuckDB's order is unspecified.
        return exp.Anonymous(this="array_distinct", expressions=node.expressions)
    if isinstance(node, exp.Anonymous) and node.name.lower() == "histogram":
        return _histogram(node)
    if isinstance(node, exp.Anonymous) and node.name.lower() in _DUCKDB_ONLY:
        raise UnsupportedOnSpark(f"function {node.name.lower()}()")
    return node


# DuckDB functions sqlglot passes through by name that Spark does not have, or has with
# another meaning; refusing them here gives a clear message instead of Spark's stack trace.
_DUCKDB_ONLY = frozenset(
    {"regexp_full_match", "list_sort", "list_value", "struct_pack",
     "arg_min_null", "arg_max_null", "mode", "bit_and", "fsum", "kahan_sum",
     "strptime", "try_strptime", "epoch_ms", "age", "bar", "jaro_winkler_similarity"}
)  # fmt: skip


def _series(node: exp.GenerateSeries) -> exp.Expression:
    """range()/generate_series(): exclusive vs inclusive ends must survive the translation.

    sqlglot writes DuckDB's end-exclusive ``range(20)`` as ``SEQUENCE(0, 20)``, which on
    Spark includes 20, one row too many. In FROM position Spark's own ``range(start, end
    [, step])`` table function has the same end-exclusive meaning; generate_series (inclusive)
    in FROM becomes ``range(start, end + 1, step)``. Elsewhere only the inclusive form
    (``SEQUENCE``) is exact, so an exclusive range there needs integer bounds.
    """
    start, end, step = node.args.get("start"), node.args.get("end"), node.args.get("step")
    if end is None:
        raise UnsupportedOnSpark("range()/generate_series() without an end")
    exclusive = bool(node.args.get("is_end_exclusive"))
    table = node.parent if isinstance(node.parent, exp.Table) else None
    if table is not None:
        stop = end if exclusive else exp.Add(this=end.copy(), expression=exp.Literal.number(1))
        args = [start or exp.Literal.number(0), stop] + ([step] if step is not None else [])
        if _temporal(start) or _temporal(step):
            raise UnsupportedOnSpark("range()/generate_series() over dates or times in FROM")
        alias = table.args.get("alias")
        column = "range" if exclusive else "generate_series"
        if alias is None:
            table.set(
                "alias",
                exp.TableAlias(
                    this=exp.to_identifier("_series"), columns=[exp.to_identifier(column)]
                ),
            )
        elif not alias.columns:
            alias.set("columns", [exp.to_identifier(column)])
        return exp.Anonymous(this="range", expressions=args)
    if exclusive:
        if not all(isinstance(a, exp.Literal) and not a.is_string for a in (start, end)):
            raise UnsupportedOnSpark("range() with computed bounds outside FROM")
        step_value = int(step.name) if isinstance(step, exp.Literal) else 1
        last = int(end.name) - (1 if step_value > 0 else -1)
        node.set("end", exp.Literal.number(last))
        node.set("is_end_exclusive", False)
    return node


def _temporal(value: exp.Expression | None) -> bool:
    return isinstance(value, exp.Interval) or (
        isinstance(value, exp.Cast) and value.to.is_type(*exp.DataType.TEMPORAL_TYPES)
    )


def _top_n(node: exp.Max | exp.Min, where: exp.Expression | None = None) -> exp.Expression:
    """DuckDB ``max(x, n)`` is the n largest values as a list (sqlglot would make it
    ``GREATEST(x, n)``, a wrong answer): ``slice(sort_array(collect_list(x), false), 1, n)``."""
    if len(node.expressions) != 1:
        raise UnsupportedOnSpark(f"{node.key}() with more than two arguments")
    descending = isinstance(node, exp.Max)
    collected: exp.Expression = exp.Anonymous(this="collect_list", expressions=[node.this.copy()])
    if where is not None:
        collected = exp.Filter(this=collected, expression=where.copy())
    ordered = exp.Anonymous(
        this="sort_array", expressions=[collected, exp.Boolean(this=not descending)]
    )
    return exp.Anonymous(
        this="slice", expressions=[ordered, exp.Literal.number(1), node.expressions[0].copy()]
    )


def _ordered_list(node: exp.List | exp.ArrayAgg) -> exp.Expression:
    """``list(v ORDER BY k)``: Spark's collect_list has no order, so the pairs (k, v) are
    collected, sorted by k (then v) and v taken from each."""
    inner = node.expressions[0] if isinstance(node, exp.List) and node.expressions else node.this
    if not isinstance(inner, exp.Order):
        if isinstance(node, exp.List):
            return exp.Anonymous(this="collect_list", expressions=[inner.copy()])
        return node
    keys = inner.expressions
    if len(keys) != 1 or keys[0].args.get("desc"):
        raise UnsupportedOnSpark("list(… ORDER BY …) with several or descending keys")
    struct = exp.Anonymous(
        this="named_struct",
        expressions=[exp.Literal.string("k"), keys[0].this.copy(),
                     exp.Literal.string("v"), inner.this.copy()],
    )  # fmt: skip
    pairs = exp.Anonymous(
        this="array_sort", expressions=[exp.Anonymous(this="collect_list", expressions=[struct])]
    )
    return sqlglot.parse_one("transform(_p, _e -> _e.v)", read=WRITE).transform(
        lambda n: pairs if isinstance(n, exp.Column) and n.name == "_p" else n
    )


def _percentile(value: exp.Expression, q: exp.Expression | None, kind: str) -> exp.Expression:
    """``quantile_cont(x, q)`` -> Spark ``percentile(x, q)`` (same linear interpolation);
    ``quantile_disc`` -> ``percentile_disc(q) WITHIN GROUP (ORDER BY x)``."""
    if q is None:
        raise UnsupportedOnSpark(f"{kind}() without a quantile")
    if kind == "percentilecont":
        return exp.Anonymous(this="percentile", expressions=[value.copy(), q.copy()])
    if isinstance(q, exp.Array):
        raise UnsupportedOnSpark("quantile_disc() with a list of quantiles")
    return exp.WithinGroup(
        this=exp.Anonymous(this="percentile_disc", expressions=[q.copy()]),
        expression=exp.Order(expressions=[exp.Ordered(this=value.copy(), nulls_first=False)]),
    )


def _subscript(node: exp.Bracket) -> exp.Expression:
    """``list[i]``: DuckDB counts from 1 (negative from the end) and gives NULL out of
    range, as Spark's ``try_element_at`` does. sqlglot shifts literal indexes to its
    0-based form but leaves computed ones (``names[x + 1]``) as they are, which on Spark
    would read the next element: every index is therefore made 1-based explicitly.
    String keys (maps, struct fields) stay subscripts."""
    if len(node.expressions) != 1:
        raise UnsupportedOnSpark("subscripts with several indexes")
    index = node.expressions[0]
    if isinstance(index, exp.Literal) and index.is_string:
        return node
    if isinstance(index, exp.Literal):
        index = exp.Literal.number(int(index.name) + 1)
    elif isinstance(index, exp.Neg) and isinstance(index.this, exp.Literal):
        index = exp.Literal.number(-int(index.this.name) + 1)
    return exp.Anonymous(this="try_element_at", expressions=[node.this.copy(), index.copy()])


def _micros(value: exp.Expression) -> exp.Expression:
    """Microseconds since the epoch; Spark's unix_micros takes only instants (LTZ), so a
    TIMESTAMP_NTZ is read in the session time zone (UTC for pool SQL, as DuckDB does)."""
    instant = exp.Cast(this=value.copy(), to=exp.DataType.build("TIMESTAMP_LTZ", dialect=WRITE))
    return exp.Anonymous(this="unix_micros", expressions=[instant])


_MICROS_PER = {"microsecond": 1, "millisecond": 1_000, "second": 1_000_000,
               "minute": 60_000_000, "hour": 3_600_000_000}  # fmt: skip


def _date_diff(node: exp.DateDiff) -> exp.Expression:
    """DuckDB's ``date_diff(unit, a, b)`` counts unit *boundaries* between two instants; Spark's
    ``timestampdiff`` counts *whole units* and, across a daylight-saving change, works on
    local times (an hour off). Sub-day units are computed on the instants in microseconds,
    days as Spark's ``datediff`` of the dates (boundaries too); calendar units are refused."""
    unit = (node.unit.name if node.unit is not None else "day").lower().rstrip("s")
    start, end = node.expression, node.this
    if unit in _MICROS_PER:
        size = _MICROS_PER[unit]
        if size == 1:
            return exp.Paren(this=exp.Sub(this=_micros(end), expression=_micros(start)))
        return exp.Paren(
            this=exp.Sub(
                this=exp.Floor(
                    this=exp.Div(this=_micros(end), expression=exp.Literal.number(size))
                ),
                expression=exp.Floor(
                    this=exp.Div(this=_micros(start), expression=exp.Literal.number(size))
                ),
            )
        )
    if unit == "day":
        return exp.Anonymous(this="datediff", expressions=[end.copy(), start.copy()])
    raise UnsupportedOnSpark(
        f"date_diff('{unit}', …) (Spark counts whole {unit}s, DuckDB counts {unit} boundaries)"
    )


def _unordered_row_number(node: exp.Window) -> bool:
    return (
        isinstance(node.this, exp.RowNumber)
        and not node.args.get("order")
        and not node.args.get("partition_by")
    )


def _hex_literal_text(value: exp.Expression) -> exp.Expression | None:
    """``e`` of ``'0x' || e`` (parenthesised or not), else None."""
    while isinstance(value, exp.Paren):
        value = value.this
    head = value.this if isinstance(value, exp.DPipe) else None
    if isinstance(head, exp.Literal) and head.is_string and head.name.lower() == "0x":
        return value.expression.copy()
    return None


def _histogram(node: exp.Anonymous) -> exp.Expression:
    """DuckDB's ``histogram(x)`` (value -> count map) has no Spark aggregate: the values are
    collected and counted per distinct value. Exact, but it holds a column's values in one
    task, so it suits few rows or few distinct values (the quality report uses it on value
    shapes); see docs/scale-out.md."""
    if len(node.expressions) != 1:
        raise UnsupportedOnSpark("histogram() with bins")
    template = sqlglot.parse_one(
        "map_from_entries(transform(array_sort(array_distinct(_l)), "
        "_k -> struct(_k, CAST(size(filter(_l, _w -> _w = _k)) AS BIGINT))))",
        read=WRITE,
    )
    values = exp.Anonymous(this="collect_list", expressions=[node.expressions[0].copy()])
    return template.transform(
        lambda n: values.copy() if isinstance(n, exp.Column) and n.name == "_l" else n
    )


def _full_match(node: exp.RegexpFullMatch) -> exp.Expression:
    pattern = node.expression
    if isinstance(pattern, exp.Literal) and pattern.is_string:
        anchored: exp.Expression = exp.Literal.string(f"^(?:{pattern.name})$")
    else:
        anchored = exp.DPipe(
            this=exp.DPipe(this=exp.Literal.string("^(?:"), expression=pattern.copy()),
            expression=exp.Literal.string(")$"),
        )
    return exp.RegexpLike(this=node.this.copy(), expression=anchored)


def _regexp_replace(node: exp.RegexpReplace) -> exp.Expression:
    """Spark's regexp_replace always replaces every match (DuckDB's 'g'); other options
    (case-insensitive 'i', …) have no argument there."""
    modifiers = node.args["modifiers"]
    if not (isinstance(modifiers, exp.Literal) and modifiers.name == "g"):
        raise UnsupportedOnSpark(f"regexp_replace() options {modifiers.sql(READ)}")
    if not isinstance(node.args.get("expression"), exp.Literal):
        raise UnsupportedOnSpark("regexp_replace() with a computed pattern")
    replacement = node.args.get("replacement")
    if isinstance(replacement, exp.Literal) and "\\" in replacement.name:
        raise UnsupportedOnSpark("regexp_replace() with back-references (\\1 vs $1)")
    node.set("modifiers", None)
    return node


def _try_strptime(node: exp.Anonymous) -> exp.Expression:
    """``try_strptime(x, fmt | [fmt, …])``: the first format that parses, else NULL, as
    ``coalesce(try_to_timestamp(x, fmt), …)`` with the format in Spark's notation."""
    value, formats = node.expressions[0], node.expressions[1]
    items = formats.expressions if isinstance(formats, exp.Array) else [formats]
    if not all(isinstance(f, exp.Literal) and f.is_string for f in items):
        raise UnsupportedOnSpark("try_strptime() with a computed format")
    parsed: list[exp.Expression] = [
        exp.Anonymous(this="try_to_timestamp", expressions=[value.copy(), _spark_format(f)])
        for f in items
    ]
    return parsed[0] if len(parsed) == 1 else exp.Coalesce(this=parsed[0], expressions=parsed[1:])


def _spark_format(fmt: exp.Expression) -> exp.Expression:
    """A strptime format ('%d.%m.%Y') in Spark's datetime pattern notation ('dd.MM.yyyy'),
    by sqlglot's format mapping (read back as Spark SQL it would be mapped back)."""
    written = sqlglot.parse_one(f"strptime(_x, {fmt.sql(READ)})", read=READ).sql(dialect=WRITE)
    match = re.fullmatch(r"TO_TIMESTAMP\(_x, '((?:[^']|'')*)'\)", written)
    if match is None:
        raise UnsupportedOnSpark(f"the strptime format {fmt.sql(READ)}")
    return exp.Literal.string(match.group(1).replace("''", "'"))


def _slice(node: exp.Bracket) -> exp.Expression:
    """``list[a:b]`` (1-based, both ends included) -> ``slice(list, a, b - a + 1)``."""
    part = node.expressions[0]
    lo, hi = part.this, part.expression
    if len(node.expressions) != 1 or not all(
        v is None or (isinstance(v, exp.Literal) and not v.is_string) for v in (lo, hi)
    ):
        raise UnsupportedOnSpark("list slices with computed or several bounds")
    start = int(lo.name) if lo is not None else 1
    if hi is None:
        raise UnsupportedOnSpark("open-ended list slices x[a:]")
    stop = int(hi.name)
    if start < 1 or stop < start:
        raise UnsupportedOnSpark("list slices with negative or empty bounds")
    return exp.Anonymous(
        this="slice",
        expressions=[
            node.this.copy(),
            exp.Literal.number(start),
            exp.Literal.number(stop - start + 1),
        ],
    )
