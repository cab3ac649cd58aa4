"""The platform's own Python processes: each reports its state in a status file
(``lakehouse.io.status``) — the pipeline, the MQTT bridge, the simulators, the news feeds, the
first forecasts and the notifier."""

from __future__ import annotations

import sys
import time

from lakehouse.io.status import STALE_SECONDS, read_status, status_path
from scripts.services.base import Health, Service
from scripts.services.java import java_binary
from scripts.services.kafka_broker import KafkaBroker
from scripts.services.mlflow_server import MlflowServer
from scripts.services.mqtt_broker import Mosquitto
from scripts.services.spark_cluster import SparkMaster, SparkWorker


class StatusFileService(Service):
    """A Python process of ours that reports its state in a status file (lakehouse.io.status)."""

    module: str = ""

    def ports(self) -> list[int]:
        return []

    def prepare(self) -> None:
        status_path(self.settings, self.name).unlink(missing_ok=True)

    def command(self) -> list[str]:
        return [sys.executable, "-m", self.module]

    def check_status(self, status: dict) -> Health:
        """Service-specific verdict on a fresh, running status."""
        return Health(True, status.get("detail", "running"))

    def health(self) -> Health:
        status = read_status(self.settings, self.name)
        if status is None:
            return Health(False, "no status reported yet")
        age = time.time() - status["updated_at"]
        if status["state"] != "running" or age > STALE_SECONDS:
            return Health(False, f"state={status['state']}, last report {age:.0f}s ago")
        return self.check_status(status)


class Pipeline(StatusFileService):
    """The Spark application running the Structured Streaming queries (streaming_jobs.main)."""

    name = "pipeline"
    module = "streaming_jobs.main"
    needs = (KafkaBroker, SparkMaster, SparkWorker)
    signal_group = False  # the driver stops its queries, then its JVM

    def endpoint(self) -> str:
        return f"lakehouse {self.settings.paths.lakehouse_root}"

    def metrics_ports(self) -> dict[str, int]:
        metrics = self.settings.pipeline_metrics
        return {"pipeline_metrics.port": metrics.port} if metrics.enabled else {}

    def prepare(self) -> None:
        java_binary()
        super().prepare()

    def check_status(self, status: dict) -> Health:
        inactive = [q["name"] for q in status["queries"] if not q["active"]]
        if inactive:
            return Health(False, f"inactive queries: {inactive}")
        return Health(True, f"{len(status['queries'])} queries active")


class Bridge(StatusFileService):
    """MQTT → Kafka bridge (producers.mqtt_bridge)."""

    name = "bridge"
    module = "producers.mqtt_bridge"
    needs = (KafkaBroker, Mosquitto)

    def endpoint(self) -> str:
        m, k = self.settings.mqtt, self.settings.kafka
        return f"{m.topic_root}/+/devices/+/+ -> {k.topics.sensors}"

    def metrics_ports(self) -> dict[str, int]:
        metrics = self.settings.bridge_metrics
        return {"bridge_metrics.port": metrics.port} if metrics.enabled else {}

    def check_status(self, status: dict) -> Health:
        return Health(status.get("connected", False), f"{status.get('forwarded', 0)} forwarded")


class Devices(StatusFileService):
    """Simulated market sensor devices publishing to MQTT (producers.devices)."""

    name = "devices"
    module = "producers.devices"
    needs = (Mosquitto,)

    def enabled(self) -> bool:
        return self.settings.simulator.enabled

    def endpoint(self) -> str:
        sim = self.settings.simulator
        return f"{sim.devices_per_market}/market every {sim.interval_seconds:g}s"


class PriceFeed(StatusFileService):
    """Real price history as the markets' past and today (producers.price_simulator); on unless
    ``price_simulator.enabled`` is false."""

    name = "prices"
    module = "producers.price_simulator"
    needs = (KafkaBroker,)

    def enabled(self) -> bool:
        return self.settings.price_simulator.enabled

    def endpoint(self) -> str:
        sim = self.settings.price_simulator
        where = f"{sim.markets} markets" if sim.markets else "every market"
        return (
            f"{where} in turns, {sim.markets_per_round} every {sim.interval_seconds:g}s"
            f" -> {self.settings.kafka.topics.prices}"
        )


class SupplyFeed(StatusFileService):
    """The simulated supply chain's stock and shipment reports as they happen
    (producers.supply_sim); on unless ``supply_simulator.enabled`` is false."""

    name = "supply"
    module = "producers.supply_sim"
    needs = (KafkaBroker,)

    def enabled(self) -> bool:
        return self.settings.supply_simulator.enabled

    def endpoint(self) -> str:
        sim = self.settings.supply_simulator
        topic = self.settings.kafka.topics.supply
        return f"simulated entities every {sim.interval_seconds:g}s -> {topic}"


class FirstForecasts(StatusFileService):
    """The first forecasts of a fresh stack, once the seeded history is in gold
    (ml.first_forecasts); runs with the price simulator's history."""

    name = "forecasts"
    module = "ml.first_forecasts"
    needs = (Pipeline, MlflowServer)

    def enabled(self) -> bool:
        sim = self.settings.price_simulator
        return sim.enabled and sim.seed_days > 0

    def endpoint(self) -> str:
        return "first gold.forecasts, then idle"


class NotifierService(StatusFileService):
    """Alert notifications to webhooks, Telegram, WhatsApp and e-mail, and to the users'
    subscriptions (streaming_jobs.alerts.notifier); runs when ``alerts.channels`` lists at least one
    channel (a subscription's e-mail, Telegram or WhatsApp goes through the channel of its
    kind)."""

    name = "notifier"
    module = "streaming_jobs.alerts.notifier"
    needs = (Pipeline,)

    def enabled(self) -> bool:
        return bool(self.settings.alerts.channels)

    def endpoint(self) -> str:
        return "alerts -> " + ", ".join(c.name for c in self.settings.alerts.channels)

    def check_status(self, status: dict) -> Health:
        return Health(
            True,
            f"{status.get('delivered', 0)} delivered, {status.get('undelivered', 0)} undelivered,"
            f" {status.get('retrying', 0)} retrying",
        )


class NewsFeeds(StatusFileService):
    """The feed collector (producers.news_feeds): polls the RSS/Atom feeds of ``news.feeds``
    and replays the headlines of ``news.replay_file``, each item once; runs when there is
    either."""

    name = "news_feeds"
    module = "producers.news_feeds"
    needs = (KafkaBroker,)

    def enabled(self) -> bool:
        return bool(self.settings.news.feeds) or self.settings.news.replay_file is not None

    def endpoint(self) -> str:
        news = self.settings.news
        replay = f" + {news.replay_file.name}" if news.replay_file else ""
        return f"{len(news.feeds)} feeds{replay} -> {self.settings.kafka.topics.news}"
