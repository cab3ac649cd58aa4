"""Alembic migrations of the device registry (applied by
``lakehouse.domain.registry.open_registry``)."""
