"""The MLflow tracking server of the forecasts' runs and registered models."""

from __future__ import annotations

import sys
from pathlib import Path

from scripts.services.base import Health, Service, http_ok

#: MLflow's switch of its server's job runner
JOB_EXECUTION = "MLFLOW_SERVER_ENABLE_JOB_EXECUTION"


class MlflowServer(Service):
    """MLflow tracking server: SQLite backend store, local artifact folder."""

    name = "mlflow"
    port_keys = ("mlflow.port",)

    @property
    def home(self) -> Path:
        return self.settings.paths.data_dir / "mlflow"

    def ports(self) -> list[int]:
        return [self.settings.mlflow.port]

    def endpoint(self) -> str:
        return self.settings.mlflow.tracking_uri

    def prepare(self) -> None:
        (self.home / "artifacts").mkdir(parents=True, exist_ok=True)

    def environment(self) -> dict[str, str]:
        """Without MLflow 3's job runner (GenAI evaluation, trace roll-ups; nothing of ours): by
        default the server starts seven ``huey`` consumer processes that poll their queues —
        about half a core of the box's two, idle."""
        return {JOB_EXECUTION: "false"}

    def command(self) -> list[str]:
        return [
            str(Path(sys.executable).parent / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{self.home / 'mlflow.db'}",
            "--artifacts-destination",
            str(self.home / "artifacts"),
            "--host",
            self.host,
            "--port",
            str(self.settings.mlflow.port),
            "--workers",
            "1",
        ]

    def health(self) -> Health:
        return http_ok(f"http://{self.host}:{self.settings.mlflow.port}/health")
