"""API bodies derived from the tables they serve (``serving_api.table_models``)."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from lakehouse.catalog.tables import GOLD_ALERTS, GOLD_ANOMALIES, GOLD_FORECASTS, SILVER_PRICES
from serving_api.models import Alert, Anomaly, ForecastPoint, ForecastSeries
from serving_api.table_models import python_type, table_model


@pytest.mark.parametrize(
    ("spark_type", "expected"),
    [
        ("string", str),
        ("bigint", int),
        ("double", float),
        ("timestamp", datetime),
        ("date", date),
        ("array<string>", list[str]),
        ("map<string, bigint>", dict[str, int]),
    ],
)
def test_spark_types_map_to_python(spark_type: str, expected: object):
    assert python_type(spark_type) == expected


def test_an_unknown_type_or_an_untyped_column_is_refused():
    with pytest.raises(ValueError, match="struct"):
        python_type("struct<a:int>")
    untyped = next(c for c, v in SILVER_PRICES.columns.items() if isinstance(v, str))
    with pytest.raises(TypeError, match="no declared type"):
        table_model("X", SILVER_PRICES, [untyped])


@pytest.mark.parametrize(
    ("model", "table"),
    [
        (Alert, GOLD_ALERTS),
        (Anomaly, GOLD_ANOMALIES),
        (ForecastSeries, GOLD_FORECASTS),
        (ForecastPoint, GOLD_FORECASTS),
    ],
)
def test_each_served_column_carries_the_tables_meaning(model, table):
    schema = model.model_json_schema()
    served = [f for f in model.model_fields if f in table.columns]
    assert served, model
    for field in served:
        assert schema["properties"][field]["description"] == table.columns[field].meaning


def test_keys_are_never_null_the_other_columns_may_be():
    """Of the table's columns: ``lang`` is the API's own (the language of the answer)."""
    fields = {f: None for f in Alert.model_fields} | {"lang": "id"}
    alert = Alert.model_validate(fields | {"alert_id": "a"})
    assert alert.rule is None
    with pytest.raises(ValueError, match="alert_id"):
        Alert.model_validate(fields)
