"""The serving API (uvicorn)."""

from __future__ import annotations

import sys

from scripts.services.base import Health, Service, http_ok
from scripts.services.kafka_broker import KafkaBroker


class Api(Service):
    """The serving API (uvicorn + FastAPI)."""

    name = "api"
    port_keys = ("api.port",)
    needs = (KafkaBroker,)
    factory = "serving_api.app:create_app"  # what uvicorn calls (--factory) for the app

    def ports(self) -> list[int]:
        return [self.settings.api.port]

    def endpoint(self) -> str:
        return self.settings.api.url

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            self.factory,
            "--host",
            self.host,
            "--port",
            str(self.settings.api.port),
            "--workers",
            str(self.settings.api.workers),
            "--loop",
            "uvloop",
            "--http",
            "httptools",
            "--no-access-log",
        ]

    def health(self) -> Health:
        return http_ok(f"http://{self.host}:{self.settings.api.port}/health")
