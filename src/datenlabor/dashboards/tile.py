"""What a computed tile is: columns, rows, headline figure, graph and provenance."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

# Column kinds the page formats: text, int, number, duration_s (seconds, shown in days),
# rate (0..1, shown in %), date, datetime, list (a variant's activities).
SUPPRESSED = "."  # a value kept secret by disclosure control (as in official statistics)
KINDS = ("text", "int", "number", "duration_s", "rate", "date", "datetime", "list")


@dataclass
class TileData:
    id: str
    type: str
    title: str
    status: str = "ok"  # ok | no_access | protected | withheld | error
    message: str | None = None
    columns: list[dict[str, str]] = field(default_factory=list)  # name, kind
    rows: list[dict[str, Any]] = field(default_factory=list)
    x: str | None = None  # chart: the category/time column
    y: list[str] = field(default_factory=list)  # chart: the value columns
    kpi: dict[str, Any] | None = None  # value, previous, change, kind
    graph: dict[str, Any] | None = None  # process map: nodes and edges with positions
    drill: dict[str, Any] | None = None  # how a row leads to the cases behind it
    provenance: dict[str, Any] = field(default_factory=dict)
    truncated: bool = False
    # Disclosure control: per row, the columns whose values are suppressed (None in ``rows``,
    # shown as "."); empty when nothing is suppressed. See dashboards.suppression.
    suppressed: list[list[str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "type": self.type,
            "title": self.title,
            "status": self.status,
            "message": self.message,
            "columns": self.columns,
            "rows": [{k: jsonable(v) for k, v in r.items()} for r in self.rows],
            "x": self.x,
            "y": self.y,
            "kpi": self.kpi,
            "graph": self.graph,
            "drill": self.drill,
            "provenance": self.provenance,
            "truncated": self.truncated,
            "suppressed": self.suppressed,
        }


def jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    return value


def kind_of(name: str, t: pa.DataType) -> str:
    if name.endswith("_s") and (pa.types.is_floating(t) or pa.types.is_integer(t)):
        return "duration_s"
    if name in ("share", "breach_rate", "rework_rate") and pa.types.is_floating(t):
        return "rate"
    if pa.types.is_integer(t):
        return "int"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "number"
    if pa.types.is_timestamp(t):
        return "datetime"
    if pa.types.is_date(t):
        return "date"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return "list"
    return "text"


def fill(tile: TileData, table: pa.Table, *, limit: int | None = None) -> TileData:
    """Columns and rows of ``tile`` from an Arrow table (at most ``limit`` rows)."""
    if limit is not None and table.num_rows > limit:
        table = table.slice(0, limit)
        tile.truncated = True
    tile.columns = [{"name": f.name, "kind": kind_of(f.name, f.type)} for f in table.schema]
    tile.rows = table.to_pylist()
    tile.suppressed = []
    return tile


def truncate(tile: TileData, limit: int) -> None:
    """Keep the first ``limit`` rows (after disclosure control saw them all)."""
    if len(tile.rows) > limit:
        tile.rows = tile.rows[:limit]
        tile.suppressed = tile.suppressed[:limit] if tile.suppressed else []
        tile.truncated = True


def to_csv(tile: TileData, dialect: str = "de") -> str:
    """The tile's rows as CSV: German dialect (``;``, decimal comma, BOM added by the caller)
    or international (``,``, decimal point)."""
    if dialect not in ("de", "intl"):
        from datenlabor.errors import BadInput

        raise BadInput("the CSV dialect is 'de' (;) or 'intl' (,)", column="dialect")
    buf = io.StringIO()
    writer = csv.writer(buf, delimiter=";" if dialect == "de" else ",", lineterminator="\r\n")
    if tile.kpi is not None and not tile.columns:  # a KPI: its figure, previous and change
        names: list[str] = [k for k in ("value", "previous", "change") if k in tile.kpi]
        hidden = tile.kpi.get("suppressed", [])
        writer.writerow(names)
        writer.writerow(
            [SUPPRESSED if n in hidden else _csv_cell(tile.kpi.get(n), dialect) for n in names]
        )
        return buf.getvalue()
    names = [c["name"] for c in tile.columns]
    writer.writerow(names)
    for i, row in enumerate(tile.rows):
        hidden = tile.suppressed[i] if tile.suppressed else []
        writer.writerow(
            [SUPPRESSED if n in hidden else _csv_cell(row.get(n), dialect) for n in names]
        )
    return buf.getvalue()


def _csv_cell(value: Any, dialect: str) -> str:
    value = jsonable(value)
    if value is None:
        return ""
    if isinstance(value, list):
        return " → ".join(str(v) for v in value)
    if isinstance(value, float) and dialect == "de":
        return repr(value).replace(".", ",")
    return str(value)
