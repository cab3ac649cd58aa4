"""Mosquitto, the MQTT broker the devices publish to."""

from __future__ import annotations

import shutil
from pathlib import Path

from lakehouse.config.settings import ConfigError
from scripts.services.base import Health, Service, tcp_open


class Mosquitto(Service):
    """The MQTT broker the market sensor devices publish to."""

    name = "mosquitto"
    port_keys = ("mqtt.port",)

    @property
    def home(self) -> Path:
        return self.settings.paths.data_dir / "mosquitto"

    def ports(self) -> list[int]:
        return [self.settings.mqtt.port]

    def endpoint(self) -> str:
        return f"mqtt://{self.settings.mqtt.host}:{self.settings.mqtt.port}"

    def _binary(self) -> str:
        found = shutil.which("mosquitto") or shutil.which("mosquitto", path="/usr/sbin:/sbin")
        if not found:
            raise ConfigError(
                "mosquitto not found: run `./run.sh setup` (it installs it with apt-get) "
                "or `apt-get install mosquitto`."
            )
        return found

    def prepare(self) -> None:
        # the device registry (SQLAlchemy, Alembic) only here, not at every command's start
        from lakehouse.domain.accounts.broker_auth import broker_config

        self._binary()
        self.home.mkdir(parents=True, exist_ok=True)
        (self.home / "mosquitto.conf").write_text(broker_config(self.settings, self.host))

    def command(self) -> list[str]:
        return [self._binary(), "-c", str(self.home / "mosquitto.conf")]

    def health(self) -> Health:
        return tcp_open(self.host, self.settings.mqtt.port)
