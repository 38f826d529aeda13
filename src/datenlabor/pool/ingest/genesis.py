"""Readers for GENESIS exports (Destatis GENESIS-Online, Regionaldatenbank, state offices).

:func:`read_genesis` reads the classic table export (``GENESIS-Tabelle: 12411-0006`` header
block, multi-row column header, data rows, footer with footnotes, ``©`` and ``Stand:``);
:func:`read_ffcsv` reads the flat export "ffcsv" in the legacy German and the 2025 English
header style. Both give a tidy long table: text dimension columns, measure/unit columns, then
``value`` (float64) and ``status``. Official symbols are kept as status: ``-``, ``.``, ``...``,
``x``, ``/`` give a NULL value; ``(12,3)`` gives 12.3 with status ``()``; suffixes ``p``, ``r``,
``s`` give the number with the suffix as status (``(12)p`` gives ``()p``); a plain ``0`` is 0.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from datenlabor.errors import BadInput

SYMBOLS = ("-", ".", "...", "x", "/")
_SYMBOL_SET = pa.array(SYMBOLS, pa.string())
# German number (decimal comma, optional "." thousands groups), optionally in parentheses
# (limited reliability) and with a p/r/s suffix (provisional, revised, estimated).
_NUMBER = (
    r"^(?P<open>\()?(?P<num>-?(?:\d{1,3}(?:\.\d{3})+|\d+)(?:,\d+)?)(?P<close>\))?"
    r"\s*(?P<suffix>[prs])?$"
)
_NULL = pa.scalar(None, pa.string())

_TABLE_RE = re.compile(r"^\s*GENESIS-Tabelle\s*:\s*(\S*)", re.IGNORECASE)
_SEPARATOR_RE = re.compile(r"^_{5,}\s*$")
_FOOTER_PREFIXES = ("©", "(c)", "quelle:", "stand:")
_MEASURE_LINE_RE = re.compile(r"^(?P<measure>.+?)\s*\((?P<unit>[^()]+)\)$")
_TIME_SPLIT = {"monate": "Monat", "quartale": "Quartal", "halbjahre": "Halbjahr", "wochen": "Woche"}
# Unit names as GENESIS prints them in a unit row (compared case-insensitively).
_UNIT_NAMES = (
    "anzahl|prozent|%|‰|promille|index|1|10|100|1000|1 000|1.000|10000|100000|1000000|tsd.|"
    "tausend|mill.|mio.|mrd.|jahre|monate|tage|stunden|std.|minuten|t|kg|g|ha|qm|m²|m2|m³|m3|"
    "km|qkm|km²|km2|l|hl|kwh|mwh|gwh|twh|tj|gj|kw|mw|personen|person-km|tkm|stück|cent|ct"
)
_UNITS = frozenset(_UNIT_NAMES.split("|"))
_MONEY_UNIT_RE = re.compile(
    r"^(?:(?:tsd|mill|mio|mrd)\.?\s*|1[ .]?000(?:[ .]?000)*\s*)?(?:eur|euro|€|dm|t|kg|hl)"
    r"(?:\s+je\s+.+)?$",
    re.IGNORECASE,
)
_CODE_VALUE_RE = re.compile(r"^(?:DG|\d{2,12})$")


@dataclass
class GenesisTable:
    table: pa.Table
    metadata: dict = field(default_factory=dict)


def sniff_genesis(head: str) -> str | None:
    """Given the first ~64 KiB of a file decoded to str: "genesis", "ffcsv" or None."""
    text = head.lstrip("\ufeff").lstrip("\r\n\t ")
    first = text.split("\n", 1)[0].rstrip("\r")
    match = _TABLE_RE.match(first.strip('"'))
    if match and match.group(1):
        return "genesis"
    names = {name.strip().strip('"') for name in first.split(";")}
    if {"statistics_code", "time_code"} <= names or {"Statistik_Code", "Zeit_Code"} <= names:
        return "ffcsv"
    return None


# --------------------------------------------------------------------------- cells


def _parse_cells(cells: pa.Array | pa.ChunkedArray) -> tuple[pa.Array, pa.Array, int | None]:
    """Values (float64) and statuses of GENESIS cells, or the index of the first bad cell."""
    text = pc.utf8_trim_whitespace(cells)
    is_symbol = pc.fill_null(pc.is_in(text, value_set=_SYMBOL_SET), False)
    parts = pc.extract_regex(text, _NUMBER)
    has_open = pc.equal(pc.struct_field(parts, "open"), "(")
    has_close = pc.equal(pc.struct_field(parts, "close"), ")")
    is_number = pc.fill_null(pc.equal(has_open, has_close), False)
    bad = pc.invert(pc.or_(is_symbol, is_number))
    if pc.any(bad).as_py():
        return pa.array([]), pa.array([]), pc.index(bad, True).as_py()
    number = pc.struct_field(parts, "num")
    number = pc.replace_substring(pc.replace_substring(number, ".", ""), ",", ".")
    value = pc.cast(number, pa.float64())
    marker = pc.binary_join_element_wise(
        pc.fill_null(pc.if_else(has_open, "()", ""), ""),
        pc.fill_null(pc.struct_field(parts, "suffix"), ""),
        "",
    )
    status = pc.if_else(is_symbol, text, marker)
    status = pc.if_else(pc.equal(status, ""), _NULL, status)
    return value, status, None


def _bad_cell_message(text: str | None) -> str:
    if not text or not text.strip():
        return "empty value cell (GENESIS marks missing values with a symbol such as '.')"
    return (
        f"cell {text!r} is neither a number nor an official symbol "
        "(-, ., ..., x, /, (n), n with suffix p/r/s)"
    )


def _unique_names(names: list[str], reserved: tuple[str, ...] = ()) -> list[str]:
    """Non-empty names, unique case-insensitively and not clashing with ``reserved``."""
    seen = {r.casefold() for r in reserved}
    out = []
    for position, raw in enumerate(names, start=1):
        base = " ".join(raw.split()) or f"column_{position}"
        name, n = base, 1
        while name.casefold() in seen:
            n += 1
            name = f"{base}_{n}"
        seen.add(name.casefold())
        out.append(name)
    return out


def _decode(raw: bytes, encoding: str, path: Path) -> str:
    if raw.startswith(codecs.BOM_UTF8) and not encoding.lower().replace("_", "-").startswith("utf"):
        message = f"file starts with a UTF-8 byte-order mark but was to be read as {encoding}"
        raise BadInput(message, file=str(path), line=1)
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        message = f"cannot decode as {encoding}: {exc.reason}"
        raise BadInput(message, file=str(path), line=line) from exc
    except LookupError as exc:
        raise BadInput(f"unknown encoding {encoding!r}", file=str(path)) from exc


# --------------------------------------------------------------------------- classic export


def _trim(cells: list[str]) -> list[str]:
    end = len(cells)
    while end and not cells[end - 1].strip():
        end -= 1
    return cells[:end]


def _is_footer_start(cells: list[str]) -> bool:
    first = cells[0].strip() if cells else ""
    if _SEPARATOR_RE.match(first):
        return True
    return len(_trim(cells)) == 1 and first.lower().startswith(_FOOTER_PREFIXES)


def read_genesis(path: str | Path, *, encoding: str) -> GenesisTable:
    """Read a classic GENESIS table export into a tidy long table."""
    path = Path(path)
    text = _decode(path.read_bytes(), encoding, path).lstrip("\ufeff")
    records: list[tuple[int, list[str]]] = []  # (first physical line, cells)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=";")
    start = 1
    try:
        for cells in reader:
            records.append((start, cells))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise BadInput(f"malformed CSV: {exc}", file=str(path), line=start) from exc
    total_lines = reader.line_num
    match = _TABLE_RE.match(records[0][1][0]) if records and records[0][1] else None
    if match is None:
        message = "not a GENESIS table export: the first line must be 'GENESIS-Tabelle: <code>'"
        raise BadInput(message, file=str(path), line=1)

    # Header block (one filled cell per line), column header (first cell empty), data, footer.
    sections: dict[str, list] = {"block": [], "columns": [], "data": []}
    stage, footer_at = "block", len(records)
    for k in range(1, len(records)):
        line, cells = records[k]
        if _is_footer_start(cells):
            footer_at = k
            break
        if not _trim(cells):
            continue
        if stage == "block" and (len(_trim(cells)) > 1 or not cells[0].strip()):
            stage = "columns"
        if stage == "columns" and cells[0].strip():
            stage = "data"
        sections[stage].append((line, cells))
    data_rows = sections["data"]
    if not data_rows:
        line = records[footer_at][0] if footer_at < len(records) else total_lines + 1
        raise BadInput("GENESIS table has no data rows", file=str(path), line=line)

    meta = _header_metadata([cells[0].strip() for _, cells in sections["block"]])
    footnotes, source, copyright_, stand = [], None, None, None
    for _line, cells in records[footer_at:]:
        entry = ";".join(c.strip() for c in _trim(cells)).strip()
        lowered = entry.lower()
        if not entry or _SEPARATOR_RE.match(entry):
            continue
        if lowered.startswith(("©", "(c)")):
            copyright_ = entry
        elif lowered.startswith("quelle:"):
            source = entry.split(":", 1)[1].strip()
        elif lowered.startswith("stand:"):
            stand = entry.split(":", 1)[1].strip()
        else:
            footnotes.append(entry)
    table, dims = _classic_long(path, meta, sections["columns"], data_rows)
    footer_lines = total_lines - records[footer_at][0] + 1 if footer_at < len(records) else 0
    meta.update(
        kind="genesis",
        table_code=match.group(1) or None,
        source=source or copyright_,
        copyright=copyright_,
        stand=stand,
        footnotes=footnotes,
        header_lines=data_rows[0][0] - 1,
        footer_lines=footer_lines,
        dimensions=dims,
        encoding=encoding,
    )
    return GenesisTable(table=table, metadata=meta)


def _header_metadata(block: list[str]) -> dict:
    """Title (possibly wrapped over several lines), statistic, selections, single measure."""
    title_lines: list[str] = []
    for line in block[:4]:
        title_lines.append(line)
        joined = " ".join(title_lines)
        if not (line.endswith(",") or joined.count("(") > joined.count(")")):
            break
    title = " ".join(title_lines) or None
    rest = block[len(title_lines) :]
    measure = unit = None
    if len(rest) >= 2 and (m := _MEASURE_LINE_RE.match(rest[-1])):
        measure, unit, rest = m.group("measure"), m.group("unit"), rest[:-1]
    dims = title.split(":", 1)[1].split(",") if title and ":" in title else []
    return {
        "title": title,
        "statistic": rest[0] if rest else None,
        "selection": rest[1:],
        "measure": measure,
        "unit": unit,
        "title_dimensions": [d.strip() for d in dims if d.strip()],
    }


def _is_unit(text: str) -> bool:
    return text.casefold() in _UNITS or bool(_MONEY_UNIT_RE.match(text))


def _classic_long(
    path: Path, meta: dict, header_rows: list, data_rows: list
) -> tuple[pa.Table, list[str]]:
    def fail(message: str, line: int, column: str | None = None) -> BadInput:
        return BadInput(message, file=str(path), line=line, column=column)

    hdr = [[c.strip() for c in _trim(cells)] for _line, cells in header_rows]
    width = max((len(r) for r in hdr), default=len(_trim(data_rows[0][1])))
    hdr = [r + [""] * (width - len(r)) for r in hdr]
    n_rd = next((c for c in range(width) if any(r[c] for r in hdr)), width) if hdr else width - 1
    if not 0 < n_rd < width:
        line = (header_rows or data_rows)[0][0]
        raise fail("cannot tell row labels from value columns in the column header", line)
    vcols = range(n_rd, width)

    # Column-header rows: a unit row (last), rows labelled by the row above, other rows.
    rows = list(range(len(hdr)))
    unit_row = rows.pop() if len(hdr) > 1 and all(_is_unit(hdr[-1][j]) for j in vcols) else None
    dims: list[tuple[str | None, int]] = []  # (label from the row above or None, row)
    while rows:
        row = rows.pop()
        if rows and _is_label_row(hdr[rows[-1]], hdr[row], vcols):
            above = hdr[rows.pop()]
            dims.insert(0, (next(above[j] for j in vcols if above[j]), row))
        else:
            dims.insert(0, (None, row))
    measure_row = None
    if unit_row is not None and meta["measure"] is None:
        measure_row = next((row for label, row in dims if label is None), None)
        dims = [d for d in dims if d[1] != measure_row]

    # Names: labelled rows by their label; row labels and other rows from the title's list.
    title_dims = [d for d in meta["title_dimensions"] if d not in meta["selection"]]
    for label, _row in dims:
        hit = next((d for d in title_dims if d == label or label in d.split("/")), None)
        if label and hit:
            title_dims.remove(hit)
    free = [row for label, row in dims if label is None]
    row_values = [[c.strip() for c in cells[:n_rd]] for _line, cells in data_rows]
    code_cols = {
        c
        for c in range(n_rd - 1)
        # (short rows are reported by the width check below, not here)
        if all(c < len(r) and _CODE_VALUE_RE.match(r[c]) for r in row_values)
        and any(r[c].startswith("0") or r[c] == "DG" for r in row_values)
    }
    names = _fit_names(title_dims, n_rd, len(free), code_cols) or [
        *(f"row_dim_{c + 1}" for c in range(n_rd)),
        *(f"col_dim_{k + 1}" for k in range(len(free))),
    ]
    free_names = dict(zip(free, names[n_rd:], strict=True))
    per_column = [(label or free_names[row], [hdr[row][j] for j in vcols]) for label, row in dims]
    extra = []
    for name, special, fixed in (
        ("measure", measure_row, meta["measure"]),
        ("unit", unit_row, meta["unit"]),
    ):
        if special is not None:
            extra.append((name, [hdr[special][j] for j in vcols]))
        elif fixed:
            extra.append((name, [fixed] * len(vcols)))
    dim_names = _unique_names(
        [*names[:n_rd], *(name for name, _ in per_column)],
        (*(n for n, _ in extra), "value", "status"),
    )
    col_names = {j: " / ".join(r[j] for r in hdr if r[j]) or f"cell {j + 1}" for j in vcols}

    cells_flat: list[str] = []
    for (line, cells), labels in zip(data_rows, row_values, strict=True):
        if len(_trim(cells)) > width:
            message = f"data row has more cells than the column header ({width})"
            raise fail(message, line, f"cell {len(_trim(cells))}")
        if len(cells) < width:
            missing = dim_names[len(cells)] if len(cells) < n_rd else col_names[len(cells)]
            raise fail(f"data row has {len(cells)} cells, expected {width}", line, missing)
        if not any(labels):
            raise fail("data row has no row labels", line, dim_names[0])
        cells_flat.extend(cells[n_rd:width])
    value, status, bad = _parse_cells(pa.array(cells_flat, pa.string()))
    if bad is not None:
        line = data_rows[bad // len(vcols)][0]
        column = col_names[n_rd + bad % len(vcols)]
        raise fail(_bad_cell_message(cells_flat[bad]), line, column)

    columns: dict[str, pa.Array] = {}
    for c in range(n_rd):
        columns[dim_names[c]] = pa.array(
            [r[c] or None for r in row_values for _ in vcols], pa.string()
        )
    out_names = [*dim_names[n_rd:], *(name for name, _ in extra)]
    for name, (_, texts) in zip(out_names, [*per_column, *extra], strict=True):
        columns[name] = pa.array([t or None for _ in row_values for t in texts], pa.string())
    columns["value"], columns["status"] = value, status
    return pa.table(columns), dim_names


def _is_label_row(label: list[str], values: list[str], vcols: range) -> bool:
    """A row naming the variable of the row below: one repeated text over the cells it spans."""
    filled = [j for j in vcols if label[j]]
    return (
        bool(filled)
        and len({label[j] for j in filled}) == 1
        and all(values[j] for j in filled)
        and not any(values[j] for j in vcols if not label[j])
    )


def _fit_names(title_dims: list[str], n_rd: int, n_free: int, code_cols: set[int]):
    """Names for the row-label columns and unlabeled header rows, or None if the title's list
    does not fit: a "Monate"/"Quartale" time may fill two columns (year, period), and a key
    column (AGS-like codes) followed by a label column shares one name ("Kreise_code")."""
    variants = [title_dims]
    for pos, d in enumerate(title_dims):
        if d.casefold() in _TIME_SPLIT:
            period = _TIME_SPLIT[d.casefold()]
            variants.append([*title_dims[:pos], "Jahr", period, *title_dims[pos + 1 :]])
            break
    for names in variants:
        paired, t, c = [], 0, 0
        while c < n_rd and t < len(names):
            is_key = c in code_cols
            paired += [f"{names[t]}_code", names[t]] if is_key else [names[t]]
            c, t = c + (2 if is_key else 1), t + 1
        for candidate in (names, [*paired, *names[t:]]):
            if len(candidate) == n_rd + n_free and (candidate is names or c == n_rd):
                return list(candidate)
    return None


# --------------------------------------------------------------------------- flat export (ffcsv)

_FLAT_NAMES = (
    "statistics_code statistics_label time_code time_label time value value_unit "
    "value_variable_code value_variable_label"
)
_FLAT_FIXED = frozenset(_FLAT_NAMES.split())
_FLAT_VAR_RE = re.compile(r"^(\d+)_variable_(code|label|attribute_code|attribute_label)$")
_LEGACY_NAMES = (
    (r"^Statistik_", "statistics_"),
    (r"^Zeit", "time"),
    (r"_Merkmal_", "_variable_"),
    (r"_Auspraegung_", "_variable_attribute_"),
)


def read_ffcsv(path: str | Path, *, encoding: str) -> GenesisTable:
    """Read a GENESIS flat export (ffcsv, either header style) into a tidy long table."""
    path = Path(path)
    with path.open("rb") as fh:
        first_line = fh.readline()
    header = _decode(first_line, encoding, path).lstrip("\ufeff").rstrip("\r\n")
    names = [n.strip() for n in next(csv.reader([header], delimiter=";"), [])]
    new_style = "statistics_code" in names
    if not new_style and "Statistik_Code" not in names:
        raise BadInput("not a GENESIS flat (ffcsv) header", file=str(path), line=1)
    if dups := [n for n in names if names.count(n) > 1]:
        raise BadInput("duplicate column name in header", file=str(path), line=1, column=dups[0])

    roles: dict[str, str] = {}
    variables: dict[int, dict[str, str]] = {}
    measures: list[tuple[str, str | None, str | None, str | None]] = []  # column, code, label, unit
    extras: list[str] = []
    for name in names:
        role = name
        if not new_style and "__" not in name:
            for old, new in _LEGACY_NAMES:
                role = re.sub(old, new, role)
            role = role.lower()
        if found := _FLAT_VAR_RE.match(role):
            variables.setdefault(int(found.group(1)), {})[found.group(2)] = name
        elif role in _FLAT_FIXED:
            roles[role] = name
        elif not new_style and len(name.split("__")) >= 3:
            m_code, *m_label, m_unit = name.split("__")
            measures.append((name, m_code, " ".join("__".join(m_label).split("_")), m_unit))
        else:
            extras.append(name)
    if new_style and "value" in roles:
        measures = [(roles["value"], None, None, None)]
    if not measures:
        raise BadInput("ffcsv header has no value column", file=str(path), line=1)

    raw, lines = _read_flat(path, encoding, names)

    def text(name: str) -> pa.ChunkedArray:
        col = pc.utf8_trim_whitespace(raw[name])
        return pc.if_else(pc.equal(col, ""), _NULL, col)

    def single(name: str | None) -> tuple[bool, str | None]:
        """Whether a column holds one value only, and that value."""
        distinct = pc.unique(text(name)) if name else pa.array([None], pa.string())
        return len(distinct) == 1, distinct[0].as_py()

    meta: dict = {"variables": [], "measures": []}
    columns: dict[str, pa.ChunkedArray | pa.Array] = {}
    for role in ("statistics_code", "statistics_label", "time_code", "time_label"):
        is_single, val = single(roles.get(role))
        key = role.replace("statistics", "statistic")
        if is_single:
            meta[key] = val
        else:
            columns[key] = text(roles[role])
    if "time" in roles:
        columns["time"] = text(roles["time"])
    for number in sorted(variables):
        var = variables[number]
        code_single, var_code = single(var.get("code"))
        label_single, var_label = single(var.get("label"))
        base = re.sub(r"\W+", "_", var_code).strip("_").lower() if code_single and var_code else ""
        base = base or f"var{number}"
        parts = [("attribute_code", "code"), ("attribute_label", "label")]
        if not (code_single and label_single):  # keep the variable itself when it varies
            parts = [("code", "variable_code"), ("label", "variable_label"), *parts]
        for key, suffix in parts:
            if key in var:
                columns[f"{base}_{suffix}"] = text(var[key])
        entry = {"position": number, "code": var_code, "label": var_label, "column": base}
        meta["variables"].append(entry)
    for role, out in (
        ("value_variable_code", "measure_code"),
        ("value_variable_label", "measure_label"),
        ("value_unit", "unit"),
    ):
        if role in roles:
            columns[out] = text(roles[role])

    table_match = re.match(r"^(\d{5}(?:-[0-9A-Za-z]+)+?)(?=_|\.|$)", path.name)
    table_code = table_match.group(1) if table_match else None
    if table_code and meta.get("statistic_code") and table_code[:5] != meta["statistic_code"]:
        table_code = None
    meta.update(
        kind="ffcsv",
        header_style="2025" if new_style else "legacy",
        table_code=table_code,
        title=None,
        statistic=meta.get("statistic_label"),
        source=None,
        stand=None,
        footnotes=[],
        header_lines=1,
        footer_lines=0,
        encoding=encoding,
    )
    n = raw.num_rows
    pieces = []
    for column, code, label, unit in measures:
        value, status, bad = _parse_cells(raw[column])
        if bad is not None:
            message = _bad_cell_message(raw[column][bad].as_py())
            raise BadInput(message, file=str(path), line=lines[bad].as_py(), column=column)
        piece = dict(columns)
        if not new_style:
            piece["measure_code"] = pa.repeat(pa.scalar(code, pa.string()), n)
            piece["measure_label"] = pa.repeat(pa.scalar(label, pa.string()), n)
            piece["unit"] = pa.repeat(pa.scalar(unit, pa.string()), n)
            meta["measures"].append({"column": column, "code": code, "label": label, "unit": unit})
        piece.update({name: text(name) for name in extras})
        final = [*_unique_names(list(piece), ("value", "status")), "value", "status"]
        pieces.append(pa.table([*piece.values(), value, status], names=final))
    if len(pieces) == 1:
        return GenesisTable(table=pieces[0], metadata=meta)
    # One row per record and measure, in file order (the measures of a record side by side).
    order = np.arange(n * len(pieces), dtype=np.int64).reshape(len(pieces), n).T.ravel()
    table = pa.concat_tables(pieces).take(pa.array(order)).combine_chunks()
    return GenesisTable(table=table, metadata=meta)


def _read_flat(path: Path, encoding: str, names: list[str]) -> tuple[pa.Table, pa.Array]:
    """All columns as text without blank lines, and the physical line number of each row."""
    problems: list = []

    def on_invalid(row) -> str:
        problems.append(row)
        return "error"

    # The header line (with any byte-order mark) is skipped, so UTF-8 is read natively.
    native = codecs.lookup(encoding).name in ("utf-8", "utf-8-sig")
    tmp_names = [f"c{k}" for k in range(len(names))]
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(
                encoding="utf8" if native else encoding,
                skip_rows=1,
                column_names=tmp_names,
                use_threads=False,
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=";", ignore_empty_lines=False, invalid_row_handler=on_invalid
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(tmp_names, pa.string()), strings_can_be_null=False
            ),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        if problems:
            row = problems[0]
            raise BadInput(
                f"row has {row.actual_columns} cells, expected {row.expected_columns}",
                file=str(path),
                line=row.number,
                column=names[min(row.actual_columns, len(names) - 1)],
            ) from exc
        raise BadInput(
            f"cannot read as {encoding} CSV: {exc}", file=str(path), line=_bad_line(path, encoding)
        ) from exc
    table = table.rename_columns(names)
    lines = pa.array(np.arange(2, table.num_rows + 2, dtype=np.int64))
    blank = pc.equal(table[names[0]], "")
    for name in names[1:]:
        blank = pc.and_(blank, pc.equal(table[name], ""))
    if pc.any(blank).as_py():
        table, lines = table.filter(pc.invert(blank)), lines.filter(pc.invert(blank))
    if table.num_rows == 0:
        raise BadInput("ffcsv file has no data rows", file=str(path), line=2)
    return table, lines


def _bad_line(path: Path, encoding: str) -> int | None:
    """The first line that does not decode, for error messages only."""
    with path.open("rb") as fh:
        for number, line in enumerate(fh, start=1):
            try:
                line.decode(encoding)
            except UnicodeDecodeError:
                return number
    return None
