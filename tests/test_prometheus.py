"""The whole scrape, for real: the pipeline (``streaming_jobs.main``) on a replay with faults,
the API, Kafka with its JMX exporter and the MQTT bridge with Mosquitto's numbers, scraped by a
real Prometheus on free ports; its HTTP API says every target is up and has the pipeline's and
the broker's numbers, and the operations view reads them back through the serving API and
shows them on the dashboard's Operations tab in Chromium. Waits on metrics, never on the clock."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from lakehouse.catalog import ops_metrics as m
from lakehouse.config.settings import Settings
from lakehouse.io.kafka_io import ensure_topics
from lakehouse.io.status import pipeline_progress
from scripts.services import Api, PrometheusServer
from tests.browser import chromium, open_page, watch
from tests.conftest import isolated
from tests.medallion_data import make_dataset, produce
from tests.processes import running_bridge, start_pipeline

SCRAPE_SECONDS = 1.0


def wait_until(what: str, found: Callable[[], Any], timeout: float = 600.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := found():
            return value
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def pipeline_families(settings: Settings) -> dict[str, Any]:
    p = settings.pipeline_metrics
    try:
        text = httpx.get(f"http://{p.host}:{p.port}/metrics", timeout=5).text
    except httpx.HTTPError:
        return {}
    return {f.name: f for f in text_string_to_metric_families(text)}


def prometheus_query(url: str, query: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=10).json()
    return answer["data"]["result"]


@pytest.fixture
def scraped(settings: Settings, kafka, mosquitto, tmp_path: Path) -> Iterator[tuple[Settings, str]]:
    """The pipeline and the MQTT bridge on their own topics and tables, the API and a
    Prometheus scraping them and the session's Kafka broker every second."""
    own = isolated(settings, tmp_path)
    ensure_topics(own)
    pipeline = start_pipeline(own)
    fast = settings.prometheus.model_copy(update={"scrape_seconds": SCRAPE_SECONDS})
    prometheus = PrometheusServer(settings.model_copy(update={"prometheus": fast}))
    api = Api(settings)
    try:
        with running_bridge(own, f"bridge-{tmp_path.name}"):
            api.start()
            prometheus.start()
            yield own, prometheus.url
    finally:
        os.killpg(pipeline.pid, signal.SIGTERM)
        pipeline.wait(timeout=120)
        prometheus.stop()
        api.stop()


def test_prometheus_scrapes_pipeline_api_kafka_and_mqtt(scraped: tuple[Settings, str]):
    own, url = scraped
    data = make_dataset(own)
    produce(own, data.phases[0])

    # the pipeline's own endpoint, read by a real text-format parser
    quarantined = m.QUARANTINED.name
    families = wait_until(
        "the pipeline's metrics to count quarantined rows",
        lambda: (f := pipeline_families(own)) and quarantined in f and f[quarantined].samples and f,
    )
    reasons = {
        s.labels["reason"] for s in families[quarantined].samples if s.name.endswith("_total")
    }
    assert {"unknown_market", "non_positive_price", "price_out_of_range"} <= reasons
    steps = {
        (s.labels["query"], s.labels["step"]) for s in families[m.BATCH_STEP_SECONDS.name].samples
    }
    assert {("silver", "write"), ("gold", "price_daily"), ("gold", "alerts")} <= steps
    behind = families[m.OFFSETS_BEHIND.name].samples
    assert {s.labels["topic"] for s in behind} >= {
        own.kafka.topics.prices,
        own.kafka.topics.sensors,
    }
    assert [s for s in families[m.LAST_BATCH.name].samples if s.labels["query"] == "gold"]

    # Prometheus: every target up, the pipeline's, the API's and Kafka's numbers stored
    def all_up() -> list[dict[str, Any]] | None:
        targets = httpx.get(f"{url}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        return targets if targets and all(t["health"] == "up" for t in targets) else None

    targets = wait_until("every Prometheus target up", all_up)
    assert {t["labels"]["job"] for t in targets} == {
        m.JOB_API,
        m.JOB_PIPELINE,
        m.JOB_KAFKA,
        m.JOB_MQTT,
        m.JOB_PROMETHEUS,
    }
    rows = wait_until(
        "the pipeline's input rows in Prometheus",
        lambda: prometheus_query(url, f'{m.INPUT_ROWS.series}{{query="silver"}}'),
    )
    assert float(rows[0]["value"][1]) > 0
    assert prometheus_query(url, '{__name__=~"kafka_server_brokertopicmetrics_messagesin.*"}')
    assert prometheus_query(url, f'{m.SERVICE_RESTARTS.series}{{service="api"}}')
    broker = wait_until(
        "the MQTT bridge connected and Mosquitto's clients in Prometheus",
        lambda: (
            prometheus_query(url, f"{m.BRIDGE_CONNECTED.series} == 1")
            and prometheus_query(url, f"{m.BROKER_CLIENTS_CONNECTED.series} >= 1")
        ),
    )
    assert broker[0]["metric"]["job"] == m.JOB_MQTT

    # the operations view, through the serving API, from this Prometheus
    overview_url = f"http://127.0.0.1:{own.api.port}/api/v1/ops/overview"
    overview = httpx.get(overview_url, timeout=30)
    assert overview.status_code == 200, overview.text
    panels = {p["id"]: p for p in overview.json()["panels"]}
    assert set(panels) == {p.id for p in m.OPS_PANELS}
    assert wait_until(
        "the ingest panel to have points",
        lambda: [
            s
            for p in httpx.get(overview_url, timeout=30).json()["panels"]
            if p["id"] == "ingest"
            for s in p["series"]
            if s["label"] == "silver" and s["points"]
        ],
    )

    # the dashboard's Operations tab draws the same panels, in a real browser
    with chromium() as browser:
        watched = watch(browser, f"http://127.0.0.1:{own.api.port}")
        page = open_page(watched, "ops")
        ingest = page.wait_for_selector('.ops-panel[data-panel="ingest"] polyline')
        assert ingest is not None
        assert page.locator(".ops-panel").count() == len(m.OPS_PANELS)
        assert "silver" in page.locator('.ops-panel[data-panel="ingest"]').inner_text()
        assert page.locator("#ops-error").is_hidden()
        assert watched.errors == []

    # ./run.sh status's line on the pipeline
    status_settings = own.model_copy(
        update={
            "paths": own.paths.model_copy(
                update={"data_dir": own.paths.checkpoint_root.parent / "data"}
            )
        }
    )
    progress = pipeline_progress(status_settings)
    assert progress is not None and "silver: " in progress and "records behind in Kafka" in progress
