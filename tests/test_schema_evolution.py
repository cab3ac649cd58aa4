"""Schema evolution: an optional field added to an event model flows bronze → silver with no
rewrite and no migration step.

- bronze keeps each record's raw JSON (``value``): it never changes;
- silver parses with the model's Spark schema (``events.spark_schema``), keeps every field of
  the model (``silver.event_columns``) and appends with ``mergeSchema``: the first batch
  carrying the field adds the column to ``silver.prices``; rows written before read it as null
  and their files stay as they were;
- producers that do not know the field yet keep working: it is optional.

To add a field for real: add it to the model in ``lakehouse/catalog/events.py`` as optional (``X |
None
= None``) and give its column a meaning in ``lakehouse/catalog/tables.py`` (the dictionary test
asks).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from deltalake import DeltaTable
from pydantic import Field

from lakehouse.catalog.events import EVENT_MODELS, PriceEvent
from lakehouse.catalog.tables import BRONZE_EVENTS, SILVER_PRICES, SILVER_QUARANTINE
from lakehouse.config.settings import Settings
from lakehouse.io.kafka_io import EventProducer, ensure_topics
from streaming_jobs.medallion import gold_query, silver_query
from tests.conftest import drain, isolated

START = datetime(2025, 1, 6, 1, 0, tzinfo=UTC)


class GradedPriceEvent(PriceEvent):
    """Version 2 of the price event: an optional quality grade."""

    quality_grade: str | None = Field(None, max_length=16, description="A, B or C")


def prices(day0: int, days: int, **extra: str) -> list[PriceEvent]:
    model = GradedPriceEvent if extra else PriceEvent
    return [
        model(
            market_id=market,
            commodity="beras",
            price=14_000 + 10 * day,
            unit="kg",
            observed_at=START + timedelta(days=day),
            source="evolution-test",
            **extra,
        )
        for day in range(day0, day0 + days)
        for market in ("IP-001", "IP-003")
    ]


def send(settings: Settings, events: list[PriceEvent]) -> None:
    producer = EventProducer(settings)
    for event in events:
        producer.send(event)
    producer.flush()


def test_optional_field_flows_to_silver_without_rewrite(
    settings, kafka, spark, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    live = isolated(settings, tmp_path)
    ensure_topics(live)
    before = prices(0, 3)
    send(live, before)
    drain(spark, live, silver_query, gold_query)
    silver_path = str(SILVER_PRICES.path(live))
    first = DeltaTable(silver_path)
    assert "quality_grade" not in first.schema().to_arrow().names
    files_before, version_before = set(first.file_uris()), first.version()

    monkeypatch.setitem(EVENT_MODELS, "price", GradedPriceEvent)  # the model gains the field
    after = prices(3, 3, quality_grade="A")
    send(live, after + prices(6, 1))  # a producer that does not send it yet
    drain(spark, live, silver_query, gold_query)

    table = DeltaTable(silver_path)
    rows = table.to_pandas().set_index("event_id")
    grades = rows["quality_grade"]
    assert len(rows) == len(before) + len(after) + 2
    assert grades[[str(e.event_id) for e in before]].isna().all()
    assert (grades[[str(e.event_id) for e in after]] == "A").all()
    assert DeltaTable(str(SILVER_QUARANTINE.path(live))).to_pandas().empty

    # nothing rewritten: the old files are still the table's, later commits only appended
    assert files_before <= set(table.file_uris())
    later = [c for c in table.history() if c["version"] > version_before]
    assert later and all(c["operation"] == "WRITE" for c in later)
    assert all(c["operationParameters"]["mode"] == "Append" for c in later)
    bronze = DeltaTable(str(BRONZE_EVENTS.path(live))).to_pandas()
    assert bronze["value"].str.contains('"quality_grade":"A"').sum() == len(after)
