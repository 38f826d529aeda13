"""Queries over the pool: read-only SQL on DuckDB."""
