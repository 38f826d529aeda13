"""Aggregate queries over confidential datasets, answered from their protected table.

A caller without microdata access sees a confidential dataset as its protected table: one row
per cell and per total of the declared dimensions, with the count ``n``, the measures (NULL
where suppressed) and ``status``. Queries that only read those rows run unchanged. An
aggregate written as if over the microdata::

    SELECT kreis, COUNT(*) AS faelle FROM antraege WHERE art = 'A' GROUP BY kreis

is answered by selecting the matching cells of the protected table instead of counting rows::

    SELECT kreis, n AS faelle, status FROM antraege
    WHERE art = 'A' AND monat = 'Insgesamt' AND kreis IN (<the finest kreis codes>)

So every number the caller gets is a published cell of the one protected table, whose
suppression pattern was checked against every combination of its cells; no query can carve
out a different aggregate and recover a suppressed value by difference. What cannot be
answered from the cells (other aggregate functions, filters on non-dimension columns, a range
over a dimension that is not grouped) is refused with the form that works.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlglot import exp

from datenlabor.errors import BadInput
from datenlabor.query.sandbox import DIALECT, _is_cte, _parse

TOTAL = "Insgesamt"


@dataclass(frozen=True)
class ProtectedTable:
    """What the rewrite needs to know of one protected table, under its SQL name."""

    name: str  # lower case, as the query names it (slug or "slug@3")
    dims: tuple[str, ...]
    measures: tuple[str, ...]
    finest: Mapping[str, Sequence[str]]  # per dimension: the codes of its finest level
    contributor: str | None = None
    n_counts: str = "records"  # what n counts: "records" or distinct "contributors"

    def aggregates(self) -> list[str]:
        out = []
        if self.n_counts == "records" or not self.contributor:
            out.append("COUNT(*)")
        if self.n_counts == "contributors" and self.contributor:
            out.append(f"COUNT(DISTINCT {self.contributor})")
        return out + [f"SUM({m})" for m in self.measures]

    def form(self) -> str:
        dims = ", ".join(self.dims)
        aggs = self.aggregates()
        return (
            f"SELECT <some of {dims}>, {' | '.join(aggs)} FROM {self.name} "
            f"[WHERE <dimension> = '<code>' | <dimension> IN (…)] GROUP BY <those dimensions>"
        )


def rewrite(sql: str, tables: Mapping[str, ProtectedTable]) -> str:
    """``sql`` with every aggregate over a protected table replaced by a selection of cells.

    ``sql`` has passed :func:`datenlabor.query.sandbox.check_select`. Returns ``sql`` itself
    when it aggregates over no protected table.
    """
    if not tables:
        return sql
    tree = _parse(sql)
    changed = False
    for select in list(tree.find_all(exp.Select)):
        target = _protected_source(select, tables)
        if target is None:
            continue
        if not _aggregates(select):
            continue  # reads cells as they are published
        _rewrite_select(select, target, top=select is _outermost(tree))
        changed = True
    return tree.sql(dialect=DIALECT) if changed else sql


def _outermost(tree: exp.Expression) -> exp.Expression | None:
    node = tree
    while isinstance(node, exp.Subquery):
        node = node.this
    return node if isinstance(node, exp.Select) else None


def _protected_source(select: exp.Select, tables: Mapping[str, ProtectedTable]) -> ProtectedTable | None:
    """The protected table this SELECT reads directly (in its own FROM/JOIN), if any."""
    sources: list[exp.Expression] = []
    from_ = select.args.get("from")
    if from_ is not None:
        sources.append(from_.this)
    sources += [j.this for j in select.args.get("joins") or []]
    hit: ProtectedTable | None = None
    for src in sources:
        if not isinstance(src, exp.Table) or not isinstance(src.this, exp.Identifier):
            continue
        name = src.this.name.lower()
        if name in tables and not _is_cte(src, name):
            if len(sources) > 1 and _aggregates(select):
                raise BadInput(
                    f"{name} is confidential: aggregates over it cannot be joined with other "
                    f"tables; aggregate it alone: {tables[name].form()}"
                )
            hit = tables[name]
    return hit


def _aggregates(select: exp.Select) -> bool:
    if select.args.get("group"):
        return True
    # aggregates of nested SELECTs belong to those
    return any(a.find_ancestor(exp.Select) is select for a in select.find_all(exp.AggFunc))


def _rewrite_select(select: exp.Select, t: ProtectedTable, *, top: bool) -> None:
    if select.args.get("distinct") or select.args.get("qualify") or select.args.get("windows"):
        raise BadInput(f"{t.name} is confidential; aggregate it in the form {t.form()}")
    group = select.args.get("group")
    grouped: list[str] = []
    if group is not None:
        if group.args.get("rollup") or group.args.get("cube") or group.args.get("grouping_sets"):
            raise BadInput(
                f"{t.name} is confidential: its protected table already holds every total "
                f"('{TOTAL}'); use GROUP BY with plain dimensions: {t.form()}"
            )
        for e in group.expressions:
            if isinstance(e, exp.Literal) and e.is_int and 0 < int(e.name) <= len(select.expressions):
                e = select.expressions[int(e.name) - 1].unalias()  # GROUP BY 1: an output column
            grouped.append(_dimension(e, t, "GROUP BY"))
    # WHERE: a conjunction of = / IN on dimensions.
    chosen: dict[str, exp.Expression] = {}
    conditions: list[exp.Expression] = []
    where = select.args.get("where")
    if where is not None:
        for cond in _conjuncts(where.this):
            dim = _dimension_condition(cond, t)
            if isinstance(cond, exp.In) and dim not in grouped:
                raise BadInput(
                    f"{t.name} is confidential: a dimension you do not group by can be fixed to "
                    f"one code (= '…'), not several; group by {dim} or ask for one code"
                )
            chosen[dim] = cond
            conditions.append(cond)
    for dim in t.dims:
        col = exp.column(dim, quoted=True)
        if dim in grouped:
            codes = [exp.Literal.string(c) for c in t.finest.get(dim, ())]
            conditions.append(exp.In(this=col, expressions=codes) if codes else exp.false())
        elif dim not in chosen:
            conditions.append(exp.EQ(this=col, expression=exp.Literal.string(TOTAL)))
    # Aggregates -> cell columns, wherever they appear (projections, HAVING, ORDER BY).
    for agg in list(select.find_all(exp.AggFunc)):
        if agg.find_ancestor(exp.Select) is not select:
            continue
        cell = exp.column(_cell_column(agg, t), quoted=True)
        if agg.parent is select:  # an unnamed output column keeps its name
            cell = exp.alias_(cell, agg.sql(dialect=DIALECT).lower(), quoted=True)
        agg.replace(cell)
    for e in select.expressions:
        inner = e.this if isinstance(e, exp.Alias) else e
        if isinstance(inner, exp.Star):
            raise BadInput(
                f"{t.name} is confidential: name the dimensions and aggregates: {t.form()}"
            )
        for col in inner.find_all(exp.Column):
            if col.name not in grouped and col.name not in ("n", *t.measures):
                raise BadInput(
                    f"{t.name} is confidential: {col.name!r} is neither grouped nor an "
                    f"aggregate; {t.form()}"
                )
    having = select.args.get("having")
    select.set("group", None)
    select.set("having", None)
    select.set("where", exp.Where(this=exp.and_(*conditions)) if conditions else None)
    if having is not None:
        select.set("where", exp.Where(this=exp.and_(select.args["where"].this, having.this)))
    if top:
        select.select(exp.column("status", quoted=True), copy=False)


def _conjuncts(e: exp.Expression) -> list[exp.Expression]:
    while isinstance(e, exp.Paren):
        e = e.this
    if isinstance(e, exp.And):
        return _conjuncts(e.left) + _conjuncts(e.right)
    return [e]


def _dimension(e: exp.Expression, t: ProtectedTable, where: str) -> str:
    if isinstance(e, exp.Column) and not e.table and e.name in t.dims:
        return e.name
    raise BadInput(
        f"{t.name} is confidential: {where} may name only its dimensions "
        f"({', '.join(t.dims)}), not {e.sql(dialect=DIALECT)}"
    )


def _dimension_condition(cond: exp.Expression, t: ProtectedTable) -> str:
    def literal(x: exp.Expression) -> bool:
        return isinstance(x, exp.Literal)

    if isinstance(cond, exp.EQ):
        left, right = cond.this, cond.expression
        if literal(left) and isinstance(right, exp.Column):
            left, right = right, left
        if isinstance(left, exp.Column) and literal(right):
            return _dimension(left, t, "WHERE")
    if (
        isinstance(cond, exp.In)
        and isinstance(cond.this, exp.Column)
        and cond.expressions
        and all(literal(x) for x in cond.expressions)
    ):
        return _dimension(cond.this, t, "WHERE")
    raise BadInput(
        f"{t.name} is confidential: WHERE may only fix dimensions to codes "
        f"(<dimension> = '<code>' or <dimension> IN ('…', …), joined by AND), not "
        f"{cond.sql(dialect=DIALECT)}"
    )


def _cell_column(agg: exp.AggFunc, t: ProtectedTable) -> str:
    if isinstance(agg, exp.Count):
        arg = agg.this
        if isinstance(arg, exp.Distinct):
            cols = arg.expressions
            if (
                t.n_counts == "contributors"
                and t.contributor
                and len(cols) == 1
                and isinstance(cols[0], exp.Column)
                and cols[0].name == t.contributor
            ):
                return "n"
        elif (arg is None or isinstance(arg, exp.Star) or (
            isinstance(arg, exp.Literal) and not arg.is_string
        )) and (t.n_counts == "records" or not t.contributor):
            return "n"
    if isinstance(agg, exp.Sum) and isinstance(agg.this, exp.Column) and agg.this.name in t.measures:
        return agg.this.name
    raise BadInput(
        f"{t.name} is confidential: {agg.sql(dialect=DIALECT)} cannot be answered from its "
        f"protected table; available: {', '.join(t.aggregates())}"
    )
