"""The Prometheus server that scrapes the stack."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from lakehouse.config.settings import ConfigError
from scripts.prometheus_config import (
    config_text,
    write_scrape_token,
)
from scripts.services.base import Health, Service, http_ok

log = logging.getLogger(__name__)


class PrometheusServer(Service):
    """Prometheus (Debian's ``prometheus`` package): scrapes the API, the pipeline, the MQTT
    bridge and the Kafka broker's JMX exporter, evaluates ``conf/prometheus/rules.yml``; its data in
    ``<data_dir>/prometheus``."""

    name = "prometheus"
    port_keys = ("prometheus.port",)

    def enabled(self) -> bool:
        return self.settings.prometheus.enabled

    @property
    def home(self) -> Path:
        return self.settings.paths.data_dir / "prometheus"

    @property
    def config_file(self) -> Path:
        return self.home / "prometheus.yml"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.settings.prometheus.port}"

    def ports(self) -> list[int]:
        return [self.settings.prometheus.port]

    def endpoint(self) -> str:
        return f"{self.url}/"

    def _binary(self) -> str:
        found = shutil.which("prometheus")
        if not found:
            raise ConfigError(
                "prometheus not found: run `./run.sh setup` (it installs it with apt-get) "
                "or `apt-get install prometheus`."
            )
        return found

    def prepare(self) -> None:
        self._binary()
        (self.home / "data").mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(config_text(self.settings))
        write_scrape_token(self.settings)

    def command(self) -> list[str]:
        p = self.settings.prometheus
        return [
            self._binary(),
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.home / 'data'}",
            f"--storage.tsdb.retention.time={p.retention}",
            f"--web.listen-address={self.host}:{p.port}",
            "--log.level=warn",
        ]

    def health(self) -> Health:
        return http_ok(f"{self.url}/-/ready")
