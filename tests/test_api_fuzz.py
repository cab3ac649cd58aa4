"""Property-based fuzz of the API's OpenAPI schema (schemathesis): whatever the parameters and
bodies, the API answers with a 2xx or 4xx, or with a 503 that the operation documents for a
state of the platform (no impact model trained yet, Kafka not confirming, not ready) — never an
undocumented server error. Derandomized: the same examples on every run, whatever the order.
Runs over the replayed gold tables, with an admin key so that POST /prices reaches Kafka
(topics of its own).

Each operation's hypothesis strategy is driven from a plain test (schemathesis' pytest plugin
does not run under pytest 9)."""

from __future__ import annotations

import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings

from lakehouse.config.settings import Settings, Topics
from lakehouse.io.kafka_io import ensure_topics
from serving_api.app import create_app
from serving_api.auth import mint_key

EXAMPLES_PER_OPERATION = 25


@pytest.fixture(scope="module")
def key_and_schema(replayed: Settings, kafka) -> tuple[str, schemathesis.BaseSchema]:
    key, entry = mint_key("fuzz", "admin")
    tag = f"fuzz{uuid.uuid4().hex[:8]}"
    topics = Topics(
        prices=f"{tag}.prices",
        sensors=f"{tag}.sensors",
        deadletter=f"{tag}.dead",
        reviews=f"{tag}.reviews",
    )
    own = replayed.model_copy(
        update={
            "kafka": replayed.kafka.model_copy(update={"topics": topics}),
            "api": replayed.api.model_copy(update={"keys": [entry]}),
            # every example must reach the route: no 429s from the rate limit
            "security": replayed.security.model_copy(update={"rate_limit_per_minute": 0}),
        }
    )
    ensure_topics(own)
    return key, schemathesis.openapi.from_asgi("/openapi.json", create_app(own))


def documented_errors(case: schemathesis.Case) -> set[str]:
    """The status codes the operation's OpenAPI entry documents."""
    return set(case.operation.definition.raw.get("responses", {}))


def test_no_server_errors(key_and_schema: tuple[str, schemathesis.BaseSchema]) -> None:
    key, schema = key_and_schema
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 12

    for operation in operations:

        @given(case=operation.as_strategy())
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
            derandomize=True,
        )
        def no_server_error(case: schemathesis.Case) -> None:
            response = case.call(headers={"X-API-Key": key})
            documented = str(response.status_code) in documented_errors(case)
            assert response.status_code < 500 or (response.status_code == 503 and documented), (
                f"{case.method} {case.formatted_path}: {response.status_code} {response.text}"
            )

        no_server_error()
