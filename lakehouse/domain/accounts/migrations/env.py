"""Alembic environment: migrate the registry on the connection ``open_registry`` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

connection = context.config.attributes["connection"]
if connection.dialect.name == "postgresql":
    # concurrent starters (API workers, bridge, simulator) migrate one after the other
    connection.execute(text("SELECT pg_advisory_xact_lock(1781700017)"))
context.configure(connection=connection, target_metadata=None)
with context.begin_transaction():
    context.run_migrations()
