"""Statistical disclosure control for aggregate outputs (issue 5).

>>> rules = Rules(dims=[Dim("region", hierarchy="ags"), Dim("monat", hierarchy="time")])
>>> prot = protect(con, "SELECT * FROM faelle", rules)     # doctest: +SKIP
>>> prot.table, prot.report, audit(prot.table, rules)      # doctest: +SKIP

See docs/disclosure.md for the rules, methods, guarantees and the attacker model.
"""

from datenlabor.disclosure.audit import audit, audit_csv
from datenlabor.disclosure.output import Protected, protect
from datenlabor.disclosure.rules import TOTAL, Dim, Rules

__all__ = ["TOTAL", "Dim", "Protected", "Rules", "audit", "audit_csv", "protect"]
