import json
from datetime import datetime

import pytest
from pydantic import ValidationError

from lakehouse.catalog.events import (
    EVENT_MODELS,
    Metric,
    PriceEvent,
    SensorEvent,
    json_schema,
    spark_schema,
)
from tests.shipped import SHIPPED

PRICE = {
    "market_id": "IP-001",
    "commodity": "bawang_merah",
    "price": 42054.0,
    "unit": "kg",
    "observed_at": "2024-01-01T08:00:00+07:00",
    "source": "pihps",
}


def test_price_event_round_trips_through_json():
    event = PriceEvent(**PRICE)
    again = PriceEvent.model_validate_json(event.to_json())
    assert again == event
    assert event.key == "IP-001:bawang_merah"
    assert json.loads(event.to_json())["event_type"] == "price"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"price": 0}, "price"),
        ({"price": -5}, "price"),
        ({"observed_at": "2024-01-01T08:00:00"}, "observed_at"),  # no offset
        ({"market_id": ""}, "market_id"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_price_event_rejects_bad_values(change: dict, field: str):
    with pytest.raises(ValidationError) as err:
        PriceEvent(**{**PRICE, **change})
    assert field in str(err.value)


def test_sensor_event_metric_is_enumerated():
    base = {"market_id": "IP-001", "device_id": "d1", "value": 28.5, "source": "dev"}
    event = SensorEvent(**base, metric="temperature_c", observed_at=datetime.now().astimezone())
    assert event.metric == Metric.temperature_c
    assert event.key == "IP-001:d1"
    with pytest.raises(ValidationError):
        SensorEvent(**base, metric="pressure", observed_at=datetime.now().astimezone())


@pytest.mark.parametrize("model", EVENT_MODELS.values())
def test_spark_and_json_schemas_derive_from_the_model(model):
    fields = list(model.model_fields)
    struct = spark_schema(model)
    assert struct.fieldNames() == fields
    assert all(f.nullable for f in struct.fields)
    assert struct["observed_at"].dataType.typeName() == "timestamp"
    schema = json_schema(model)
    assert set(schema["properties"]) == set(fields)


def test_reference_data_is_consistent():
    assert SHIPPED.markets["IP-001"].name == "Pasar Induk Kramat Jati"
    assert SHIPPED.markets["PIHPS-AGG"].kind == "aggregate"
    assert all(c.min_price < c.max_price for c in SHIPPED.commodities.values())
    assert SHIPPED.commodity_id("Bawang Merah") == "bawang_merah"
    assert SHIPPED.commodity_id(" CABAI  merah ") == "cabai_merah"
    assert SHIPPED.commodity_id("shallot") == "bawang_merah"
    assert SHIPPED.commodity_id("durian") is None
    assert set(SHIPPED.metric_ranges) == set(Metric)
