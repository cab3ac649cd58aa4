"""Alembic migrations of the device registry (applied by
``lakehouse.domain.accounts.registry.open_registry``)."""
