"""The silver query's statistical rules in the JVM (``spark.judge: jvm``) reach the verdicts of
the pandas judge: the same 5 500 events (``medallion_data``: ten markets × five commodities,
two devices, faults of every kind, spikes held) plus sensor jumps and stuck readings, held
prices confirmed by later reports and operators' reviews, drained from the same Kafka topics
through both judges a few thousand records a micro-batch, then the reviews in a second run that
restarts each query from its checkpoint; every silver table compared row by row, column by
column."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pytest

from lakehouse.catalog.events import ReviewDecision, ReviewEvent, SensorEvent
from lakehouse.catalog.tables import (
    SILVER_HOLD_DECISIONS,
    SILVER_HOLDS,
    SILVER_PRICES,
    SILVER_QUARANTINE,
)
from lakehouse.config.settings import Settings
from lakehouse.io.kafka_io import ensure_topics
from streaming_jobs.jvm_judge import rules_json
from streaming_jobs.medallion import silver_query
from tests.conftest import drain, isolated
from tests.medallion_data import (
    COMMODITIES,
    MARKETS,
    START,
    _price,
    make_dataset,
    produce,
    spike,
    table,
)
from tests.shipped import SHIPPED
from tests.silver_tables import SILVER_TABLES, comparable


def _extras(settings: Settings) -> list[tuple[str, bytes, str]]:
    """Events the replay lacks: jumps and stuck readings of a third device, and spikes two
    more reports at the new level confirm (held, then released)."""
    topics = settings.kafka.topics
    records = []
    device = f"{MARKETS[2]}-d9"
    for i in range(60):
        at = START + timedelta(minutes=5 * i)
        value = 25.0 if i % 20 < 8 else 25.0 + (30.0 if i % 20 == 10 else 0.5 * (i % 3))
        event = SensorEvent(
            event_id=SensorEvent.reading_id(device, "temperature_c", at),
            market_id=MARKETS[2],
            device_id=device,
            metric="temperature_c",
            value=value,
            observed_at=at,
            source="sensor-test",
        )
        records.append((topics.sensors, event.to_json(), event.key))
    for i in range(6):
        market, commodity = MARKETS[i], COMMODITIES[i % 5]
        for hours in (3, 9, 15):
            held = spike(_price(market, commodity, 120 + i), f"confirmed/{i}/{hours}", hours)
            records.append((topics.prices, held.to_json(), held.key))
    return records


def _reviews(settings: Settings, held: pd.DataFrame) -> list[tuple[str, bytes, str]]:
    """An operator's release or rejection of every third hold, and a second review of one."""
    out = []
    for i, hold in enumerate(held.sort_values("event_id").itertuples()):
        if i % 3:
            continue
        decisions = [ReviewDecision.release if i % 2 else ReviewDecision.reject]
        decisions += [ReviewDecision.release] if i == 0 else []
        for decision in decisions:
            review = ReviewEvent(
                target_event_id=hold.event_id,
                market_id=hold.market_id,
                commodity=hold.commodity,
                decision=decision,
                note=f"review {i}",
                reviewer="tester",
            )
            out.append((settings.kafka.topics.reviews, review.to_json(), hold.event_id))
    return out


def test_rules_json_names_every_threshold(conf_settings):
    import json

    sent = json.loads(rules_json(SHIPPED.quality))
    assert sent["prices"]["history_points"] == SHIPPED.quality.prices.history_points
    assert sent["constants"]["review_decisions"] == {"release": "released", "reject": "rejected"}


@pytest.mark.timeout(1800)
def test_jvm_judge_reaches_the_python_verdicts(spark, kafka, settings, tmp_path):
    shared = isolated(settings, tmp_path)  # one set of topics, read by both judges
    ensure_topics(shared)
    data = make_dataset(shared)
    produce(shared, [*data.phases[0], *data.phases[1], *_extras(shared)])
    runs = {
        engine: shared.model_copy(
            update={
                "spark": shared.spark.model_copy(
                    update={"judge": engine, "max_offsets_per_trigger": 2500}
                ),
                "paths": shared.paths.model_copy(
                    update={
                        "lakehouse_root": tmp_path / engine / "lakehouse",
                        "checkpoint_root": tmp_path / engine / "chk",
                    }
                ),
            }
        )
        for engine in ("python", "jvm")
    }
    for run in runs.values():
        drain(spark, run, silver_query)
    held = table(runs["python"], SILVER_HOLDS)
    assert len(held) >= 50  # the spikes, held
    produce(shared, _reviews(shared, held))
    for run in runs.values():  # each query again from its checkpoint and state
        drain(spark, run, silver_query)

    for t in SILVER_TABLES:
        python, jvm = (comparable(table(run, t)) for run in runs.values())
        assert len(python) > 0, t.name
        pd.testing.assert_frame_equal(python, jvm, check_exact=True, obj=t.name)
    decisions = table(runs["jvm"], SILVER_HOLD_DECISIONS)
    assert {"released", "rejected"} <= set(decisions["decision"])
    assert decisions["decided_by"].str.startswith("operator:").any()
    assert decisions["decided_by"].eq("rule:confirmation").any()
    flags = table(runs["jvm"], SILVER_PRICES)["flags"].map(len)
    assert (flags > 0).any()  # flagged, kept in silver
    sensors = table(runs["jvm"], SILVER_QUARANTINE)["reasons"].map(list)
    assert sensors.map(lambda r: "sensor_jump" in r).any()
