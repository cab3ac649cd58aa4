"""Property-based fuzz of the API's OpenAPI schema (schemathesis): whatever the parameters and
bodies, the API answers with a 2xx or 4xx, never a server error. Runs over the replayed gold
tables, with an admin key so that POST /prices reaches Kafka (topics of its own)."""

from __future__ import annotations

import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from lakehouse.settings import Settings, Topics
from producers.kafka_io import ensure_topics
from serving_api.app import create_app
from serving_api.auth import mint_key

KEY, ENTRY = mint_key("fuzz", "admin")


@pytest.fixture(scope="module")
def api_schema(replayed: Settings, kafka):
    tag = f"fuzz{uuid.uuid4().hex[:8]}"
    topics = Topics(prices=f"{tag}.prices", sensors=f"{tag}.sensors", deadletter=f"{tag}.dead")
    own = replayed.model_copy(
        update={
            "kafka": replayed.kafka.model_copy(update={"topics": topics}),
            "api": replayed.api.model_copy(update={"keys": [ENTRY]}),
        }
    )
    ensure_topics(own)
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(own))


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_server_errors(case) -> None:
    case.call_and_validate(headers={"X-API-Key": KEY}, checks=[not_a_server_error])
