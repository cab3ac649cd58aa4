"""The operations view's API (who may see it, what it says when Prometheus is away), the
keepers' restart counts on the API's /metrics, and the Grafana dashboard made of the same
panels. With a real Prometheus: tests/test_stack.py."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from lakehouse.catalog.ops_metrics import OPS_PANELS, SERVICE_RESTARTS
from lakehouse.config.settings import Settings
from lakehouse.io.status import restarts_path
from scripts.grafana_dashboard import DASHBOARD_FILE, dashboard_text
from scripts.isolated_stack import free_ports
from serving_api.app import create_app
from serving_api.auth import mint_key
from tests.conftest import secured

OVERVIEW = "/api/v1/ops/overview"


def without_prometheus(settings: Settings) -> Settings:
    """``settings`` whose Prometheus is a port nothing listens on."""
    (port,) = free_ports(1)
    prometheus = settings.prometheus.model_copy(update={"url": f"http://127.0.0.1:{port}"})
    return settings.model_copy(update={"prometheus": prometheus})


def test_closed_reads_show_operations_to_operators_only(settings: Settings, tmp_path: Path):
    operator_key, operator = mint_key("ops", "operator")
    reader_key, reader = mint_key("dash", "reader")
    admin_key, admin = mint_key("root", "admin")
    closed = without_prometheus(secured(settings, tmp_path, keys=[operator, reader, admin]))
    with TestClient(create_app(closed)) as c:
        assert c.get(OVERVIEW).status_code == 401
        assert c.get(OVERVIEW, headers={"X-API-Key": reader_key}).status_code == 403
        for key in (operator_key, admin_key):
            answer = c.get(OVERVIEW, headers={"X-API-Key": key})
            assert answer.status_code == 503  # let in; the Prometheus of these settings is away
            assert "does not answer" in answer.json()["detail"]
            assert closed.prometheus.url in answer.json()["detail"]


def test_open_reads_show_operations_to_anyone(settings: Settings, tmp_path: Path):
    with TestClient(create_app(without_prometheus(settings))) as c:
        assert c.get(OVERVIEW).status_code == 503
        assert c.get(OVERVIEW, params={"minutes": 2}).status_code == 422


def test_api_metrics_serve_the_keepers_restart_counts(settings: Settings, tmp_path: Path):
    own = settings.model_copy(
        update={"paths": settings.paths.model_copy(update={"data_dir": tmp_path})}
    )
    own.paths.run_dir.mkdir(parents=True)
    restarts_path(own, "pipeline").write_text(json.dumps({"restarts": 3, "last_exit": "exit 1"}))
    (own.paths.run_dir / "api.pid").write_text("{}")  # running, never restarted: no file
    restarts_path(own, "broken").write_text("{not json")
    with TestClient(create_app(own)) as c:
        text = c.get("/metrics").text
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == SERVICE_RESTARTS.name]
    assert family.type == "counter"
    assert {s.labels["service"]: s.value for s in family.samples if s.name.endswith("_total")} == {
        "api": 0,
        "pipeline": 3,
    }


def test_grafana_dashboard_is_generated_from_the_panels():
    assert DASHBOARD_FILE.read_text() == dashboard_text(), "run python -m scripts.grafana_dashboard"
    shipped = json.loads(DASHBOARD_FILE.read_text())
    queries = [p["targets"][0]["expr"] for p in shipped["panels"] if p["type"] == "timeseries"]
    assert queries == [p.query for p in OPS_PANELS]
