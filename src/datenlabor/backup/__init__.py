"""Backup and restore of a whole pool: its files and its metadata store, at one moment.

>>> from datenlabor.backup import create_backup, restore_backup        # doctest: +SKIP
>>> create_backup(pool.root, pool.settings.metadata_url, Path("pool.dlbackup"))  # doctest: +SKIP

See ``docs/operations.md`` for the procedure and :mod:`datenlabor.backup.archive` for the
file format.
"""

from datenlabor.backup.create import BackupReport, create_backup
from datenlabor.backup.restore import RestoreReport, restore_backup

__all__ = ["BackupReport", "RestoreReport", "create_backup", "restore_backup"]
