"""Demo dashboards: one on the real receipt-phase log, one on a simulated benefit procedure.

The specs ship as package data (``datenlabor/data/dashboards/*.yaml``); the logs are imported
through the procedures library: the real one from the shared data folder when present, the
simulated one drawn by :mod:`datenlabor.procedures.simulate` (all Kreise, so the maps have
data). Idempotent: existing logs and dashboards are kept.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from datenlabor.pool.catalog import DatasetMeta

if TYPE_CHECKING:
    from datenlabor.pool.pool import Pool

SPECS = Path(__file__).resolve().parents[1] / "data" / "dashboards"
RECEIPT_LOG, SIMULATED_LOG = "receipt-log", "leistungsantraege-log"


def put_demo_spec(pool: Pool, name: str, *, user: str = "demo-setup") -> None:
    from datenlabor.access.principal import local_admin
    from datenlabor.dashboards import versions

    if not versions.version_numbers(pool, name):
        versions.put(pool, local_admin(user), name, (SPECS / f"{name}.yaml").read_text("utf-8"))


def import_simulated(pool: Pool, *, cases: int = 30_000, seed: int = 2024) -> None:
    from datenlabor.procedures import import_log
    from datenlabor.procedures.simulate import Simulation, simulate, write_log

    sim = Simulation(
        cases=cases,
        seed=seed,
        start=date(2024, 1, 1),
        arrivals_per_day=110,
        observe_until=date(2024, 12, 31),  # later events not yet happened: open cases
    )
    with tempfile.TemporaryDirectory(dir=pool.root / "tmp") as tmp:
        path = write_log(simulate(sim), Path(tmp) / "leistungsantraege.parquet")
        import_log(
            pool,
            path,
            dataset=SIMULATED_LOG,
            meta=DatasetMeta(
                title="Leistungsanträge (simuliertes Ereignisprotokoll)",
                description="Simulierte Anträge auf eine Leistung in allen Kreisen "
                f"({cases:,} Fälle, Startdatum {sim.start:%d.%m.%Y}); Frist: {sim.deadline}.",
                licence="dl-de/zero-2-0",
                visibility="public",
                publisher="bmas-demo",
                keywords=["Verwaltungsverfahren", "Ereignisprotokoll"],
            ),
        )


def load_demo_dashboards(
    pool: Pool, shared: Path | None, log: Callable[[str], None] = print
) -> None:
    from datenlabor.procedures import import_log

    existing = {d.slug for d in pool.datasets()}
    receipt = shared / "eventlogs" / "receipt.xes.gz" if shared else None
    if RECEIPT_LOG not in existing and receipt is not None and receipt.exists():
        import_log(
            pool,
            receipt,
            dataset=RECEIPT_LOG,
            meta=DatasetMeta(
                title="Eingangsphase einer Umweltgenehmigung (reales Ereignisprotokoll)",
                description="WABO receipt phase, niederländische Gemeinde; J.C.A.M. Buijs, "
                "4TU.ResearchData (1.434 Fälle, 8.577 Ereignisse); Nutzung nach den "
                "allgemeinen Bedingungen von 4TU.ResearchData mit Nennung der Autoren.",
                visibility="public",
                publisher="bmas-demo",
            ),
        )
        log(f"{RECEIPT_LOG}: version 1 (XES event log, {receipt.name})")
    if receipt is not None and receipt.exists():
        put_demo_spec(pool, "eingangsphase")
        log("dashboard eingangsphase: /dashboards/eingangsphase")
    if SIMULATED_LOG not in existing:
        import_simulated(pool)
        log(f"{SIMULATED_LOG}: version 1 (simulated log)")
    put_demo_spec(pool, "leistungsantraege")
    log("dashboard leistungsantraege: /dashboards/leistungsantraege")
