"""A Spark standalone cluster of a master and workers (``./run.sh up --cluster N``)."""

from __future__ import annotations

from pathlib import Path

import httpx

from lakehouse.config.settings import Settings
from lakehouse.io.spark import CLUSTER_LOG_CONFIG, cluster_marker
from scripts.services.base import Health, Service
from scripts.services.java import java_binary


class SparkDaemon(Service):
    """A JVM of the embedded standalone cluster, run by pyspark's own ``spark-class``."""

    main_class: str = ""

    @property
    def host(self) -> str:
        return self.settings.spark.cluster.host

    @property
    def master_ui(self) -> str:
        return f"http://{self.host}:{self.settings.spark.cluster.ui_port}"

    def arguments(self) -> list[str]:
        raise NotImplementedError

    def command(self) -> list[str]:
        import pyspark

        spark_class = Path(pyspark.__file__).parent / "bin" / "spark-class"
        return [str(spark_class), self.main_class, *self.arguments()]

    def environment(self) -> dict[str, str]:
        import pyspark

        return {
            "SPARK_HOME": str(Path(pyspark.__file__).parent),
            "SPARK_DAEMON_MEMORY": self.settings.spark.cluster.daemon_memory,
            # the JIT's first tier only: the master and the workers pass messages and launch
            # executors, nothing a C2 compilation would repay
            "SPARK_DAEMON_JAVA_OPTS": f"-Dlog4j2.configurationFile={CLUSTER_LOG_CONFIG} "
            "-XX:TieredStopAtLevel=1",
            # every socket of the daemons and their executors (web UIs too) on this address
            "SPARK_LOCAL_IP": self.host,
        }

    def prepare(self) -> None:
        java_binary()

    def master_state(self) -> dict | None:
        """The master's view of the cluster (its JSON status page), None if it does not answer."""
        try:
            response = httpx.get(f"{self.master_ui}/json/", timeout=2.0)
            return response.json() if response.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None


def cluster_workers(settings: Settings) -> int:
    """Workers of the embedded cluster: as configured (``up --cluster N``), or as many as run."""
    running = [
        p.stem.removeprefix("spark-worker-")
        for p in settings.paths.run_dir.glob("spark-worker-*.pid")
    ]
    return max([settings.spark.cluster.workers, *(int(n) for n in running if n.isdigit())])


class SparkMaster(SparkDaemon):
    """Master of the embedded standalone cluster; while it runs, Spark applications that are
    configured with a local master use it (lakehouse.io.spark.master_url)."""

    name = "spark-master"
    port_keys = ("spark.cluster.master_port", "spark.cluster.ui_port")
    main_class = "org.apache.spark.deploy.master.Master"

    def enabled(self) -> bool:
        return cluster_workers(self.settings) > 0 or self.process() is not None

    def ports(self) -> list[int]:
        c = self.settings.spark.cluster
        return [c.master_port, c.ui_port]

    def endpoint(self) -> str:
        return f"{self.settings.spark.cluster.master_url} (UI {self.master_ui}/)"

    def arguments(self) -> list[str]:
        c = self.settings.spark.cluster
        return ["--host", c.host, "--port", str(c.master_port), "--webui-port", str(c.ui_port)]

    def health(self) -> Health:
        state = self.master_state()
        if state is None or state.get("status") != "ALIVE":
            return Health(False, f"{self.master_ui}/json/ does not report ALIVE")
        alive = sum(w["state"] == "ALIVE" for w in state.get("workers", []))
        return Health(True, f"{alive} worker(s) alive")

    def after_start(self) -> None:
        cluster_marker(self.settings).write_text(self.settings.spark.cluster.master_url)

    def before_stop(self) -> None:
        cluster_marker(self.settings).unlink(missing_ok=True)


class SparkWorker(SparkDaemon):
    """Worker ``number`` (from 1) of the embedded cluster; its executors are its children."""

    port_keys = ("spark.cluster.worker_ui_port",)
    main_class = "org.apache.spark.deploy.worker.Worker"
    needs = (SparkMaster,)

    def __init__(self, settings: Settings, number: int = 1) -> None:
        super().__init__(settings)
        self.number = number
        self.name = f"spark-worker-{number}"

    @classmethod
    def instances(cls, settings: Settings) -> list[Service]:
        return [cls(settings, n) for n in range(1, cluster_workers(settings) + 1)]

    @property
    def ui_port(self) -> int:
        return self.settings.spark.cluster.worker_ui_port + self.number - 1

    def ports(self) -> list[int]:
        return [self.ui_port]

    def endpoint(self) -> str:
        c = self.settings.spark.cluster
        return (
            f"{c.worker_cores} core(s), {c.worker_memory} (UI http://{self.host}:{self.ui_port}/)"
        )

    def arguments(self) -> list[str]:
        c = self.settings.spark.cluster
        work = self.settings.paths.data_dir / "spark" / self.name
        work.mkdir(parents=True, exist_ok=True)
        return [
            "--host",
            c.host,
            "--cores",
            str(c.worker_cores),
            "--memory",
            c.worker_memory,
            "--webui-port",
            str(self.ui_port),
            "--work-dir",
            str(work),
            c.master_url,
        ]

    def environment(self) -> dict[str, str]:
        """The daemon's, and the worker removes the folders of applications that ended (their
        executors' logs among them) once they are a week old."""
        return {**super().environment(), "SPARK_WORKER_OPTS": "-Dspark.worker.cleanup.enabled=true"}

    def health(self) -> Health:
        workers = (self.master_state() or {}).get("workers", [])
        mine = [w for w in workers if w.get("webuiaddress", "").endswith(f":{self.ui_port}")]
        if any(w["state"] == "ALIVE" for w in mine):
            return Health(True, "registered with the master")
        return Health(False, "not registered with the master")
