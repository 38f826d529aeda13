"""The official German regional key list (AGS/ARS) and vectorized checks against it.

Keys (always text, leading zeros matter):

* AGS, Amtlicher Gemeindeschlüssel, 8 digits: Land (2) + Regierungsbezirk (1) + Kreis (2) +
  Gemeinde (3). Its prefixes name the higher levels: ``09`` Bayern, ``091`` Oberbayern,
  ``09162`` München (Kreis), ``09162000`` München (Gemeinde).
* ARS, Amtlicher Regionalschlüssel, 12 digits: Kreis (5) + Gemeindeverband (4) + Gemeinde (3);
  ``091620000000`` is München. Its 9-digit prefix is the Gemeindeverband.

The list (``datenlabor/data/ags_keys.csv``, columns ``key,level,name``) is built by
``scripts/build_ags_keys.py`` from public official sources; provenance and Gebietsstand in
``datenlabor/data/SOURCES.md``. In short: Länder and Kreise from BKG VG5000 (Stand 01.01.2021),
Regierungsbezirke from the Destatis GV100AD, Gemeinden from the Anlage to the federal
Mietniveau-Einstufungsverordnung (Gebietsstand 25.01.2021). The list has no Gemeindeverband
level and no gemeindefreie Gebiete: such keys are never "known" here.

Checks on a column run as one DuckDB query (a semi-join against the registered key table),
see :func:`column_check_sql`; :func:`level_of` and :func:`is_known` are for single keys.
"""

from __future__ import annotations

import gzip
import io
from functools import cache
from importlib import resources

import duckdb
import pyarrow as pa
import pyarrow.csv as pacsv

__all__ = [
    "GEBIETSSTAND",
    "LAENDER",
    "column_check",
    "column_check_sql",
    "format_ok_sql",
    "is_known",
    "is_valid_format",
    "key_table",
    "known_sql",
    "level_of",
    "register",
]

#: Reference date of the Gemeinde level of the key list (see SOURCES.md for the other levels).
GEBIETSSTAND = "2021-01-25"

LAENDER: dict[str, str] = {
    "01": "Schleswig-Holstein",
    "02": "Hamburg",
    "03": "Niedersachsen",
    "04": "Bremen",
    "05": "Nordrhein-Westfalen",
    "06": "Hessen",
    "07": "Rheinland-Pfalz",
    "08": "Baden-Württemberg",
    "09": "Bayern",
    "10": "Saarland",
    "11": "Berlin",
    "12": "Brandenburg",
    "13": "Mecklenburg-Vorpommern",
    "14": "Sachsen",
    "15": "Sachsen-Anhalt",
    "16": "Thüringen",
}

LEVELS = ("land", "regierungsbezirk", "kreis", "gemeindeverband", "gemeinde")
_LEVEL_BY_LENGTH = {
    2: "land",
    3: "regierungsbezirk",
    5: "kreis",
    8: "gemeinde",  # AGS
    9: "gemeindeverband",  # ARS prefix
    12: "gemeinde",  # ARS
}
_DATA = "data/ags_keys.csv"
_SCHEMA = pa.schema([("key", pa.string()), ("level", pa.string()), ("name", pa.string())])


def _read_package_csv() -> bytes:
    base = resources.files("datenlabor")
    plain = base.joinpath(_DATA)
    if plain.is_file():
        return plain.read_bytes()
    return gzip.decompress(base.joinpath(_DATA + ".gz").read_bytes())


@cache
def key_table() -> pa.Table:
    """The key list as an Arrow table: ``key``, ``level``, ``name`` (all strings), sorted by key.

    ``level`` is one of ``land``, ``regierungsbezirk``, ``kreis``, ``gemeinde`` (the source has
    no ``gemeindeverband`` entries). Read once from the package data and cached.
    """
    convert = pacsv.ConvertOptions(column_types=_SCHEMA, strings_can_be_null=False)
    return pacsv.read_csv(io.BytesIO(_read_package_csv()), convert_options=convert)


@cache
def _known_keys() -> frozenset[str]:
    return frozenset(key_table().column("key").to_pylist())


def register(con: duckdb.DuckDBPyConnection, name: str = "ags_keys") -> None:
    """Make the key table queryable as ``name`` (columns key, level, name) in ``con``.

    The Arrow table is registered as a view of this connection (no copy); registering again
    under the same name replaces it.
    """
    con.register(name, key_table())


def level_of(key: str) -> str | None:
    """The level a key denotes by its length, or None if it is not all ASCII digits of a valid
    length: 2 ``land``, 3 ``regierungsbezirk``, 5 ``kreis``, 8 ``gemeinde`` (AGS),
    9 ``gemeindeverband`` (ARS prefix), 12 ``gemeinde`` (ARS).
    """
    if not isinstance(key, str) or not (key.isascii() and key.isdigit()):
        return None
    return _LEVEL_BY_LENGTH.get(len(key))


def is_valid_format(key: str) -> bool:
    """Digits of a valid length (see :func:`level_of`) with a Land part from 01 to 16."""
    return level_of(key) is not None and "01" <= key[:2] <= "16"


def _as_ags(key: str) -> str:
    """A 12-digit ARS mapped to its 8-digit AGS (Kreis + Gemeinde part), other keys unchanged."""
    return key[:5] + key[9:] if len(key) == 12 else key


def is_known(key: str) -> bool:
    """Whether the key exists in the official list.

    A 12-digit ARS counts as known when its Kreis prefix plus its Gemeinde part form a known
    AGS (``091620000000`` -> ``09162000``); its Gemeindeverband digits are not checked, since
    the list has no Gemeindeverband level. 9-digit Gemeindeverband keys are therefore never
    known, nor are malformed keys.
    """
    if not is_valid_format(key):
        return False
    return _as_ags(key) in _known_keys()


def _text(column_sql: str) -> str:
    return f"CAST(({column_sql}) AS VARCHAR)"


def format_ok_sql(column_sql: str) -> str:
    """A boolean SQL expression: the value has a valid key format (NULL for NULL)."""
    v = _text(column_sql)
    return (
        f"(regexp_full_match({v}, '[0-9]{{2}}|[0-9]{{3}}|[0-9]{{5}}|[0-9]{{8}}|[0-9]{{9}}|[0-9]{{12}}')"
        f" AND substr({v}, 1, 2) BETWEEN '01' AND '16')"
    )


def known_sql(column_sql: str, keys_table: str = "ags_keys") -> str:
    """A boolean SQL expression: the value (12-digit ARS mapped to its AGS) is in ``keys_table``.

    Uncorrelated ``IN (SELECT key ...)``, which DuckDB runs as one hash semi-join per query.
    """
    v = _text(column_sql)
    norm = f"(CASE WHEN length({v}) = 12 THEN substr({v}, 1, 5) || substr({v}, 10, 3) ELSE {v} END)"
    return f"({norm} IN (SELECT key FROM {keys_table}))"


def column_check_sql(column_sql: str, keys_table: str = "ags_keys") -> str:
    """A SELECT-list fragment of aggregates that classifies the values of a key column.

    ``column_sql`` is any SQL expression (a quoted column name, ``trim(x)``, ...); non-text
    values are cast to VARCHAR, so an integer column of keys that lost their leading zero shows
    up as malformed. ``keys_table`` must have been made available with :func:`register`.
    Use it as ``SELECT <fragment> FROM <table>``; the query returns one row with the columns

    ============  ==================================================================
    ``n_rows``     all rows
    ``n_null``     NULL values
    ``n_format_ok``  non-NULL values with a valid format (2, 3, 5, 8, 9 or 12 digits,
                   Land part 01-16)
    ``n_invalid``  non-NULL values with an invalid format (``n_rows - n_null - n_format_ok``)
    ``n_known``    values with a valid format that are in the key list (12-digit ARS via
                   their AGS; 9-digit Gemeindeverband keys are never known)
    ``n_unknown``  values with a valid format that are not in the key list
    ============  ==================================================================

    Example::

        register(con)
        fragment = column_check_sql('"gemeinde"')
        con.sql(f"SELECT {fragment} FROM t").fetchone()
        # for the values '09162000', '091620000000', '01999999', '1234567', NULL:
        # (5, 1, 3, 1, 2, 1)  -> n_rows, n_null, n_format_ok, n_invalid, n_known, n_unknown
    """
    v = _text(column_sql)
    ok = format_ok_sql(column_sql)
    known = known_sql(column_sql, keys_table)
    return ", ".join(
        [
            "count(*) AS n_rows",
            f"count(*) FILTER (WHERE {v} IS NULL) AS n_null",
            f"count(*) FILTER (WHERE {ok}) AS n_format_ok",
            f"count(*) FILTER (WHERE {v} IS NOT NULL AND NOT {ok}) AS n_invalid",
            f"count(*) FILTER (WHERE {ok} AND {known}) AS n_known",
            f"count(*) FILTER (WHERE {ok} AND NOT {known}) AS n_unknown",
        ]
    )


def column_check(
    con: duckdb.DuckDBPyConnection, table_sql: str, column_sql: str, keys_table: str = "ags_keys"
) -> dict[str, int]:
    """Run :func:`column_check_sql` on ``table_sql`` (registering the key list) as one query."""
    register(con, keys_table)
    rel = con.sql(f"SELECT {column_check_sql(column_sql, keys_table)} FROM {table_sql}")
    row = rel.fetchone()
    assert row is not None  # an aggregate query always returns one row
    return dict(zip(rel.columns, row, strict=True))
