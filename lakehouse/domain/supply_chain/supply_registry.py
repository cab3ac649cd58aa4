"""The supply-entity registry: warehouses, distributors, farmer groups and markets in the SQL
store of the device registry (``lakehouse.domain.accounts.registry``: SQLite by default, any
SQLAlchemy URL in ``security.registry_url``), seeded from ``supply_entities.csv`` of the
configuration folder by its migration (0002).

Operators keep it through ``/api/v1/supply/entities``; the supply query reads it at every
micro-batch, so an entity registered now is known to the next batch. An event naming an entity
that is not here is quarantined (``unknown_entity``) — never created.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from lakehouse.catalog.conf import Conf, conf_of
from lakehouse.config.settings import Settings
from lakehouse.domain.accounts.registry import (
    DEVICE_ID,
    Conflict,
    NotFound,
    RegistryError,
    open_registry,
)
from lakehouse.domain.supply_chain.supply import Entity, check_entity

_meta = sa.MetaData()
entities_table = sa.Table(
    "supply_entities",
    _meta,
    sa.Column("entity_id", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("regency_code", sa.String(8), nullable=False),
    sa.Column("latitude", sa.Float, nullable=False),
    sa.Column("longitude", sa.Float, nullable=False),
    sa.Column("commodities", sa.JSON, nullable=False),
    sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)
#: what an update may change (the id is the key)
EDITABLE = ("name", "kind", "regency_code", "latitude", "longitude", "commodities")


def _entity(row: Any) -> Entity:
    return Entity(
        entity_id=row.entity_id,
        name=row.name,
        kind=row.kind,
        regency_code=row.regency_code,
        latitude=row.latitude,
        longitude=row.longitude,
        commodities=tuple(row.commodities),
    )


def _checked(entity: Entity, conf: Conf) -> Entity:
    if not DEVICE_ID.match(entity.entity_id):
        raise RegistryError(f"entity id {entity.entity_id!r} must match {DEVICE_ID.pattern}")
    try:
        check_entity(entity, conf)
    except ValueError as exc:
        raise RegistryError(str(exc)) from None
    return entity


class SupplyRegistry:
    """Supply entities in the SQL store; every method is one short transaction."""

    def __init__(self, engine: sa.Engine, conf: Conf) -> None:
        self.engine = engine
        self.conf = conf  # the commodities an entity may trade

    def entities(self, kind: str | None = None, province: str | None = None) -> list[Entity]:
        query = entities_table.select().order_by(entities_table.c.entity_id)
        if kind:
            query = query.where(entities_table.c.kind == kind)
        with self.engine.connect() as conn:
            found = [_entity(row) for row in conn.execute(query)]
        return [e for e in found if province is None or e.province == province]

    def entity(self, entity_id: str) -> Entity:
        with self.engine.connect() as conn:
            row = conn.execute(
                entities_table.select().where(entities_table.c.entity_id == entity_id)
            ).first()
        if row is None:
            raise NotFound(f"no supply entity {entity_id!r}")
        return _entity(row)

    def create(self, entity: Entity) -> Entity:
        entity = _checked(entity, self.conf)
        now = datetime.now(UTC)
        values = {c: getattr(entity, c) for c in ("entity_id", *EDITABLE)}
        values["commodities"] = list(entity.commodities)
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    entities_table.insert().values(**values, created_at=now, updated_at=now)
                )
        except sa.exc.IntegrityError:
            raise Conflict(f"supply entity {entity.entity_id!r} exists already") from None
        return entity

    def update(self, entity_id: str, **changes: Any) -> Entity:
        """Change some of an entity's ``EDITABLE`` fields."""
        unknown = sorted(set(changes) - set(EDITABLE))
        if unknown:
            raise RegistryError(f"cannot change {unknown}; editable: {list(EDITABLE)}")
        if "commodities" in changes:
            changes["commodities"] = tuple(changes["commodities"])
        entity = _checked(replace(self.entity(entity_id), **changes), self.conf)
        values = {c: getattr(entity, c) for c in EDITABLE}
        values["commodities"] = list(entity.commodities)
        with self.engine.begin() as conn:
            conn.execute(
                entities_table.update()
                .where(entities_table.c.entity_id == entity_id)
                .values(**values, updated_at=datetime.now(UTC))
            )
        return entity

    def delete(self, entity_id: str) -> None:
        """Remove an entity: later events naming it are quarantined (its history stays)."""
        with self.engine.begin() as conn:
            done = conn.execute(
                entities_table.delete().where(entities_table.c.entity_id == entity_id)
            ).rowcount
        if not done:
            raise NotFound(f"no supply entity {entity_id!r}")


def open_supply_registry(settings: Settings) -> SupplyRegistry:
    """The supply registry of these settings (the store migrated to the newest revision)."""
    return SupplyRegistry(open_registry(settings).engine, conf_of(settings))
