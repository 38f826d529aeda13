"""The web service: JSON API under /api/v1 and the web UI, on FastAPI."""
