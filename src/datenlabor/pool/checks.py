"""Checks a load must pass before it becomes a version: keys, duplicates, column fit.

Each runs as one DuckDB query over the staged rows; failures name the file line.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from datenlabor.errors import BadInput
from datenlabor.pool import delta
from datenlabor.pool.ingest.reading import first_line
from datenlabor.query.connection import quote_ident
from datenlabor.store import Dataset


def column_list(names: list[str]) -> str:
    """Quoted, comma-separated column names for SQL."""
    return ", ".join(quote_ident(n) for n in names)


def check_keys(
    con: duckdb.DuckDBPyConnection, rel: str, keys: list[str], mode: str, file: str, offset: int
) -> None:
    if mode == "upsert" and not keys:
        raise BadInput("upsert needs a key: pass --key COLUMN[,COLUMN]", column="key")
    if not keys:
        return
    names = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {rel}").fetchall()]
    for k in keys:
        if k not in names:
            raise BadInput(
                f"key column {k!r} not in the data; columns: {', '.join(names)}",
                file=file,
                column=k,
            )
    numbered = f"(SELECT row_number() OVER () AS __row, * FROM {rel})"
    null_cond = " OR ".join(f"{quote_ident(k)} IS NULL" for k in keys)
    hit = con.execute(f"SELECT min(__row) FROM {numbered} WHERE {null_cond}").fetchone()
    if hit and hit[0] is not None:
        raise BadInput(
            "empty key value", file=file, line=int(hit[0]) + offset, column=",".join(keys)
        )
    dup = con.execute(
        f"SELECT {column_list(keys)}, count(*) AS n, list(__row ORDER BY __row)[2] AS second "
        f"FROM {numbered} GROUP BY ALL HAVING count(*) > 1 ORDER BY second LIMIT 1"
    ).fetchone()
    if dup:
        value = ", ".join(str(v) for v in dup[: len(keys)])
        raise BadInput(
            f"duplicate key ({value}) occurs {dup[-2]} times",
            file=file,
            line=int(dup[-1]) + offset,
            column=",".join(keys),
        )


def check_not_loaded(ds: Dataset, sha256: str, file: str) -> None:
    """Appending a file that is already in the dataset would silently duplicate its rows."""
    for v in ds.versions:
        if v.source_sha256 == sha256:
            raise BadInput(
                f"this file (same SHA-256) was already loaded as version {v.number}; appending "
                "it again would duplicate its rows (pass --allow-duplicate if intended)",
                file=file,
            )


def check_no_collision(
    con: duckdb.DuckDBPyConnection, rel: str, cur: str, keys: list[str], file: str, offset: int
) -> None:
    numbered = f"(SELECT row_number() OVER () AS __row, * FROM {rel})"
    hit = con.execute(
        f"SELECT __row, {column_list(keys)} FROM {numbered} SEMI JOIN {cur} USING ({column_list(keys)}) "
        "ORDER BY __row LIMIT 1"
    ).fetchone()
    if hit:
        value = ", ".join(str(v) for v in hit[1:])
        raise BadInput(
            f"key ({value}) already exists; use --mode upsert to update rows",
            file=file,
            line=int(hit[0]) + offset,
            column=",".join(keys),
        )


def conform(
    con: duckdb.DuckDBPyConnection,
    staged: delta.StagedFiles,
    cur_rel: str,
    cur_schema: pa.Schema,
    file: str,
    staging: Path,
) -> delta.StagedFiles:
    """Make new rows fit the current version's columns (append/upsert), or say why not."""
    new = {f.name: f.type for f in staged.schema}
    cur = {f.name: f.type for f in cur_schema}
    missing, extra = sorted(set(cur) - set(new)), sorted(set(new) - set(cur))
    if missing or extra:
        parts = []
        if missing:
            parts.append(f"missing columns {', '.join(missing)}")
        if extra:
            parts.append(f"unexpected columns {', '.join(extra)}")
        raise BadInput(
            "columns differ from the current version: "
            + "; ".join(parts)
            + " (use --mode replace to change the schema)",
            file=file,
        )
    if all(new[n] == cur[n] for n in cur) and list(new) == list(cur):
        return staged
    cur_types = dict(
        con.execute(f"DESCRIBE SELECT * FROM {cur_rel}").fetchall()[i][:2] for i in range(len(cur))
    )
    select_sql = ", ".join(
        f"CAST({quote_ident(n)} AS {cur_types[n]}) AS {quote_ident(n)}" for n in cur
    )
    try:
        conformed = delta.stage(con, f"SELECT {select_sql} FROM {staged.relation()}", staging)
    except duckdb.ConversionException as exc:
        raise BadInput(
            f"values do not fit the current column types: {first_line(exc)}", file=file
        ) from exc
    staged.discard()
    return conformed
