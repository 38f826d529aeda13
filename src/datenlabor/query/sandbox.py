"""Checks for untrusted SQL and a row- and time-limited runner for it.

``check_select`` is defence in depth in front of DuckDB, which itself runs with external access
disabled: it accepts one read-only query, rejects anything that could reach outside the query
(files, URLs, settings, the environment, DuckDB's catalog) and lists the tables the query reads,
so the caller can check each against the user's grants before opening it.

Table names: DuckDB matches identifiers case-insensitively, quoted or not, so every table name
is reported in lower case (``Bev`` and ``"BEV"`` both read ``bev``). A name is a dataset slug
(``bevoelkerung``) or a slug and version (``"bevoelkerung@3"``, quoted in SQL).
"""

from __future__ import annotations

import functools
import json
import re
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import duckdb
import pyarrow as pa
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError
from sqlglot.tokens import Token, TokenType

from datenlabor.errors import BadInput

DIALECT = "duckdb"

_TABLE_NAME = re.compile(r"^(?P<slug>[a-z][a-z0-9_-]{0,99})(?:@(?P<version>\d{1,9}))?$")
# Unqualified names with these prefixes resolve to DuckDB's built-in catalog views
# (duckdb_tables, pg_settings, sqlite_master, pragma_database_list), never to a dataset.
_CATALOG_PREFIXES = ("duckdb_", "pg_", "pragma_", "sqlite_")

# Table functions are where DuckDB keeps its file and URL readers, scanners of other databases
# and catalog listings, and a query over datasets needs only a few of them, so FROM takes an
# allowlist. Scalar functions are the opposite: hundreds of harmless ones that users need, only
# a handful that look outside the query, and sqlglot renames many of them into its own classes
# (substr -> Substring), so an allowlist would break with every sqlglot release; they get a
# denylist, backed by DuckDB running with enable_external_access=false.
_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})
_TABLE_FUNCTION_NODES = (exp.GenerateSeries, exp.Unnest, exp.Explode)  # what sqlglot makes of them
_DENIED_FUNCTIONS = frozenset(
    {"query", "query_table", "getenv", "current_setting", "getvariable", "glob", "sniff_csv",
     "load_extension", "install_extension", "json_execute_serialized_sql", "checkpoint",
     "force_checkpoint", "which_secret", "enable_logging", "disable_logging"}
)  # fmt: skip
_DENIED_PREFIXES = ("read_", "duckdb_", "pragma_", "parquet_", "iceberg_", "delta_", "sqlite_",
                    "postgres_", "mysql_", "ducklake_")  # fmt: skip
_DENIED_SUFFIXES = ("_scan", "_attach", "_query")

# Statements named by their first word, so even those sqlglot cannot parse get a clear message.
_STATEMENT_WORDS = frozenset(
    {"ABORT", "ALTER", "ANALYZE", "ATTACH", "BEGIN", "CALL", "CHECKPOINT", "COMMENT", "COMMIT",
     "COPY", "CREATE", "DEALLOCATE", "DELETE", "DESC", "DESCRIBE", "DETACH", "DROP", "END",
     "EXECUTE", "EXPLAIN", "EXPORT", "FORCE", "GRANT", "IMPORT", "INSERT", "INSTALL", "LOAD",
     "MERGE", "PRAGMA", "PREPARE", "RESET", "REVOKE", "ROLLBACK", "SET", "SHOW", "START",
     "TRUNCATE", "UNINSTALL", "UPDATE", "USE", "VACUUM"}
)  # fmt: skip
_QUERIES = (exp.Query, exp.Values, exp.Pivot, exp.Summarize)
_NOT_IN_QUERIES = (exp.DML, exp.DDL, exp.Command, exp.Drop, exp.Alter, exp.Attach, exp.Detach,
                   exp.Install, exp.Pragma, exp.Set, exp.Use, exp.Transaction, exp.Commit,
                   exp.Rollback, exp.Describe, exp.Show, exp.Into, exp.Lock, exp.TruncateTable,
                   exp.Comment, exp.Analyze)  # fmt: skip
_ONLY_QUERIES = "only read-only queries (SELECT, WITH … SELECT, VALUES, PIVOT, SUMMARIZE) are allowed"  # fmt: skip


@dataclass(frozen=True)
class TableRef:
    """A table a query reads: ``name`` as DuckDB resolves it, split into slug and version."""

    name: str
    slug: str
    version: int | None


@dataclass(frozen=True)
class CheckedQuery:
    """A query that passed ``check_select``: run ``sql`` as written once ``tables`` are granted."""

    sql: str
    tables: tuple[TableRef, ...]


def check_select(sql: str) -> CheckedQuery:
    """Accept exactly one read-only query and list the tables it reads, or raise BadInput."""
    return _check_select(sql)


# Dashboards and API clients send the same statements again and again; the verdict on a
# text never changes (rejections raise and are not cached).
@functools.lru_cache(maxsize=512)
def _check_select(sql: str) -> CheckedQuery:
    word = _first_word(sql)
    if word in _STATEMENT_WORDS:
        raise BadInput(f"{_ONLY_QUERIES}, not {word}")
    tree = _parse(sql)
    if not isinstance(tree, _QUERIES):
        label = tree.key.upper() if word in ("WITH", "(", "") else word
        raise BadInput(f"{_ONLY_QUERIES}, not {label}")
    if isinstance(tree, exp.Summarize) and not isinstance(tree.this, (exp.Table, exp.Query)):
        raise BadInput("SUMMARIZE needs a dataset name or a query")
    found: dict[str, tuple[int, TableRef]] = {}
    for node in tree.walk():
        if isinstance(node, _NOT_IN_QUERIES):
            raise BadInput(f"{node.key.upper()} is not allowed inside a query; {_ONLY_QUERIES}")
        if isinstance(node, exp.Func):
            _check_function(node)
        elif isinstance(node, exp.Table):
            ref = _table_ref(node, sql)
            if ref is not None:
                start = node.this.meta.get("start", len(sql))
                if ref.name not in found or start < found[ref.name][0]:
                    found[ref.name] = (start, ref)
    _check_duckdb_agrees(sql)
    _check_duckdb_tree(sql)
    tables = [ref for _, ref in sorted(found.values(), key=lambda item: item[0])]
    return CheckedQuery(sql=sql, tables=tuple(tables))


def _first_word(sql: str) -> str:
    """The first word of the only statement in ``sql``; BadInput for none or several."""
    try:
        tokens = sqlglot.tokenize(sql, read=DIALECT)
    except SqlglotError as exc:
        raise BadInput(f"SQL syntax error: {exc}") from exc
    statements: list[list[Token]] = [[]]
    for token in tokens:
        if token.token_type == TokenType.SEMICOLON:
            statements.append([])
        else:
            statements[-1].append(token)
    statements = [s for s in statements if s]
    if not statements:
        raise BadInput("the SQL text is empty: expected one query")
    if len(statements) > 1:
        raise BadInput(f"expected exactly one SQL statement, found {len(statements)}")
    first = statements[0][0]
    if first.token_type in (TokenType.STRING, TokenType.IDENTIFIER):
        return ""
    return first.text.upper()


def _parse(sql: str) -> exp.Expression:
    try:
        trees = [t for t in sqlglot.parse(sql, read=DIALECT) if t is not None]
    except ParseError as exc:
        error = exc.errors[0] if exc.errors else {}
        near = f" near {error['highlight']!r}" if error.get("highlight") else ""
        where = f" (column {error['col']})" if error.get("col") else ""
        message = f"SQL syntax error{where}: {error.get('description', exc)}{near}"
        raise BadInput(message, line=error.get("line")) from exc
    except SqlglotError as exc:
        raise BadInput(f"SQL syntax error: {exc}") from exc
    except RecursionError as exc:
        raise BadInput("the query is nested too deeply") from exc
    trees = [t for t in trees if not isinstance(t, exp.Semicolon)]
    if len(trees) != 1:  # the token count said one; be strict if the parser disagrees
        raise BadInput(f"expected exactly one SQL statement, found {len(trees)}")
    return trees[0]


def _check_duckdb_agrees(sql: str) -> None:
    """DuckDB's own parser must also see one SELECT, so no tokenizer difference hides a second.

    A PIVOT without an IN list makes DuckDB prepend generated ``CREATE TYPE`` steps; those come
    with no SQL text of their own.
    """
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        raise BadInput(f"SQL syntax error: {_first_line(exc)}") from exc
    *before, last = statements
    generated = all(s.type == duckdb.StatementType.CREATE and not s.query for s in before)
    if last.type != duckdb.StatementType.SELECT or not generated:
        raise BadInput(f"{_ONLY_QUERIES}; DuckDB reads this as {len(statements)} statement(s)")


# A parser-only connection: json_serialize_sql parses without binding, so nothing is read.
_PARSER = duckdb.connect(":memory:", config={"enable_external_access": False})
_PARSER_LOCK = threading.Lock()


def _duckdb_parse(sql: str) -> dict[str, Any]:
    with _PARSER_LOCK:
        raw = _PARSER.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()
    return json.loads(raw[0]) if raw else {"error": True}


def _check_duckdb_tree(sql: str) -> None:
    """Check the tables and functions in DuckDB's own parse tree, independently of sqlglot.

    sqlglot and DuckDB do not read every construct alike (e.g. DuckDB's ``TABLE name``
    inside a CTE is no table to sqlglot), so what DuckDB will actually resolve is checked
    again: every table must be an unqualified name of dataset form (internal objects of
    Datenlabor are named with a leading underscore and so can never match), every table
    function must be allowed, every function must pass the denylist.
    """
    tree = _duckdb_parse(sql)
    if tree.get("error") and "Only SELECT" in str(tree.get("error_message")):
        # PIVOT and SUMMARIZE statements serialise only as subqueries; same tables.
        tree = _duckdb_parse(f"SELECT * FROM ({sql.strip().rstrip(';')})")
    if tree.get("error") and "Only SELECT" in str(tree.get("error_message")):
        # PIVOT without an IN list expands into several statements DuckDB will not
        # serialise; sqlglot's check stands alone then, minus the construct it misreads.
        words = {t.text.upper() for t in sqlglot.tokenize(sql, read=DIALECT)}
        if "TABLE" in words:
            raise BadInput("TABLE … is not supported in a PIVOT; write SELECT * FROM …")
        return
    if tree.get("error"):
        message = tree.get("error_message") or "DuckDB cannot parse it"
        raise BadInput(f"SQL syntax error: {message}")
    stack: list[Any] = [tree.get("statements", [])]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
            continue
        if not isinstance(node, dict):
            continue
        kind = node.get("type")
        if kind == "BASE_TABLE":
            name = str(node.get("table_name", "")).lower()
            if node.get("schema_name") or node.get("catalog_name"):
                raise BadInput(f"qualified table name {name} is not allowed")
            if not _TABLE_NAME.match(name) or name.startswith(_CATALOG_PREFIXES):
                raise BadInput(
                    f'unknown table name "{name}": expected a dataset slug such as '
                    'bevoelkerung or a version such as "bevoelkerung@3" (quoted)'
                )
        elif kind == "TABLE_FUNCTION":
            function = node.get("function") or {}
            name = str(function.get("function_name", "")).lower()
            if name not in _TABLE_FUNCTIONS:
                raise BadInput(f"table function {name}() is not allowed")
        elif node.get("class") == "FUNCTION":
            _refuse_denied(str(node.get("function_name", "")).lower())
        stack.extend(node.values())


def _function_names(func: exp.Func) -> list[str]:
    if isinstance(func, exp.Anonymous):
        return [func.name.lower()]
    return [name.lower() for name in type(func).sql_names()]


def _refuse_denied(name: str) -> None:
    if (
        name in _DENIED_FUNCTIONS
        or name.startswith(_DENIED_PREFIXES)
        or name.endswith(_DENIED_SUFFIXES)
    ):
        raise BadInput(
            f"function {name}() is not allowed: it can reach files, settings or the "
            "environment outside the query"
        )


def _check_function(func: exp.Func) -> None:
    names = _function_names(func)
    for name in names:
        _refuse_denied(name)
    in_from = isinstance(func.parent, (exp.Table, exp.From, exp.Join, exp.Lateral))
    if in_from and func.arg_key == "this":
        allowed = isinstance(func, _TABLE_FUNCTION_NODES) or (
            isinstance(func, exp.Anonymous) and names[0] in _TABLE_FUNCTIONS
        )
        if not allowed:
            raise BadInput(
                f"table function {names[0]}() is not allowed; in FROM use dataset names, "
                "a subquery, VALUES, range(), generate_series() or unnest()"
            )


def _table_ref(table: exp.Table, sql: str) -> TableRef | None:
    """The dataset a FROM/JOIN item names; None for functions and CTE names."""
    if table.args.get("db") or table.args.get("catalog"):
        raise BadInput(
            f"qualified table name {table.sql(dialect=DIALECT)} is not allowed: name a dataset "
            "by its slug (schemas such as information_schema, pg_catalog or main are closed)"
        )
    ident = table.this
    if isinstance(ident, exp.Func):
        return None  # checked by _check_function
    if not isinstance(ident, exp.Identifier):
        raise BadInput(f"unsupported table reference {table.sql(dialect=DIALECT)}")
    start = ident.meta.get("start")
    line = ident.meta.get("line")
    if start is not None and sql[start : start + 1] == "'":
        raise BadInput(
            f"'{ident.name}' is a string, not a table: files and URLs cannot be read; "
            'name a dataset by its slug, e.g. bevoelkerung or "bevoelkerung@3"',
            line=line,
        )
    name = ident.name.lower()
    if _is_cte(table, name):
        return None
    match = _TABLE_NAME.match(name)
    if match is None:
        raise BadInput(
            f'unknown table name "{ident.name}": expected a dataset slug such as bevoelkerung '
            'or a version such as "bevoelkerung@3" (quoted)',
            line=line,
        )
    if name.startswith(_CATALOG_PREFIXES):
        raise BadInput(f"{name} is a DuckDB catalog view, not a dataset", line=line)
    version = match.group("version")
    return TableRef(name, match.group("slug"), int(version) if version else None)


def _is_cte(table: exp.Table, name: str) -> bool:
    """Whether ``name`` at ``table`` refers to a CTE visible there (DuckDB scoping rules)."""
    child: exp.Expression = table
    node = table.parent
    while node is not None:
        ctes: list[exp.Expression] = []
        if isinstance(node, exp.With):
            # Inside the body of CTE i: earlier CTEs are visible, all of them if RECURSIVE.
            index = next((i for i, c in enumerate(node.expressions) if c is child), 0)
            ctes = node.expressions if node.args.get("recursive") else node.expressions[:index]
        else:
            with_ = node.args.get("with")
            if isinstance(with_, exp.With) and with_ is not child:
                ctes = with_.expressions
        if any(cte.alias.lower() == name for cte in ctes):
            return True
        child, node = node, node.parent
    return False


# Row filters: an allowlist of node types and functions, nothing that can read other data.
_PREDICATE_NODES = (exp.Column, exp.Identifier, exp.Literal, exp.Boolean, exp.Null, exp.Paren,
                    exp.And, exp.Or, exp.Not, exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE,
                    exp.NullSafeEQ, exp.NullSafeNEQ, exp.In, exp.Between, exp.Like, exp.ILike,
                    exp.Escape, exp.Is, exp.Add, exp.Sub, exp.Mul, exp.Div, exp.IntDiv, exp.Mod,
                    exp.Neg, exp.DPipe, exp.Cast, exp.DataType)  # fmt: skip
_PREDICATE_FUNCTION_NODES = (exp.Lower, exp.Upper, exp.Substring, exp.Left, exp.Right,
                             exp.Length, exp.StartsWith, exp.Contains, exp.Trim, exp.Coalesce,
                             exp.Year, exp.Month, exp.Abs, exp.Round)  # fmt: skip
_PREDICATE_FUNCTIONS = frozenset(
    {"lower", "upper", "substr", "substring", "left", "right", "length", "starts_with", "prefix",
     "suffix", "contains", "trim", "coalesce", "year", "month", "abs", "round"}
)  # fmt: skip
_NOT_CONDITIONS = (exp.Literal, exp.Null, exp.Add, exp.Sub, exp.Mul, exp.Div, exp.IntDiv, exp.Mod,
                   exp.Neg, exp.DPipe)  # fmt: skip


def check_predicate(predicate: str, columns: Collection[str]) -> str:
    """Check a row filter over ``columns``; return it normalised for ``WHERE (<predicate>)``.

    Column names match case-insensitively, as in DuckDB.
    """
    try:
        tokens = sqlglot.tokenize(predicate, read=DIALECT)
    except SqlglotError as exc:
        raise BadInput(f"row filter is not valid SQL: {exc}") from exc
    if not tokens:
        raise BadInput("row filter is empty")
    if any(t.token_type == TokenType.SEMICOLON for t in tokens):
        raise BadInput("a row filter is a single condition; ';' is not allowed")
    try:
        tree = sqlglot.parse_one(predicate, read=DIALECT, into=exp.Condition)
    except ParseError as exc:
        error = exc.errors[0] if exc.errors else {}
        near = f" near {error['highlight']!r}" if error.get("highlight") else ""
        raise BadInput(f"row filter is not a valid condition{near}: {predicate}") from exc
    except (SqlglotError, RecursionError) as exc:
        raise BadInput(f"row filter is not a valid condition: {predicate}") from exc
    if isinstance(tree.unnest(), _NOT_CONDITIONS):
        raise BadInput("a row filter must be a condition such as ags LIKE '05%' or jahr >= 2020")
    known = {c.casefold(): c for c in columns}
    for node in tree.walk(prune=lambda n: isinstance(n, exp.DataType)):
        if isinstance(node, exp.Column):
            if node.table or not isinstance(node.this, exp.Identifier):
                raise BadInput(f"row filter: use plain column names, not {node.sql(DIALECT)}")
            if node.name.casefold() not in known:
                available = ", ".join(sorted(columns)) or "none"
                raise BadInput(
                    f"not a column of this dataset (available: {available})", column=node.name
                )
        elif isinstance(node, exp.Identifier):
            if not isinstance(node.parent, exp.Column):
                raise BadInput(f"row filter: unexpected name {node.name!r}")
        elif isinstance(node, _PREDICATE_NODES):
            continue  # And, Or and Cast are Func subclasses in sqlglot, so this comes first
        elif isinstance(node, exp.Func):
            name = _function_names(node)[0]
            anonymous_ok = isinstance(node, exp.Anonymous) and name in _PREDICATE_FUNCTIONS
            if not (anonymous_ok or isinstance(node, _PREDICATE_FUNCTION_NODES)):
                allowed = ", ".join(sorted(_PREDICATE_FUNCTIONS))
                raise BadInput(f"function {name}() is not allowed in a row filter ({allowed})")
        else:
            raise BadInput(f"not allowed in a row filter: {node.sql(DIALECT)}")
    return tree.sql(dialect=DIALECT, comments=False)


@dataclass(frozen=True)
class LimitedResult:
    """At most ``max_rows`` rows; ``truncated`` if the query had more."""

    table: pa.Table
    truncated: bool
    elapsed_s: float


class _Watchdog:
    """Interrupts a connection once a deadline passes, and keeps interrupting until stopped.

    DuckDB clears the interrupt flag when a query starts, so one interrupt that lands just
    before ``execute`` would be lost; repeating it every 50 ms closes that gap. The lock makes
    sure no interrupt is sent after ``stop`` returns. One that lands after the query finished
    but before ``stop`` is harmless: DuckDB clears it when the next query starts.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, timeout_s: float) -> None:
        self.con = con
        self.timeout_s = timeout_s
        self.fired = False
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="sql-time-limit", daemon=True)

    def _run(self) -> None:
        wait = self.timeout_s
        while not self._done.wait(wait):
            with self._lock:
                if self._done.is_set():
                    return
                self.fired = True
                self.con.interrupt()
            wait = 0.05

    def __enter__(self) -> _Watchdog:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        with self._lock:
            self._done.set()
        self._thread.join()


_MAX_BATCH_ROWS = 65_536


def run_limited(
    con: duckdb.DuckDBPyConnection,
    sql: str,
    *,
    max_rows: int,
    timeout_s: float,
    params: list[object] | None = None,
) -> LimitedResult:
    """Run ``sql`` on ``con``, keep at most ``max_rows`` rows, stop it after ``timeout_s``.

    Holds at most ``max_rows`` plus one batch in memory. After a timeout or a truncated read
    the same connection can run further queries.
    """
    if max_rows < 0 or timeout_s <= 0:
        raise ValueError("max_rows must be >= 0 and timeout_s > 0")
    batch_rows = max(1, min(max_rows + 1, _MAX_BATCH_ROWS))
    batches: list[pa.RecordBatch] = []
    rows = 0
    started = time.monotonic()
    with _Watchdog(con, timeout_s) as watchdog:
        try:
            con.execute(sql, params)
            reader = con.to_arrow_reader(batch_rows)
            with reader:
                for batch in reader:
                    batches.append(batch)
                    rows += batch.num_rows
                    if rows > max_rows:
                        break
            schema = reader.schema
        # Errors while streaming come through Arrow as OSError or ArrowException.
        except (duckdb.Error, OSError, pa.ArrowException) as exc:
            if watchdog.fired or isinstance(exc, duckdb.InterruptException):
                raise BadInput(
                    f"query stopped: it ran longer than the time limit of {timeout_s:g} s"
                ) from exc
            raise BadInput(f"query failed: {_first_line(exc)}") from exc
    table = pa.Table.from_batches(batches, schema=schema).slice(0, max_rows)
    return LimitedResult(table, rows > max_rows, time.monotonic() - started)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
