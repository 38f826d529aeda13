"""Metadata store: SQLAlchemy 2 models and Alembic migrations (SQLite or PostgreSQL)."""

from datenlabor.store.db import Store
from datenlabor.store.models import Base, Dataset, Organisation, Version

__all__ = ["Base", "Dataset", "Organisation", "Store", "Version"]
