"""Table Schema inference and schema checks for a staged dataset version.

Everything runs as DuckDB SQL over a relation (a table or view holding the version's rows in
file order): a constant number of queries per table or per constrained column, never a Python
loop over rows.

    >>> schema = infer_table_schema(con, "staged", primary_key=["ags", "jahr"])
    >>> check_against_schema(con, "staged", load_schema("schema.json"), file="daten.csv")

Custom descriptor properties (allowed by the Table Schema spec):
``datenlabor:duckdbType`` the storage type; ``datenlabor:semantic`` ``ags`` / ``ars`` for
regional keys, ``status`` for a GENESIS status column.
"""

from __future__ import annotations

import copy
import datetime as dt
import difflib
import json
import re
from pathlib import Path
from typing import Any

import duckdb
import yaml
from frictionless import Schema

from datenlabor.errors import BadInput

SEMANTIC = "datenlabor:semantic"
DUCKDB_TYPE = "datenlabor:duckdbType"
SHARE = 0.95  # share of non-null values that must agree before a hint is given
KEY_SHARE = 0.5  # enough for a column with an unambiguous key name (ags, ars, ...)

# Regional keys: Land 2, Regierungsbezirk 3, Kreis 5, Gemeindeverband 9 (ARS), Gemeinde 8 (AGS)
# or 12 (ARS) digits; GENESIS writes "DG" for Germany as a whole.
KEY_RE = "DG|[0-9]{2}|[0-9]{3}|[0-9]{5}|[0-9]{8}|[0-9]{9}|[0-9]{12}"
STATUS_RE = r"(-|0|\.|\.\.\.|x|/|\(\)|–|—)? ?[prse]?"
REGIONAL_VARIABLES = ("DINSG", "DLAND", "REGBEZ", "KREISE", "GEMEIN", "GEMEINDE")
_KEY_NAME = re.compile(r"(?:^|[^a-z])(ags|ars|rs|gkz|krs)(?:[^a-z]|$)|schluessel|kreis|kennziffer")
_STRONG_KEY_NAME = re.compile(
    r"(?:^|[^a-z])(ags|ars|gkz)(?:[^a-z]|$)|regionalschluessel|gemeindeschluessel|kreisschluessel"
)
_GENESIS_CODE = re.compile(r"(\d+)_(variable_attribute_code|auspraegung_code)", re.I)

_INTEGER_IDS = {"tinyint", "smallint", "integer", "bigint", "hugeint", "utinyint", "usmallint"}
_INTEGER_IDS |= {"uinteger", "ubigint", "uhugeint", "bignum", "varint"}
_SQL_TYPE = {"integer": "HUGEINT", "number": "DOUBLE", "year": "INTEGER", "date": "DATE"}
_SQL_TYPE |= {"datetime": "TIMESTAMP", "time": "TIME", "boolean": "BOOLEAN"}
_TRUE = ["true", "True", "TRUE", "1"]
_FALSE = ["false", "False", "FALSE", "0"]
_DURATION_RE = r"P([0-9]+Y)?([0-9]+M)?([0-9]+W)?([0-9]+D)?(T([0-9]+H)?([0-9]+M)?([0-9.]+S)?)?"
_ANY_DATE = ["%d.%m.%Y", "%Y-%m-%d", "%d/%m/%Y", "%Y%m%d"]
_ANY_DATETIME = ["%d.%m.%Y %H:%M:%S", "%d.%m.%Y %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"]
_STRING_FORMATS = {
    "email": r"[^@\s]+@[^@\s]+\.[^@\s]+",
    "uri": r"[a-zA-Z][a-zA-Z0-9+.\-]*:\S+",
    "uuid": r"[0-9a-fA-F]{8}-?([0-9a-fA-F]{4}-?){3}[0-9a-fA-F]{12}",
}
_MAX_SHOWN = 5
_BOUNDS = [
    ("minimum", "<", "below the minimum"),
    ("maximum", ">", "above the maximum"),
    ("exclusiveMinimum", "<=", "not above the exclusive minimum"),
    ("exclusiveMaximum", ">=", "not below the exclusive maximum"),
]
_DIRECTIVES = dict.fromkeys("dmyHMS", "[0-9]{1,2}") | {"Y": "[0-9]{1,4}", "f": "[0-9]{1,9}"}


# -- SQL helpers shared with quality.py --------------------------------------------------------


def ident(name: str) -> str:
    """Quote a column name as an SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def lit(value: str) -> str:
    """Quote a Python string as an SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def rel(relation: str) -> str:
    """The relation as SQL: a (qualified) plain name as given, anything else quoted."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*){0,2}", relation):
        return relation
    return ident(relation)


def columns(con: duckdb.DuckDBPyConnection, relation: str) -> list[tuple[str, str, str]]:
    """(name, DuckDB type as text, DuckDB type id) of each column, in order."""
    try:
        res = con.sql(f"SELECT * FROM {rel(relation)} LIMIT 0")
    except duckdb.Error as exc:
        raise BadInput(f"relation {relation!r} cannot be read: {exc}") from exc
    return [(n, str(t), t.id) for n, t in zip(res.columns, res.types, strict=True)]


def is_text(type_str: str, type_id: str) -> bool:
    return type_id in ("varchar", "enum")


def table_schema_type(type_str: str, type_id: str) -> tuple[str, str | None]:
    """Table Schema (type, format) for a DuckDB type."""
    if type_str == "JSON":
        return "any", None
    simple = {"varchar": "string", "enum": "string", "bit": "string", "boolean": "boolean"}
    simple |= {"float": "number", "double": "number", "decimal": "number", "date": "date"}
    simple |= {"interval": "duration", "list": "array", "array": "array"}
    simple |= {"struct": "object", "map": "object"}
    if type_id in simple:
        return simple[type_id], None
    if type_id == "uuid":
        return "string", "uuid"
    if type_id == "blob":
        return "string", "binary"
    if type_id in _INTEGER_IDS:
        return "integer", None
    if type_id.startswith("timestamp"):
        return "datetime", None
    if type_id.startswith("time"):
        return "time", None
    return "any", None


def key_name(name: str, *, strong: bool = False) -> bool:
    """Whether a column name suggests a regional key (AGS, ARS, Kreis key ...); ``strong``:
    whether it leaves no doubt (ags, ars, gkz, regionalschluessel, gemeindeschluessel ...)."""
    n = name.lower().replace("ü", "ue").replace("ä", "ae").replace("ö", "oe").replace("ß", "ss")
    return bool((_STRONG_KEY_NAME if strong else _KEY_NAME).search(n))


def value_sql(column: str, storage: tuple[str, str], field: dict, missing: list[str]) -> tuple:
    """SQL for (is missing, typed value or NULL when the value does not conform).

    ``storage`` is (type text, type id) of the staged column; ``missing`` the schema's
    missingValues (only applied to text columns: typed columns have real NULLs).
    """
    c = ident(column)
    t, fmt = field.get("type", "any"), str(field.get("format", "default"))
    fmt = fmt[4:] if fmt.startswith("fmt:") else fmt
    missing = field.get("missingValues", missing)
    if not is_text(*storage):
        return f"{c} IS NULL", _typed_value(c, storage, t)
    is_missing = f"({c} IS NULL OR {c} IN ({', '.join(map(lit, missing))}))" if missing else None
    is_missing = is_missing or f"{c} IS NULL"

    def case(cond: str, value: str) -> str:
        return f"CASE WHEN {cond} THEN {value} END"

    if t in ("integer", "number"):
        s = c
        if field.get("bareNumber") is False:
            s = f"regexp_replace({s}, '^[^0-9+.,-]+|[^0-9.,]+$', '', 'g')"
        g, d = field.get("groupChar"), field.get("decimalChar", ".")
        plain = f"replace({s}, {lit(g)}, '')" if g else s
        plain = f"replace({plain}, {lit(d)}, '.')" if t == "number" and d != "." else plain
        sql_type = "HUGEINT" if t == "integer" else "DOUBLE"
        matches = f"regexp_full_match({s}, {lit(number_regex(field))})"
        return is_missing, case(matches, f"TRY_CAST({plain} AS {sql_type})")
    if t == "boolean":
        tv, fv = field.get("trueValues", _TRUE), field.get("falseValues", _FALSE)
        value = f"CASE WHEN {c} IN ({', '.join(map(lit, tv))}) THEN true "
        return is_missing, value + f"WHEN {c} IN ({', '.join(map(lit, fv))}) THEN false END"
    if t in ("date", "datetime", "time"):
        sql_type = _SQL_TYPE[t]
        if fmt == "default":
            iso = {
                "date": r"[0-9]{4}-[0-9]{2}-[0-9]{2}",
                "time": r"[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?",
            }
            iso["datetime"] = iso["date"] + "[T ]" + iso["time"] + r"(Z|[+-][0-9]{2}:?[0-9]{2})?"
            return is_missing, case(
                f"regexp_full_match({c}, {lit(iso[t])})", f"TRY_CAST({c} AS {sql_type})"
            )
        if fmt == "any":
            cast = case(f"regexp_matches({c}, '^[0-9]{{4}}-')", f"TRY_CAST({c} AS {sql_type})")
            formats = _ANY_DATETIME if t == "datetime" else _ANY_DATE
            return is_missing, f"COALESCE({cast}, {_strptime(c, formats, sql_type)})"
        return is_missing, _strptime(c, [fmt], sql_type)
    if t == "year":
        return is_missing, case(
            f"regexp_full_match({c}, '[0-9]{{4}}')", f"TRY_CAST({c} AS INTEGER)"
        )
    if t == "yearmonth":
        return is_missing, case(f"regexp_full_match({c}, '[0-9]{{4}}-(0[1-9]|1[0-2])')", c)
    if t == "duration":
        return is_missing, case(
            f"regexp_full_match({c}, {lit(_DURATION_RE)}) AND {c} NOT IN ('P', 'PT')", c
        )
    if t in ("object", "geojson", "array"):
        kind = "ARRAY" if t == "array" else "OBJECT"
        return is_missing, case(f"json_valid({c})", case(f"json_type({c}::JSON) = '{kind}'", c))
    if t == "geopoint" and fmt == "default":
        return is_missing, case(f"regexp_full_match({c}, '\\s*-?[0-9.]+\\s*,\\s*-?[0-9.]+\\s*')", c)
    if t == "string" and fmt in _STRING_FORMATS:
        return is_missing, case(f"regexp_full_match({c}, {lit(_STRING_FORMATS[fmt])})", c)
    return is_missing, c


def number_regex(field: dict) -> str:
    """The regex a conforming integer/number field value matches.

    Stricter than frictionless: with a groupChar, groups must have 3 digits, so that an English
    "1.5" in a German column (groupChar ".") is an error rather than 15.
    """
    g, d = field.get("groupChar"), _re_escape(field.get("decimalChar", "."))
    digits = f"([0-9]{{1,3}}({_re_escape(g)}[0-9]{{3}})+|[0-9]+)" if g else "[0-9]+"
    if field.get("type") == "integer":
        return f"[+-]?{digits}"
    return f"[+-]?({digits}({d}[0-9]*)?|{d}[0-9]+)([eE][+-]?[0-9]+)?|[+-]?(NaN|INF|Infinity)"


def _re_escape(text: str) -> str:
    """Escape regex metacharacters for RE2 (Python's re.escape escapes too much for it)."""
    return re.sub(r"([.^$*+?()[\]{}|\\])", r"\\\1", text)


def _strptime(c: str, formats: list[str], sql_type: str) -> str:
    """TRY_STRPTIME behind a cheap regex guard: failing parses are slow in DuckDB."""
    guards = []
    for fmt in formats:
        parts = [p for p in re.split(r"(%-?.)", fmt) if p]
        guards.append(
            "".join(_DIRECTIVES.get(p[-1], ".+") if p[0] == "%" else _re_escape(p) for p in parts)
        )
    fmts = "[" + ", ".join(map(lit, formats)) + "]" if len(formats) > 1 else lit(formats[0])
    guard = lit("(" + ")|(".join(guards) + ")")
    parsed = f"TRY_STRPTIME({c}, {fmts})::{sql_type}"
    return f"CASE WHEN regexp_full_match({c}, {guard}) THEN {parsed} END"


def _typed_value(c: str, storage: tuple[str, str], t: str) -> str:
    have, _ = table_schema_type(*storage)
    if t in (have, "any") or (t == "geojson" and have == "object"):
        return c
    if t == "string":
        return f"CAST({c} AS VARCHAR)"
    if t == "number" and have == "integer":
        return f"CAST({c} AS DOUBLE)"
    if t == "integer" and have == "number":
        return f"CASE WHEN TRY_CAST({c} AS HUGEINT) = {c} THEN TRY_CAST({c} AS HUGEINT) END"
    if t == "year" and have == "integer":
        return f"CASE WHEN {c} BETWEEN 0 AND 9999 THEN CAST({c} AS INTEGER) END"
    if t == "datetime" and have == "date":
        return f"CAST({c} AS TIMESTAMP)"
    if t == "date" and have == "datetime":
        return f"CASE WHEN CAST({c} AS TIMESTAMP) = CAST({c} AS DATE) THEN CAST({c} AS DATE) END"
    return "NULL"  # incompatible storage: every value violates the declared type


# -- inference -----------------------------------------------------------------------------------


def infer_table_schema(
    con: duckdb.DuckDBPyConnection, relation: str, *, primary_key: list[str] | None = None
) -> dict:
    """A Table Schema descriptor for the relation, from its DuckDB column types.

    Text columns get ``datenlabor:semantic`` ``ags``/``ars`` when the name suggests a regional
    key (or, in a GENESIS flat export, the column holds the codes of a regional variable) and at
    least 95% of the non-null values look like keys (50% for an unambiguous name such as
    ``ags``, so that a badly broken key column still gets its keys checked); ``status`` for a
    GENESIS status column (``status``/``*_status`` holding official symbols).
    No constraints are invented: facts about the data belong in the quality report.
    """
    cols = columns(con, relation)
    names = [n for n, _, _ in cols]
    primary_key = [primary_key] if isinstance(primary_key, str) else primary_key
    for key in primary_key or []:
        if key not in names:
            raise BadInput(f"primary key field {key!r} is not a column of the data", column=key)
    fields = []
    for name, type_str, type_id in cols:
        t, fmt = table_schema_type(type_str, type_id)
        field: dict[str, Any] = {"name": name, "type": t}
        if fmt:
            field["format"] = fmt
        field[DUCKDB_TYPE] = type_str
        fields.append(field)
    for name, semantic in _semantics(con, relation, cols).items():
        fields[names.index(name)][SEMANTIC] = semantic
    descriptor: dict[str, Any] = {"fields": fields, "missingValues": [""]}
    if primary_key:
        descriptor["primaryKey"] = list(primary_key)
    return descriptor


def _semantics(con, relation: str, cols: list[tuple[str, str, str]]) -> dict[str, str]:
    """Semantic hints for text columns, from one aggregate query."""
    lower = {n.lower(): n for n, _, _ in cols}
    aggs: list[str] = []
    candidates: list[tuple[str, str]] = []
    for name, type_str, type_id in cols:
        if not is_text(type_str, type_id):
            continue
        c = ident(name)
        genesis = _GENESIS_CODE.fullmatch(name)
        companion = None
        if genesis:
            var = genesis.group(1)
            companion = lower.get(f"{var}_variable_code") or lower.get(f"{var}_merkmal_code")
        if key_name(name) or companion:
            candidates.append((name, "key"))
            aggs += [
                f"count({c})",
                f"count_if(regexp_full_match({c}, {lit(KEY_RE)}))",
                f"count_if(regexp_full_match({c}, '[0-9]+'))",
                f"count_if(regexp_full_match({c}, '[0-9]{{12}}'))",
            ]
            regional = ", ".join(map(lit, REGIONAL_VARIABLES))
            named = "true"
            if companion and not key_name(name):
                named = f"bool_and({ident(companion)} IN ({regional}))"
            aggs.append(f"coalesce({named}, false)")
        elif re.fullmatch(r"(.*_)?status", name, re.I):
            candidates.append((name, "status"))
            aggs += [f"count({c})", f"count_if(regexp_full_match({c}, {lit(STATUS_RE)}))"]
    if not candidates:
        return {}
    # count_if over only NULLs is NULL in DuckDB: read every count as 0 then.
    row = [v or 0 for v in con.sql(f"SELECT {', '.join(aggs)} FROM {rel(relation)}").fetchone()]
    result = {}
    for name, kind in candidates:
        if kind == "status":
            n, ok = row.pop(0), row.pop(0)
            if ok >= SHARE * n:
                result[name] = "status"
            continue
        n, ok, digits, twelve, by_name = (row.pop(0) for _ in range(5))
        share = KEY_SHARE if key_name(name, strong=True) else SHARE
        if by_name and n and digits and ok >= share * n:
            lowered = name.lower().replace("ü", "ue")
            ars = re.search(r"(?:^|[^a-z])(ars|rs)(?:[^a-z]|$)|regionalschluessel", lowered)
            result[name] = "ars" if ars or twelve * 2 >= digits else "ags"
    return result


# -- user schemas --------------------------------------------------------------------------------


def load_schema(source: str | Path | dict) -> dict:
    """A user-supplied Table Schema from a JSON/YAML file, JSON text or a dict, validated.

    Raises BadInput naming the file, the line (for syntax errors) and the problem.
    """
    file = None
    if isinstance(source, dict):
        descriptor: Any = copy.deepcopy(source)
    elif isinstance(source, str) and source.lstrip().startswith("{"):
        descriptor = _parse(source, None, yaml_syntax=False)
    else:
        path = Path(source)
        file = str(path)
        if not path.is_file():
            raise BadInput("schema file not found", file=file)
        text = path.read_text(encoding="utf-8-sig")
        descriptor = _parse(text, file, yaml_syntax=path.suffix.lower() in (".yaml", ".yml"))
    if not isinstance(descriptor, dict):
        raise BadInput("a Table Schema must be an object with a 'fields' list", file=file)
    if isinstance(descriptor.get("primaryKey"), str):
        descriptor["primaryKey"] = [descriptor["primaryKey"]]
    report = Schema.validate_descriptor(descriptor)
    if not report.valid:
        notes = [e.note for e in report.errors]
        raise BadInput("invalid Table Schema: " + "; ".join(notes[:_MAX_SHOWN]), file=file)
    return descriptor


def _parse(text: str, file: str | None, *, yaml_syntax: bool) -> Any:
    try:
        return yaml.safe_load(text) if yaml_syntax else json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadInput(f"schema is not valid JSON: {exc.msg}", file=file, line=exc.lineno) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise BadInput(f"schema is not valid YAML: {exc}", file=file, line=line) from exc


def _constraint_literal(value: Any, field: dict) -> str:
    """An SQL literal for a constraint value, typed like the field's values."""
    t, name = field.get("type", "any"), field["name"]
    fmt = str(field.get("format", "default")).removeprefix("fmt:")
    try:
        if isinstance(value, str) and t in ("integer", "number", "year"):
            value = value.replace(field.get("groupChar") or "\0", "")
            value = value.replace(field.get("decimalChar", "."), ".")
        if t in ("integer", "year"):
            number = float(value) if isinstance(value, str) else value
            if isinstance(number, bool) or int(number) != number:
                raise ValueError(value)
            return str(int(number))
        if t == "number":
            return f"CAST({lit(repr(float(value)))} AS DOUBLE)"
        if t in ("date", "datetime", "time"):
            parse: Any = {"date": dt.date, "datetime": dt.datetime, "time": dt.time}[t]
            try:
                parsed = parse.fromisoformat(str(value))
            except ValueError:
                parsed = dt.datetime.strptime(str(value), fmt)
                parsed = parsed.date() if t == "date" else parsed.time() if t == "time" else parsed
            return f"{_SQL_TYPE[t]} {lit(parsed.isoformat())}"
        if t == "boolean":
            if value in (True, *field.get("trueValues", _TRUE)):
                return "true"
            if value in (False, *field.get("falseValues", _FALSE)):
                return "false"
            raise ValueError(value)
    except (ValueError, TypeError, OverflowError) as exc:
        raise BadInput(
            f"schema field {name!r}: constraint value {value!r} is not a valid {t}"
        ) from exc
    return lit(value)


# -- checks --------------------------------------------------------------------------------------


def check_against_schema(
    con: duckdb.DuckDBPyConnection,
    relation: str,
    schema: dict,
    *,
    file: str | None = None,
    line_offset: int = 1,
) -> None:
    """Raise BadInput on the first violations of a user schema by the staged rows.

    Checks field names, type conformance and the constraints required, unique, minimum,
    maximum (and exclusive variants), minLength, maxLength, pattern and enum, plus primaryKey
    uniqueness and completeness. ``line`` of the error is the 1-based row number plus
    ``line_offset`` (the number of lines before the first data row in the file).
    """
    schema = load_schema(schema)
    cols = {n: (s, i) for n, s, i in columns(con, relation)}
    fields = schema["fields"]
    _check_names(list(cols), [f["name"] for f in fields], file, line_offset)
    missing_values = schema.get("missingValues", [""])
    pk = schema.get("primaryKey") or []
    checks: list[tuple[str, str, str]] = []  # (field, message template, predicate)
    values: dict[str, str] = {}  # typed value, NULL when missing, for unique and primaryKey
    for field in fields:
        name, t = field["name"], field.get("type", "any")
        is_missing, value = value_sql(name, cols[name], field, missing_values)
        values[name] = f"CASE WHEN NOT {is_missing} THEN {value} END"

        def add(template: str, predicate: str, name=name, is_missing=is_missing) -> None:
            checks.append((name, template, f"NOT {is_missing} AND ({predicate})"))

        if value != ident(name):
            fmt = field.get("format", "default")
            add(
                f"{{v}} is not a valid {t}" + (f" (format {fmt})" * (fmt != "default")),
                f"{value} IS NULL",
            )
        cons = field.get("constraints", {})
        if cons.get("required") or name in pk:
            why = "part of the primary key" if name in pk else "required"
            checks.append((name, f"value is missing but the field is {why}", is_missing))
        for key, op, text in _BOUNDS:
            if key in cons:
                bound = _constraint_literal(cons[key], field)
                add(f"{{v}} is {text} {cons[key]!r}", f"{value} {op} {bound}")
        for key, op, word in (("minLength", "<", "shorter"), ("maxLength", ">", "longer")):
            if key in cons:
                length = _length_sql(value, cols[name], t)
                add(
                    f"{{v}} is {word} than the {key} {cons[key]}", f"{length} {op} {int(cons[key])}"
                )
        if "pattern" in cons:
            pattern = lit(cons["pattern"])
            try:
                con.execute(f"SELECT regexp_full_match('', {pattern})")
            except duckdb.Error as exc:
                raise BadInput(f"schema field {name!r}: invalid pattern: {exc}") from exc
            text = f"CAST({ident(name)} AS VARCHAR)"
            add(
                f"{{v}} does not match the pattern {cons['pattern']!r}",
                f"NOT regexp_full_match({text}, {pattern})",
            )
        if "enum" in cons:
            allowed = ", ".join(_constraint_literal(v, field) for v in cons["enum"]) or "NULL"
            shown = ", ".join(map(repr, cons["enum"][:10])) + " …" * (len(cons["enum"]) > 10)
            add(f"{{v}} is not one of the allowed values {shown}", f"{value} NOT IN ({allowed})")
    violations = _row_violations(con, relation, checks)
    unique = [([f["name"]], "unique") for f in fields if f.get("constraints", {}).get("unique")]
    if pk:
        unique.append((pk, "primary key"))
    violations += _duplicates(con, relation, unique, values, line_offset)
    if violations:
        violations.sort(key=lambda v: (v[1], v[2]))
        total = sum(v[0] for v in violations)
        _, line, column, text = violations[0]
        rest = [f"line {v[1] + line_offset}, column {v[2]!r}: {v[3]}" for v in violations[1:]]
        message = text
        if total > 1:
            message += f" ({total} problems in all"
            message += "; also " + "; ".join(rest[: _MAX_SHOWN - 1]) + ")" if rest else ")"
        raise BadInput(message, file=file, line=line + line_offset, column=column)


def _check_names(have: list[str], want: list[str], file: str | None, line_offset: int) -> None:
    line = line_offset if line_offset >= 1 else None
    missing = [n for n in want if n not in have]
    extra = [n for n in have if n not in want]
    if not missing and not extra:
        return
    parts = []
    if missing:
        parts.append(
            "the data has no column for the schema field(s) " + ", ".join(map(repr, missing))
        )
        close = difflib.get_close_matches(missing[0], extra, n=1)
        if close:
            parts[-1] += f" (did you mean {close[0]!r}?)"
    if extra:
        parts.append("the column(s) " + ", ".join(map(repr, extra)) + " are not in the schema")
    raise BadInput("; ".join(parts), file=file, line=line, column=(missing or extra)[0])


def _length_sql(value: str, storage: tuple[str, str], t: str) -> str:
    if t == "array":
        return f"json_array_length({value})" if is_text(*storage) else f"len({value})"
    return f"length(CAST({value} AS VARCHAR))"


def _row_violations(con, relation: str, checks: list[tuple[str, str, str]]) -> list[tuple]:
    """(count, first row number, column, text) per failing check; row numbers only if needed."""
    if not checks:
        return []
    counts = con.sql(
        "SELECT " + ", ".join(f"count_if({p})" for _, _, p in checks) + f" FROM {rel(relation)}"
    ).fetchone()
    failing = [(n, check) for n, check in zip(counts, checks, strict=True) if n]
    if not failing:
        return []
    needed = ", ".join(dict.fromkeys(ident(c) for _, (c, _, _) in failing))
    aggs = []
    for _, (column, _, predicate) in failing:
        aggs.append(f"min(__dl_rn) FILTER (WHERE {predicate})")
        aggs.append(
            f"arg_min(CAST({ident(column)} AS VARCHAR), __dl_rn) FILTER (WHERE {predicate})"
        )
    row = con.sql(
        f"SELECT {', '.join(aggs)} FROM "
        f"(SELECT row_number() OVER () AS __dl_rn, {needed} FROM {rel(relation)})"
    ).fetchone()
    result = []
    for i, (n, (column, template, _)) in enumerate(failing):
        shown = _show(row[2 * i + 1])
        result.append((n, row[2 * i], column, template.replace("{v}", shown)))
    return result


def _duplicates(
    con, relation: str, keys: list[tuple[list[str], str]], values: dict, offset: int
) -> list:
    """Violations of unique constraints and of the primary key."""
    if not keys:
        return []

    def key_sql(names: list[str]) -> tuple[str, str]:
        exprs = [values[n] for n in names]
        notnull = " AND ".join(f"({e}) IS NOT NULL" for e in exprs)
        return (exprs[0] if len(exprs) == 1 else "(" + ", ".join(exprs) + ")"), notnull

    aggs = []
    for names, _ in keys:
        k, notnull = key_sql(names)
        aggs.append(f"count_if({notnull}) - count(DISTINCT {k}) FILTER (WHERE {notnull})")
    counts = con.sql(f"SELECT {', '.join(aggs)} FROM {rel(relation)}").fetchone()
    result = []
    for n, (names, kind) in zip(counts, keys, strict=True):
        if not n:
            continue
        k, notnull = key_sql(names)
        first = con.sql(
            f"SELECT k, r[2], r[1] FROM (SELECT {k} AS k, min(__dl_rn, 2) AS r FROM "
            f"(SELECT row_number() OVER () AS __dl_rn, {', '.join(map(ident, names))} "
            f"FROM {rel(relation)}) "
            f"WHERE {notnull} GROUP BY ALL HAVING count(*) > 1) ORDER BY r[2] LIMIT 1"
        ).fetchone()
        key = _show(first[0] if len(names) == 1 else ", ".join(map(str, first[0])))
        text = f"{kind} value {key} occurs more than once (first on line {first[2] + offset})"
        result.append((n, first[1], names[0], text))
    return result


def _show(value: Any) -> str:
    text = repr(str(value)) if value is not None else "missing value"
    return text if len(text) <= 60 else text[:57] + "…'"
