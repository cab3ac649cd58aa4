"""The REST API over the gold tables (FastAPI)."""
