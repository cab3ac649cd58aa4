"""Supply entities (issue 35), seeded from ``supply_entities.csv`` of the configuration folder
(the ``Conf`` that ``open_registry`` hands over).

Revision ID: 0002
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from alembic import context

    from lakehouse.domain.supply_chain.supply import reference_entities

    table = op.create_table(
        "supply_entities",
        sa.Column("entity_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("regency_code", sa.String(8), nullable=False, index=True),
        sa.Column("latitude", sa.Float, nullable=False),
        sa.Column("longitude", sa.Float, nullable=False),
        sa.Column("commodities", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    now = datetime.now(UTC)
    op.bulk_insert(
        table,
        [
            {
                "entity_id": e.entity_id,
                "name": e.name,
                "kind": e.kind,
                "regency_code": e.regency_code,
                "latitude": e.latitude,
                "longitude": e.longitude,
                "commodities": list(e.commodities),
                "created_at": now,
                "updated_at": now,
            }
            for e in reference_entities(context.config.attributes["conf"]).values()
        ],
    )


def downgrade() -> None:
    op.drop_table("supply_entities")
