"""DuckDB connections configured the same way everywhere in Datenlabor."""

from __future__ import annotations

import importlib
from pathlib import Path

import duckdb

# Extensions ship as PyPI packages (duckdb-extension-NAME) because DuckDB cannot download
# them on air-gapped machines; this maps our name to the package that carries the file.
_EXTENSION_PACKAGES = {"excel": "duckdb_extension_excel", "encodings": "duckdb_extension_encodings"}


def connect(
    *,
    temp_dir: Path | None = None,
    memory_limit: str | None = None,
    threads: int | None = None,
    create_temp_dir: bool = True,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection that spills to ``temp_dir`` and never goes online.

    Without ``create_temp_dir`` only its parent is made; DuckDB makes the folder itself
    the first time it spills."""
    config: dict[str, str | bool | int | float | list[str]] = {
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
    }
    if memory_limit:
        config["memory_limit"] = memory_limit
    if threads:
        config["threads"] = threads
    if temp_dir is not None:
        (temp_dir if create_temp_dir else temp_dir.parent).mkdir(parents=True, exist_ok=True)
        config["temp_directory"] = str(temp_dir)
    con = duckdb.connect(":memory:", config=config)
    # DuckDB draws its own progress bar on stdout for statements over 2 s, even when stdout
    # is not a terminal: it broke `sql --format json` output. Progress stays queryable
    # (query_progress) for our own bars; only DuckDB's printing is off.
    con.execute("SET enable_progress_bar_print = false")
    return con


def load_extension(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Load a DuckDB extension from its PyPI package (no network)."""
    package = importlib.import_module(_EXTENSION_PACKAGES[name])
    root = Path(str(package.__file__)).parent / "extensions" / f"v{duckdb.__version__}"
    path = root / f"{name}.duckdb_extension"
    if not path.is_file():
        raise RuntimeError(f"DuckDB extension {name!r} for DuckDB {duckdb.__version__} missing")
    con.execute(f"LOAD '{path}'")


def quote_ident(name: str) -> str:
    """Quote an identifier for DuckDB SQL."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(value: str) -> str:
    """Quote a string literal for DuckDB SQL."""
    return "'" + value.replace("'", "''") + "'"
