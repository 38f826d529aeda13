"""The platform's operations for signed-in callers: what the web API, UI and CLI share.

Everything that lets data leave the pool goes through :class:`~datenlabor.service.gate.Gate`,
which applies visibility and grants and writes the audit log.
"""
