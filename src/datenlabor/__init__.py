"""Datenlabor: an open data platform for public-sector data labs.

>>> import datenlabor
>>> pool = datenlabor.open("/tmp/pool")  # doctest: +SKIP
"""

from datenlabor.pool.pool import Pool, open

__all__ = ["Pool", "open"]
__version__ = "0.1.0"
