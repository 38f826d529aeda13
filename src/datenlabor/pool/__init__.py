"""The Datenpool: versioned datasets, ingest, schema, quality, catalogue metadata."""
