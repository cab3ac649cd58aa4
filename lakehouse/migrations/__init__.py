"""Alembic migrations of the device registry (applied by ``lakehouse.registry.open_registry``)."""
