"""Differences between two versions of a dataset: schema, and rows added/removed/changed.

With a primary key, rows are matched by key and a row whose other values differ is
"changed". Without one, rows are compared whole as multisets (a duplicate row counts twice),
so an edit shows as one removed and one added row.
"""

from __future__ import annotations

from typing import Any

import duckdb

from datenlabor.query.connection import quote_ident


def _columns(con: duckdb.DuckDBPyConnection, rel: str) -> dict[str, str]:
    return {r[0]: str(r[1]) for r in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()}


def _rows(con: duckdb.DuckDBPyConnection, sql: str) -> list[dict[str, Any]]:
    cur = con.execute(sql)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]


def diff_versions(
    con: duckdb.DuckDBPyConnection,
    slug: str,
    a: tuple[int, str],
    b: tuple[int, str],
    *,
    keys: list[str],
    limit: int = 20,
) -> dict[str, Any]:
    """Compare version ``a`` with ``b``; each is (number, DuckDB relation)."""
    (na, rel_a), (nb, rel_b) = a, b
    cols_a, cols_b = _columns(con, rel_a), _columns(con, rel_b)
    common = [c for c in cols_b if c in cols_a]
    schema = {
        "added": [{"name": c, "type": t} for c, t in cols_b.items() if c not in cols_a],
        "removed": [{"name": c, "type": t} for c, t in cols_a.items() if c not in cols_b],
        "type_changed": [
            {"name": c, "from": cols_a[c], "to": cols_b[c]}
            for c in common
            if cols_a[c] != cols_b[c]
        ],
    }
    usable_keys = [k for k in keys if k in cols_a and k in cols_b]
    result: dict[str, Any] = {"dataset": slug, "from": na, "to": nb, "schema": schema}
    con.execute(f"CREATE OR REPLACE TEMP VIEW __a AS SELECT * FROM {rel_a}")
    con.execute(f"CREATE OR REPLACE TEMP VIEW __b AS SELECT * FROM {rel_b}")
    if usable_keys and len(usable_keys) == len(keys):
        result.update(_by_key(con, keys, common, limit))
    else:
        result.update(_by_row(con, common, limit))
    return result


def _by_key(
    con: duckdb.DuckDBPyConnection, keys: list[str], common: list[str], limit: int
) -> dict[str, Any]:
    k = ", ".join(quote_ident(c) for c in keys)
    values = [c for c in common if c not in keys]
    on = " AND ".join(f"a.{quote_ident(c)} = b.{quote_ident(c)}" for c in keys)
    differs = (
        " OR ".join(f"a.{quote_ident(c)} IS DISTINCT FROM b.{quote_ident(c)}" for c in values)
        or "false"
    )
    added = f"SELECT * FROM __b ANTI JOIN __a USING ({k})"
    removed = f"SELECT * FROM __a ANTI JOIN __b USING ({k})"
    changed_cols = ", ".join(
        f"CASE WHEN a.{quote_ident(c)} IS DISTINCT FROM b.{quote_ident(c)} THEN "
        f"{{'from': a.{quote_ident(c)}::VARCHAR, 'to': b.{quote_ident(c)}::VARCHAR}} END AS {quote_ident(c)}"
        for c in values
    )
    key_cols = ", ".join(f"b.{quote_ident(c)}" for c in keys)
    changed = f"SELECT {key_cols}{', ' + changed_cols if changed_cols else ''} FROM __a a JOIN __b b ON {on} WHERE {differs}"
    counts = con.execute(
        f"SELECT (SELECT count(*) FROM ({added})), (SELECT count(*) FROM ({removed})), "
        f"(SELECT count(*) FROM ({changed}))"
    ).fetchone()
    assert counts is not None
    changes = []
    for row in _rows(con, f"{changed} ORDER BY {key_cols} LIMIT {limit}"):
        changes.append(
            {
                "key": {c: row[c] for c in keys},
                "changes": {c: v for c, v in row.items() if c not in keys and v is not None},
            }
        )
    return {
        "method": "key",
        "key": keys,
        "rows": {"added": counts[0], "removed": counts[1], "changed": counts[2]},
        "added": _rows(con, f"{added} ORDER BY {k} LIMIT {limit}"),
        "removed": _rows(con, f"{removed} ORDER BY {k} LIMIT {limit}"),
        "changed": changes,
    }


def _by_row(con: duckdb.DuckDBPyConnection, common: list[str], limit: int) -> dict[str, Any]:
    cols = ", ".join(quote_ident(c) for c in common)
    added = f"SELECT {cols} FROM __b EXCEPT ALL SELECT {cols} FROM __a"
    removed = f"SELECT {cols} FROM __a EXCEPT ALL SELECT {cols} FROM __b"
    counts = con.execute(
        f"SELECT (SELECT count(*) FROM ({added})), (SELECT count(*) FROM ({removed}))"
    ).fetchone()
    assert counts is not None
    return {
        "method": "row",
        "key": [],
        "rows": {"added": counts[0], "removed": counts[1], "changed": None},
        "added": _rows(con, f"SELECT * FROM ({added}) LIMIT {limit}"),
        "removed": _rows(con, f"SELECT * FROM ({removed}) LIMIT {limit}"),
        "changed": [],
    }
