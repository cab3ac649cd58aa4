"""`./run.sh` as a user runs it: the whole embedded stack up, status, down — and bad set-ups.

The stack's Prometheus scrapes all of it for real: the pipeline (``streaming_jobs.main``) on a
replay with faults, the API, Kafka's JMX exporter and the MQTT bridge with Mosquitto's numbers;
its HTTP API says every target is up and has the pipeline's and the broker's numbers, and the
operations view reads them back through the serving API and shows them on the dashboard's
Operations tab in Chromium. Waits on metrics, never on the clock."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from confluent_kafka import Producer
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from prometheus_client.parser import text_string_to_metric_families

from lakehouse.catalog import ops_metrics as m
from lakehouse.catalog.conf import conf_of
from lakehouse.catalog.events import SCHEMA_VERSION
from lakehouse.catalog.tables import GOLD_ALERTS
from lakehouse.config.settings import PROJECT_ROOT, ConfigError, Settings, load_settings
from lakehouse.io.fast_read import TableMissing
from lakehouse.io.lake import Lakehouse
from scripts.isolated_stack import PORTS_VARIABLE, free_ports, share_of_ports, stack_env
from scripts.service_logs import faults
from scripts.services.base import Service
from scripts.services.kafka_broker import KafkaBroker
from scripts.services.platform_processes import Bridge, Pipeline
from scripts.services.prometheus_server import PrometheusServer
from streaming_jobs.alerts.held import HELD_RULES
from tests.browser import chromium, open_page, watch
from tests.medallion_data import make_dataset, produce

RUN_SH = str(PROJECT_ROOT / "run.sh")
SERVICES = (
    "kafka",
    "mosquitto",
    "mlflow",
    "bridge",
    "devices",
    "prices",
    "supply",
    "news_feeds",
    "pipeline",
    "forecasts",
    "api",
    "prometheus",
)


def _said(what: str) -> None:
    """A line of the test's timeline (pytest shows it with a failure, or with ``-rP``)."""
    print(f"{time.strftime('%H:%M:%S')} {what}", flush=True)


def run(env: dict[str, str], *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [RUN_SH, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    _said(f"./run.sh {' '.join(args)}: exit {result.returncode}")
    return result


def _family(run_dir: Path) -> list[psutil.Process]:
    procs = []
    for pid_file in run_dir.glob("*.pid"):
        proc = psutil.Process(json.loads(pid_file.read_text())["pid"])
        procs += [proc, *proc.children(recursive=True)]
    return procs


def wait_until(what: str, found: Callable[[], Any], timeout: float = 600.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := found():
            _said(what)
            return value
        time.sleep(1)
    raise AssertionError(f"timed out waiting for {what}")


def pipeline_families(settings: Settings) -> dict[str, Any]:
    p = settings.pipeline_metrics
    try:
        answer = httpx.get(f"http://{p.host}:{p.port}/metrics", timeout=5)
    except httpx.TransportError:  # not listening yet
        return {}
    assert answer.status_code == 200, answer.text  # a collector that raises fails the scrape
    return {f.name: f for f in text_string_to_metric_families(answer.text)}


def prometheus_query(url: str, query: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{url}/api/v1/query", params={"query": query}, timeout=10).json()
    return answer["data"]["result"]


def check_pipeline_metrics(settings: Settings) -> None:
    """The pipeline's own endpoint, read by a real text-format parser, once the faults of a
    replay are through silver."""
    fault_reasons = {"unknown_market", "non_positive_price", "price_out_of_range"}

    def with_faults() -> dict[str, Any] | None:
        """The families once the faults' reasons are counted (the seeded history's statistical
        quarantines come first)."""
        families = pipeline_families(settings)
        quarantined = families.get(m.QUARANTINED.name)
        reasons = {
            s.labels["reason"]
            for s in (quarantined.samples if quarantined else ())
            if s.name.endswith("_total")
        }
        return families if fault_reasons <= reasons else None

    families = wait_until("the pipeline's metrics to count the faults' quarantines", with_faults)
    steps = {
        (s.labels["query"], s.labels["step"]) for s in families[m.BATCH_STEP_SECONDS.name].samples
    }
    assert {("silver", "write"), ("gold", "price_daily"), ("gold", "alerts")} <= steps
    behind = families[m.OFFSETS_BEHIND.name].samples
    assert {s.labels["topic"] for s in behind} >= {
        settings.kafka.topics.prices,
        settings.kafka.topics.sensors,
    }
    assert [s for s in families[m.LAST_BATCH.name].samples if s.labels["query"] == "gold"]


def check_prometheus(url: str) -> None:
    """Every target up; the pipeline's, the API's, Kafka's and the MQTT side's numbers stored."""

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


def check_operations_view(api: str) -> None:
    """The operations view, through the serving API from Prometheus, and the dashboard's
    Operations tab drawing the same panels in a real browser, over the shortest window it
    offers (a point a scrape: every 10 s by default)."""
    overview_url = f"{api}/api/v1/ops/overview"
    overview = httpx.get(overview_url, timeout=30)
    assert overview.status_code == 200, overview.text
    assert (overview.json()["minutes"], overview.json()["step_seconds"]) == (60, 30)
    panels = {p["id"]: p for p in overview.json()["panels"]}
    assert set(panels) == {p.id for p in m.OPS_PANELS}
    assert wait_until(  # two points draw a line: the page's first load shows it
        "the ingest panel to have two points",
        lambda: [
            s
            for p in httpx.get(overview_url, params={"minutes": 5}, timeout=30).json()["panels"]
            if p["id"] == "ingest"
            for s in p["series"]
            if s["label"] == "silver" and len(s["points"]) >= 2
        ],
    )
    with chromium() as browser:
        watched = watch(browser, api)
        page = open_page(watched, "ops/5", PAGE_WAIT_MS)
        ingest = page.wait_for_selector('.ops-panel[data-panel="ingest"] polyline')
        assert ingest is not None
        assert page.locator("#ops-window").input_value() == "5"
        assert page.locator(".ops-panel").count() == len(m.OPS_PANELS)
        assert "silver" in page.locator('.ops-panel[data-panel="ingest"]').inner_text()
        assert page.locator("#ops-error").is_hidden()
        assert watched.errors == []


#: how long the first-run journey lets the stack run, as a user leaves it running
JOURNEY_SECONDS = 300.0
#: a day of the shipped real data (datasets/) the impact model explains
IMPACT_DAY = "2025-02-12"
#: how long the page may take to show a price produced to Kafka (the box runs other tests)
PAGE_WAIT_MS = 120_000
#: how long the first forecasts may take after the journey (fitted in the background; slower
#: on a box that runs the other tests beside it)
FORECASTS_SECONDS = 900.0


def live_prices(api: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{api}/api/v1/prices/live", timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()


def newest_observed(api: str) -> str | None:
    return max((r["observed_at"] for r in live_prices(api)), default=None)


def produce_raw_price(settings: Settings, market_id: str, commodity: str, price: float) -> None:
    """A price as any producer writes it: JSON on the prices topic, by a bare Kafka client."""
    producer = Producer({"bootstrap.servers": settings.kafka.bootstrap})
    event = {
        "event_id": str(uuid.uuid4()),
        "schema_version": SCHEMA_VERSION,
        "event_type": "price",
        "market_id": market_id,
        "commodity": commodity,
        "price": price,
        "unit": "kg",
        "observed_at": datetime.now(UTC).isoformat(),
        "source": "journey-test",
    }
    producer.produce(
        settings.kafka.topics.prices, json.dumps(event).encode(), f"{market_id}:{commodity}"
    )
    assert producer.flush(30) == 0


def check_tabs(api: str, settings: Settings, series: tuple[str, str]) -> None:
    """As a user: the board moves while the page is open (a price produced to Kafka shows
    without a reload), and every tab has data, not an empty page."""
    market_id, commodity = series
    shown = {r["commodity"] for r in live_prices(api) if r["market_id"] == market_id}
    unseen = sorted(set(conf_of(settings).commodities) - shown)
    with chromium() as browser:
        watched = watch(browser, api)
        page = open_page(watched, timeout_ms=PAGE_WAIT_MS)
        page.evaluate("window.sameDocument = true")
        # the board shows a page of its rows: the market's own, as a user looking for it would
        page.select_option("#board-market", market_id)
        assert page.locator("#board tbody tr").count() > 0
        produced = unseen[0] if unseen else commodity
        plausible = conf_of(settings).commodities[produced]  # a price no rule holds back
        price = round((plausible.min_price + plausible.max_price) / 2)
        produce_raw_price(settings, market_id, produced, price)
        page.wait_for_function(
            "([key, text]) => document.querySelector(`#board tr[data-key='${key}']`)"
            "?.innerText.includes(text)",
            arg=[f"{market_id}|{produced}", f"Rp {price:,}".replace(",", ".")],
            timeout=PAGE_WAIT_MS,
        )
        assert page.evaluate("window.sameDocument") is True
        tabs = {  # tab → what shows it has data
            "map": "path.market-marker",
            "alerts": "#news-feed li.news",
            "quality": "#quality-sources tbody tr",
            "supply": "#supply-cover tbody tr",
            "ops/5": '.ops-panel[data-panel="ingest"] polyline',
        }
        for tab, selector in tabs.items():  # drawn on the page: there, if below the fold
            page.goto(f"/#{tab}")
            shown = f"body[data-page={tab.split('/')[0]}]"  # once its first answers are in
            try:
                page.wait_for_selector(shown, timeout=PAGE_WAIT_MS)
                page.wait_for_selector(selector, state="attached", timeout=PAGE_WAIT_MS)
            except PlaywrightTimeout as exc:  # what the page met, with the API's own account
                log = (settings.paths.log_dir / "api.log").read_text()[-3000:]
                raise AssertionError(f"#{tab}: {watched.account()}\n{log}") from exc
        watched.assert_clean(api)


def check_chart(api: str, series: tuple[str, str]) -> None:
    """The series' chart: the seeded weeks of history and the 7-day forecast."""
    with chromium() as browser:
        watched = watch(browser, api)
        page = open_page(watched, "series/{}/{}".format(*series), PAGE_WAIT_MS)
        page.wait_for_function(
            "document.querySelector('#series-chart').dataset.forecast === '7'"
            " && Number(document.querySelector('#series-chart').dataset.history) >= 30"
        )
        watched.assert_clean(api)


def forecast_of(api: str, series: tuple[str, str]) -> list[dict[str, Any]]:
    where = {"market_id": series[0], "commodity": series[1]}
    forecasts = httpx.get(f"{api}/api/v1/forecasts", params=where, timeout=30)
    assert forecasts.status_code == 200, forecasts.text
    return forecasts.json()


def check_insights(api: str, series: tuple[str, str]) -> None:
    """Anomalies answer for a simulated series, and the impact model for the national series
    the simulated markets follow (it explains the shipped real data's regions, not the
    simulated markets: for those it answers 422, no data for the market)."""
    market_id, commodity = series
    where = {"market_id": market_id, "commodity": commodity}
    anomalies = httpx.get(f"{api}/api/v1/anomalies", params=where, timeout=30)
    assert anomalies.status_code == 200, anomalies.text
    national = {"commodity": commodity, "region": "Indonesia", "date": IMPACT_DAY}
    impact = httpx.get(f"{api}/api/v1/impact", params=national, timeout=60)
    assert impact.status_code == 200, impact.text


def check_alerts_are_news(settings: Settings, started: datetime) -> None:
    """Every alert the stack raised is news (``alerts.max_age_hours``): none about the weeks of
    history the simulators seed at the first start. Read from ``gold.alerts`` (the API does not
    serve a held price's observation time apart from its details)."""
    since = started - timedelta(hours=settings.alerts.max_age_hours)
    try:
        alerts = (
            Lakehouse(settings)[GOLD_ALERTS].read(["rule", "details", "last_firing_at"]).to_pylist()
        )
    except TableMissing:  # no rule has been evaluated yet: nothing raised
        return
    old = []
    for alert in alerts:
        held = alert["rule"] in HELD_RULES  # their details: JSON with the price's observed_at
        observed = json.loads(alert["details"])["observed_at"] if held else None
        when = datetime.fromisoformat(observed) if observed else alert["last_firing_at"]
        if when.replace(tzinfo=when.tzinfo or UTC) < since:
            old.append((alert["rule"], when.isoformat()))
    raised = Counter(a["rule"] for a in alerts)
    assert old == [], f"alerts about history: {old[:10]} of {len(old)}; raised {dict(raised)}"


@pytest.mark.journey  # the whole embedded stack of its own, the pipeline (Spark) included
@pytest.mark.timeout(JOURNEY_SECONDS + FORECASTS_SECONDS + 900)  # up, down: on a busy box
def test_first_run_as_a_user_lives_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The README's first command on an empty data folder (free ports of its own, the default
    settings otherwise), left running for ``JOURNEY_SECONDS`` and checked only from
    outside: up (twice), status, each simulator round moving ``/prices/live``, every tab with
    data in Chromium, forecasts, impact and anomalies, the whole scrape and the operations
    view, no traceback or ERROR in any service's log, before ``down`` and after; ``down`` leaves
    no process."""
    own = {
        **stack_env(str(tmp_path)),
        # `./run.sh test` runs the journey beside the other sessions: a pipeline below them
        # (spark.niceness, its session's autogroup too) would wait minutes for the CPU its
        # start needs
        "SMARTMARKET_SPARK__NICENESS": "0",
        # ... and the cores: beside them the pipeline's start (Spark's, its tables created) took
        # over the default two minutes in CI
        "SMARTMARKET_SERVICES__START_TIMEOUT_SECONDS": "600",
    }
    for key, value in own.items():
        monkeypatch.setenv(key, value)
    env = dict(os.environ)  # the `./run.sh` commands' and this process's settings: the same
    settings = load_settings()
    started = datetime.now(UTC)
    try:
        up = run(env, "up")
        assert up.returncode == 0, up.stdout + up.stderr
        running = time.monotonic()
        for name in SERVICES:
            assert f"{name:<10} started" in up.stdout
        assert "(none yet: fitted from" in up.stdout  # a first start fits the impact model

        again = run(env, "up")
        assert again.returncode == 0, again.stderr
        assert again.stdout.count("already running") == len(SERVICES)
        assert "impact model" not in again.stdout

        status = run(env, "status")
        assert status.returncode == 0, status.stdout
        assert status.stdout.count("healthy") == len(SERVICES)
        api = f"http://127.0.0.1:{env['SMARTMARKET_API__PORT']}"
        assert httpx.get(f"{api}/ready", timeout=10).json()["status"] == "ready"

        where = {"commodity": "beras", "region": "Bandung", "date": "2025-03-10"}
        impact = httpx.get(f"{api}/api/v1/impact", params=where, timeout=60)
        assert impact.status_code == 200, impact.text
        for commodity in ("cabai_merah", "bawang_merah", "bawang_putih"):  # the shipped daily file
            where = {"commodity": commodity, "region": "Indonesia", "date": IMPACT_DAY}
            impact = httpx.get(f"{api}/api/v1/impact", params=where, timeout=60)
            assert impact.status_code == 200, impact.text

        rounds = [wait_until("the first prices on the board", lambda: newest_observed(api))]
        row = live_prices(api)[0]
        series = (row["market_id"], row["commodity"])
        # faults of each kind: the seeded weeks are the clean history
        produce(settings, make_dataset(settings).faults())
        check_pipeline_metrics(settings)
        check_prometheus(PrometheusServer(settings).url)
        check_operations_view(api)
        round_seconds = settings.price_simulator.interval_seconds
        while (waited := time.monotonic() - running) < JOURNEY_SECONDS or len(rounds) < 3:
            assert waited < 2 * JOURNEY_SECONDS, f"the board moved {len(rounds)} times"
            newest = wait_until(  # every round moves the board: none is missed for long
                "the next simulator round on /prices/live",
                lambda: (n := newest_observed(api)) != rounds[-1] and n,
                timeout=4 * round_seconds + 60,  # a busy box: the seeded weeks go first
            )
            rounds.append(newest)
            if len(rounds) == 3:  # the tabs and insights once the stack has run a little
                check_tabs(api, settings, series)
                check_insights(api, series)
        assert rounds == sorted(rounds)
        # the first forecasts are fitted in the background once the seeded history is in gold
        wait_until("the first forecasts", lambda: forecast_of(api, series), FORECASTS_SECONDS)
        check_chart(api, series)
        check_alerts_are_news(settings, started)

        status = run(env, "status", "pipeline")
        assert "silver: " in status.stdout and "records behind in Kafka" in status.stdout
        status = run(env, "status")
        assert status.returncode == 0 and status.stdout.count("healthy") == len(SERVICES)
        assert httpx.get(f"{api}/ready", timeout=10).json()["status"] == "ready"
        assert faults(settings.paths.log_dir) == []
        procs = _family(tmp_path / "run")
        assert len(procs) >= len(SERVICES)
    finally:
        down = run(env, "down")
    assert down.returncode == 0, down.stderr
    still_alive = [p for p in procs if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert still_alive == []
    stopped = run(env, "status")
    assert stopped.returncode == 1
    assert stopped.stdout.count("stopped") == len(SERVICES)
    # the stop interrupted whatever batch ran: replayed at the next start, not an error
    assert faults(settings.paths.log_dir) == []


def test_free_ports_are_distinct_and_below_the_ephemeral_range():
    """A stack's ports are chosen where no outgoing connection's source port can land between
    the choice and the service's bind (``free_ports``), and each one can be bound."""
    ports = free_ports(12)
    assert len(set(ports)) == 12
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert all(port < low for port in ports)
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_free_ports_stay_within_the_share_a_session_is_given(monkeypatch: pytest.MonkeyPatch):
    """``./run.sh test`` runs two sessions side by side, each in its own share of the ports."""
    monkeypatch.setenv(PORTS_VARIABLE, "20100-20139")
    ports = free_ports(5)
    assert len(set(ports)) == 5 and all(20100 <= port <= 20139 for port in ports)
    monkeypatch.setenv(PORTS_VARIABLE, "20100-20100")
    with pytest.raises(RuntimeError, match=r"fewer than 2 free ports in range\(20100, 20101\)"):
        free_ports(2)


def test_shares_of_the_ports_are_disjoint_and_within_the_session_s(
    monkeypatch: pytest.MonkeyPatch,
):
    """The workers of ``./run.sh test --fast`` each choose in a share of the session's ports."""
    monkeypatch.setenv(PORTS_VARIABLE, "20000-20999")
    shares = [share_of_ports(i, 3) for i in range(3)]
    assert shares == ["20000-20332", "20333-20665", "20666-20998"]
    monkeypatch.setenv(PORTS_VARIABLE, shares[1])
    assert all(20333 <= port <= 20665 for port in free_ports(5))


def test_port_taken_fails_fast_and_says_what_to_change(tmp_path: Path):
    env = {**os.environ, **stack_env(str(tmp_path))}
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(env["SMARTMARKET_MQTT__PORT"])))
        squatter.listen()
        result = run(env, "up", "mosquitto", timeout=120)
    port = env["SMARTMARKET_MQTT__PORT"]
    assert result.returncode == 2
    assert f"port {port} (mqtt.port) is already taken" in result.stderr
    assert "SMARTMARKET_MQTT__PORT" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("service", "key"),
    [
        (Pipeline, "pipeline_metrics.port"),
        (Bridge, "bridge_metrics.port"),
        (KafkaBroker, "prometheus.kafka_jmx_port"),
    ],
)
def test_a_taken_metrics_port_fails_before_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, service: type[Service], key: str
):
    for name, value in stack_env(str(tmp_path)).items():
        monkeypatch.setenv(name, value)
    env = "SMARTMARKET_" + key.upper().replace(".", "__")
    port = int(os.environ[env])
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        with pytest.raises(ConfigError, match=rf"port {port} \({key}\) is already taken.*{env}"):
            service(load_settings()).check_ports()


def test_missing_java_fails_fast(tmp_path: Path):
    env = {**os.environ, **stack_env(str(tmp_path)), "PATH": str(tmp_path / "empty-bin")}
    env.pop("JAVA_HOME", None)
    python = str(PROJECT_ROOT / ".venv" / "bin" / "python")
    result = subprocess.run(
        [python, "-m", "scripts.cli", "up", "kafka"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 2
    assert "error: Java not found" in result.stderr
    assert "JAVA_HOME" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("kind", ["directory", "missing"])
def test_unreadable_conf_file_fails_fast(tmp_path: Path, kind: str):
    conf = tmp_path / "settings.yaml"
    if kind == "directory":
        conf.mkdir()
    env = {**os.environ, "SMARTMARKET_CONFIG": str(conf)}
    result = run(env, "status", timeout=60)
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: cannot read configuration file {conf}")
    assert "Traceback" not in result.stderr


def test_unknown_service_is_named(tmp_path: Path):
    env = {**os.environ, **stack_env(str(tmp_path))}
    result = run(env, "logs", "zookeeper", timeout=60)
    assert result.returncode == 2
    assert "unknown service 'zookeeper'" in result.stderr
    assert "kafka" in result.stderr
