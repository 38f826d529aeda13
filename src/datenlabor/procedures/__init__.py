"""Event logs of administrative procedures (Verfahren) and their analytics.

Import a log (CSV, XES, Parquet or a pool dataset) as a pool dataset version, then open a
version with filters and ask for key figures; every result is an Arrow table or plain dict
with provenance (dataset slug + version), ready for a dashboard tile::

    from datenlabor.procedures import Filters, import_log, open_log

    import_log(pool, "receipt.xes.gz", dataset="receipt")
    with open_log(pool, "receipt", filters=Filters(start=date(2011, 1, 1))) as log:
        log.summary()                 # dict: cases, events, variants, throughput, dfg …
        log.throughput(by="case:channel").table
        log.deadline("Confirmation of receipt -> @end within 1 month").totals

See ``docs/procedures.md`` for the canonical columns and every KPI's definition.
"""

from datenlabor.procedures.deadline import DeadlineRule
from datenlabor.procedures.eventlog import CORE, Mapping, import_log
from datenlabor.procedures.log import Filters, ProcedureLog, Result, open_log
from datenlabor.procedures.pooled import import_dataset

__all__ = [
    "CORE",
    "DeadlineRule",
    "Filters",
    "Mapping",
    "ProcedureLog",
    "Result",
    "import_dataset",
    "import_log",
    "open_log",
]
