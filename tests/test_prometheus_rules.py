"""The shipped Prometheus rules and configuration, checked by Prometheus's own ``promtool``:
every alert and recording rule against its test cases (conf/prometheus/tests), the generated
configuration, and that the rules name only metrics the platform defines."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from lakehouse.catalog import ops_metrics as m
from lakehouse.config.secrets import secret
from lakehouse.config.settings import Settings
from scripts.prometheus_config import (
    RULES_FILE,
    config_text,
    scrape_targets,
    scrape_token_file,
    write_scrape_token,
)
from serving_api.metrics import ApiMetrics
from tests.conftest import secured

TESTS_DIR = RULES_FILE.parent / "tests"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool not found: `./run.sh setup` installs it (apt-get install prometheus)")
    return found


def run_promtool(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=120, check=False, cwd=cwd
    )


def test_rules_are_valid():
    result = run_promtool("check", "rules", str(RULES_FILE))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", sorted(p.name for p in TESTS_DIR.glob("*.test.yml")))
def test_rules_pass_their_promtool_tests(test_file: str):
    result = run_promtool("test", "rules", test_file, cwd=TESTS_DIR)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_test_case():
    alerts = {
        r["alert"]
        for g in yaml.safe_load(RULES_FILE.read_text())["groups"]
        for r in g["rules"]
        if "alert" in r
    }
    tested = {
        case["alertname"]
        for f in TESTS_DIR.glob("*.test.yml")
        for t in yaml.safe_load(f.read_text())["tests"]
        for case in t.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    assert alerts == tested


def test_rules_name_only_defined_metrics():
    api = {
        f"{metric.name}_total" if metric.type == "counter" else metric.name
        for metric in ApiMetrics().registry.collect()
    }
    ours = {metric.series for metric in m.ALL_METRICS}
    text = RULES_FILE.read_text()
    recorded = set(re.findall(r"record: (\S+)", text))
    named = set(re.findall(r"\b(smartmarket_[a-z_]+?)(?:_bucket|_sum|_count)?\b", text))
    assert named - ours - api - recorded == set()


def test_generated_config_is_valid(conf_settings: Settings, tmp_path: Path):
    config = tmp_path / "prometheus.yml"
    config.write_text(config_text(conf_settings))
    result = run_promtool("check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    targets = scrape_targets(conf_settings)
    assert targets[m.JOB_PIPELINE] == [f"127.0.0.1:{conf_settings.pipeline_metrics.port}"]
    assert targets[m.JOB_API] == [f"127.0.0.1:{conf_settings.api.port}"]
    assert targets[m.JOB_KAFKA] == [f"127.0.0.1:{conf_settings.prometheus.kafka_jmx_port}"]
    assert targets[m.JOB_MQTT] == [f"127.0.0.1:{conf_settings.bridge_metrics.port}"]


def test_with_closed_reads_the_api_job_presents_the_scrape_token(
    conf_settings: Settings, tmp_path: Path
):
    closed = secured(conf_settings, tmp_path)
    write_scrape_token(closed)
    token = scrape_token_file(closed)
    assert token.stat().st_mode & 0o777 == 0o600
    assert token.read_text() == secret(closed, m.SCRAPE_TOKEN_SECRET)
    config = tmp_path / "prometheus.yml"
    config.write_text(config_text(closed))
    result = run_promtool("check", "config", str(config))
    assert result.returncode == 0, result.stdout + result.stderr
    jobs = {j["job_name"]: j for j in yaml.safe_load(config.read_text())["scrape_configs"]}
    assert jobs[m.JOB_API]["authorization"] == {"type": "Bearer", "credentials_file": str(token)}
    assert "authorization" not in jobs[m.JOB_PIPELINE]
    open_reads = yaml.safe_load(config_text(conf_settings))["scrape_configs"]
    assert all("authorization" not in job for job in open_reads)


def test_operations_panels_ask_for_recorded_or_defined_series():
    recorded = set(re.findall(r"record: (\S+)", RULES_FILE.read_text()))
    ours = {metric.series for metric in m.ALL_METRICS}
    assert {panel.query for panel in m.OPS_PANELS} <= recorded | ours
