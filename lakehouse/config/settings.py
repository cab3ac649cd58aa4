"""One typed settings object for every component.

Values come, lowest priority first, from the defaults below, ``conf/settings.yaml`` (or the file
named by ``SMARTMARKET_CONFIG``), then environment variables ``SMARTMARKET_<SECTION>__<KEY>``
(one name per setting: the lakehouse root is ``SMARTMARKET_PATHS__LAKEHOUSE_ROOT``). Relative
paths resolve against the project folder, so commands behave the same from any working
directory.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from lakehouse.config.secrets import secret
from lakehouse.config.yaml_text import parse_yaml

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CONF_DIR = PROJECT_ROOT / "conf"
DATASETS_DIR = PROJECT_ROOT / "datasets"  # the real sample data shipped with the project
SAMPLE_PRICES = DATASETS_DIR / "prices_pihps_daily_2024_2025.csv"  # PIHPS daily, long format
#: PIHPS daily province averages, 34 provinces × 10 commodities: the forecasting panel
#: (ml.series.panel_series) and the prices service's province averages (price_simulator)
PROVINCE_PANEL = DATASETS_DIR / "prices_pihps_province_daily_2022_2024.csv.gz"
CONFIG_ENV = "SMARTMARKET_CONFIG"


class ConfigError(RuntimeError):
    """The configuration cannot be used; the message says what to fix."""


M = TypeVar("M", bound=BaseModel)


def yaml_model(path: Path, model: type[M], what: str) -> M:
    """The YAML file ``path`` validated as ``model``; ConfigError naming ``what`` it holds."""
    try:
        return model.model_validate(parse_yaml(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"invalid {what} file {path}: {exc}") from exc


_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_uri(location: str | Path) -> bool:
    """Whether ``location`` names a store by URI (``s3a://bucket/prefix``) rather than a local
    folder."""
    return isinstance(location, str) and bool(_URI.match(location))


class Paths(BaseModel):
    """Local folders; the lakehouse and checkpoint roots may also be URIs (``s3a://bucket/x``,
    see docs/storage.md), kept as text and never joined as paths."""

    data_dir: Path = Path("data")
    lakehouse_root: Path | str = Path("data/lakehouse")
    checkpoint_root: Path | str = Path("data/checkpoints")
    jvm_lib_dir: Path = Path("jvm/lib")
    #: reference data, rules and formats (``lakehouse.catalog.conf``); settings.yaml is found
    #: before this is known, through ``SMARTMARKET_CONFIG``
    conf_dir: Path = Path("conf")

    def model_post_init(self, _context: Any) -> None:
        for name in type(self).model_fields:
            value: Path | str = getattr(self, name)
            if is_uri(value):
                setattr(self, name, str(value).rstrip("/"))
            elif not Path(value).is_absolute():
                setattr(self, name, (PROJECT_ROOT / value).resolve())
            else:
                setattr(self, name, Path(value))

    @property
    def run_dir(self) -> Path:
        """Pid files and status files of running services."""
        return self.data_dir / "run"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "logs"


class Topics(BaseModel):
    prices: str = "market.prices"
    sensors: str = "market.sensors"
    deadletter: str = "market.deadletter"
    reviews: str = "market.reviews"  # operators' decisions on held prices (the review API)
    supply: str = "market.supply"  # stock and shipment events (the supply query reads it alone)
    news: str = "market.news"  # news headlines (issue 36), read by their own streaming query

    def all(self) -> list[str]:
        return [self.prices, self.sensors, self.deadletter, self.reviews, self.supply, self.news]

    def of_price_pipeline(self) -> list[str]:
        """The topics the price/sensor silver query reads: all but those of domains with a
        streaming query of their own (supply, news)."""
        return [t for t in self.all() if t not in (self.supply, self.news)]


class KafkaSettings(BaseModel):
    embedded: bool = True
    host: str = "localhost"
    port: int = Field(9092, ge=1, le=65535)
    controller_port: int = Field(9093, ge=1, le=65535)
    bootstrap_servers: str = ""
    heap: str = "512m"
    java_options: str = ""
    partitions: int = Field(3, ge=1)
    nodes: int = Field(1, ge=1)
    replication_factor: int | None = Field(None, ge=1)
    min_insync_replicas: int | None = Field(None, ge=1)
    topics: Topics = Topics()
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    sasl_username: str = ""
    ssl_ca: Path | None = None
    ssl_cert: Path | None = None
    ssl_key: Path | None = None
    ssl_check_hostname: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSettings:
        if (self.ssl_cert is None) != (self.ssl_key is None):
            raise ValueError("ssl_cert and ssl_key go together (a client certificate and its key)")
        if self.min_isr > self.replicas:
            raise ValueError("min_insync_replicas cannot exceed replication_factor")
        if self.embedded and self.replicas > self.nodes:
            raise ValueError(
                f"replication_factor {self.replicas} needs as many nodes (nodes: {self.nodes})"
            )
        return self

    @property
    def replicas(self) -> int:
        """Replication factor of the topics: as set, else up to 3 nodes of the embedded cluster."""
        return self.replication_factor or (min(self.nodes, 3) if self.embedded else 1)

    @property
    def min_isr(self) -> int:
        """Replicas that must have a write before it is confirmed: as set, else all but one."""
        return self.min_insync_replicas or max(1, self.replicas - 1)

    def node_ports(self, node: int) -> tuple[int, int]:
        """(client, controller) port of embedded node ``node`` (from 1): two ports on per node."""
        return self.port + 2 * (node - 1), self.controller_port + 2 * (node - 1)

    @property
    def bootstrap(self) -> str:
        """Bootstrap servers clients connect to."""
        if self.bootstrap_servers:
            return self.bootstrap_servers
        nodes = range(1, self.nodes + 1)
        return ",".join(f"{self.host}:{self.node_ports(n)[0]}" for n in nodes)


class StorageSettings(BaseModel):
    """An S3-compatible object store for an ``s3a://`` lakehouse (AWS S3, MinIO, R2, …), for
    Spark (hadoop-aws) and delta-rs alike. Credentials are secrets (``storage.access_key_id``,
    ``storage.secret_access_key``: see lakehouse.config.secrets); without them each client falls
    back
    to the AWS default chain (AWS_* variables, instance role)."""

    endpoint: str = Field("", pattern=r"^(https?://.*)?$")  # empty: AWS S3 of the region
    region: str = "us-east-1"
    path_style: bool = False  # bucket in the path, not the host name: MinIO and most others


class MqttSettings(BaseModel):
    host: str = "localhost"
    port: int = Field(1883, ge=1, le=65535)
    topic_root: str = "markets"
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    broker_cert: Path | None = None
    broker_key: Path | None = None


class ProducerSettings(BaseModel):
    watch_poll_seconds: float = Field(1.0, gt=0)
    bridge_client_id: str = "smartmarket-bridge"


class SimulatorSettings(BaseModel):
    enabled: bool = True
    devices_per_market: int = Field(3, ge=1)
    interval_seconds: float = Field(30.0, gt=0)
    fault_rate: float = Field(0.0, ge=0, le=1)


class MlflowSettings(BaseModel):
    host: str = "localhost"
    port: int = Field(5000, ge=1, le=65535)
    experiment: str = "smart-market"

    @property
    def tracking_uri(self) -> str:
        return f"http://{self.host}:{self.port}"


#: roles of users and API keys: reader reads, ingest posts prices, central reads and audits (the
#: price ledger), operator also manages devices, admin does everything
Role = Literal["admin", "operator", "central", "reader", "ingest"]


class ApiKey(BaseModel):
    """An API key as stored in configuration: only its SHA-256, never the key itself."""

    name: str = Field(min_length=1)
    role: Role
    sha256: str = Field(pattern="^[0-9a-f]{64}$")


class ApiSettings(BaseModel):
    host: str = "localhost"
    port: int = Field(8000, ge=1, le=65535)
    workers: int = Field(1, ge=1)
    open_reads: bool = True
    keys: list[ApiKey] = []
    cache_check_ms: float = Field(50, ge=0)
    alerts_poll_seconds: float = Field(0.25, gt=0)
    prices_poll_seconds: float = Field(0.1, gt=0)
    max_body_bytes: int = Field(1_048_576, ge=1024)
    max_events_per_request: int = Field(1000, ge=1)
    ingest_timeout_seconds: float = Field(10, gt=0)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


class SparkClusterSettings(BaseModel):
    """The embedded standalone cluster of `./run.sh up --cluster N`: a master and N workers,
    each its own JVM on this machine (docs/cluster.md)."""

    workers: int = Field(0, ge=0)
    host: str = "127.0.0.1"
    master_port: int = Field(7077, ge=1, le=65535)
    ui_port: int = Field(8080, ge=1, le=65535)
    worker_ui_port: int = Field(8081, ge=1, le=65535)
    worker_cores: int = Field(1, ge=1)
    worker_memory: str = "1g"
    daemon_memory: str = "256m"

    @property
    def master_url(self) -> str:
        return f"spark://{self.host}:{self.master_port}"


class SparkSettings(BaseModel):
    master: str = "local[2]"
    driver_host: str = "127.0.0.1"
    driver_bind_address: str = "127.0.0.1"
    driver_port: int = Field(0, ge=0, le=65535)
    block_manager_port: int = Field(0, ge=0, le=65535)
    executor_memory: str = "1g"
    executor_cores: int = Field(1, ge=1)
    cluster: SparkClusterSettings = SparkClusterSettings()
    app_name: str = "smart-market-pipeline"
    driver_memory: str = "2g"
    shuffle_partitions: int = Field(2, ge=1)
    ui_port: int = Field(4040, ge=1, le=65535)
    trigger_seconds: float = Field(0.25, gt=0)
    gold_trigger_seconds: float = Field(0.25, gt=0)
    gold_interval_seconds: float = Field(60.0, ge=0)
    gold_yield_seconds: float = Field(30.0, ge=0)
    #: added to the pipeline process's nice value (its JVM and Python workers inherit it): on a
    #: box shared with the API and Kafka, they get the CPU first when they need it
    niceness: int = Field(10, ge=0, le=19)
    max_offsets_per_trigger: int = Field(200_000, ge=1)
    #: how long the broker holds the Kafka source's idle fetch (bronze.read_kafka)
    fetch_max_wait_ms: int = Field(10, ge=0)
    #: groups of series the silver query's stateful step judges together (series_judge); the
    #: state is kept per group, so another count starts the series' history again
    series_buckets: int = Field(16, ge=1)
    #: where the silver query's statistical rules run: pandas (series_judge) or the JVM
    #: (jvm/series-judge, through streaming_jobs.jvm_judge); the same verdicts, another state
    judge: Literal["python", "jvm"] = "jvm"
    #: the streaming queries the pipeline runs (streaming_jobs.main): the medallion pair alone
    #: where no supply or news events are published; gold reads silver's commits, so not
    #: without it
    queries: list[Literal["silver", "gold", "supply", "news"]] = Field(
        ["silver", "gold", "supply", "news"], min_length=1
    )
    conf: dict[str, str] = {}

    @model_validator(mode="after")
    def _gold_follows_silver(self) -> SparkSettings:
        if "gold" in self.queries and "silver" not in self.queries:
            raise ValueError("spark.queries: gold reads silver's commits; add silver")
        return self


class Hyperparameters(BaseModel):
    """Hyper-parameters of the tree models, passed as keyword arguments to the estimator
    (``ml.hyperparameters`` in conf/settings.yaml; empty: the library's defaults). Threads
    (one: the parallelism is across series) and the seed (``ml.seed``) are set by the code."""

    xgboost: dict[str, int | float] = {}  # XGBRegressor of xgboost, xgboost_damped and combo
    lgbm_global: dict[str, int | float] = {}  # LGBMRegressor of the global model (ml.global_model)


class SelectionSettings(BaseModel):
    """When a candidate replaces naive (``ml.selection``, applied by ``ml/selection.py``): its
    per-origin MAPE must beat naive's by ``margin`` (a share) with a one-sided Diebold–Mariano
    p-value below ``significance`` (Bonferroni: divided by the number of candidates tested) over
    at least ``min_origins`` origins, the series of a ``level`` group pooled per origin."""

    level: Literal["series", "commodity"] = "commodity"
    min_origins: int = Field(26, ge=2)
    margin: float = Field(0.02, ge=0, lt=1)
    significance: float = Field(0.05, gt=0, lt=1)


class SurgeModelSettings(BaseModel):
    """The surge classifier (``ml.surge_model``): one LightGBM classifier over every series of
    a run, on features known at the origin, calibrated and given its warning threshold on the
    latest origins before the fit's cutoff (meaning of each knob in conf/settings.yaml)."""

    enabled: bool = True
    returns: list[int] = [1, 3, 7, 14, 28]  # days of the trailing log returns
    volatility_days: list[int] = [7, 28]  # windows of the daily log returns' standard deviation
    level_days: list[int] = [28, 90]  # windows of the distance to the rolling median / max / min
    neighbours: int = Field(3, ge=0)  # nearest provinces (by centroid) whose moves are a feature
    origin_step_days: int = Field(2, ge=1)  # training origins: one every this many days
    calibration_weeks: int = Field(8, ge=4)  # latest weeks before the cutoff: calibrate, not fit
    refit_origins: int = Field(4, ge=1)  # backtest: one fit per this many scored origins
    min_surges: int = Field(30, ge=1)  # surges among the fit's rows needed to train at all
    top_features: int = Field(3, ge=1)  # features named in a warning's explanation
    hyperparameters: dict[str, int | float] = {}  # of its LGBMClassifier


class MlSettings(BaseModel):
    horizon: int = Field(7, ge=1, le=60)
    min_history_days: int = Field(120, ge=14)
    origins: int = Field(38, ge=2)
    selection_origins: int = Field(26, ge=1)
    fit_every_origins: int = Field(4, ge=1)  # backtest: ETS, Theta, global model fitted this often
    models: list[str] = ["naive", "ets", "lgbm_global"]
    selection: SelectionSettings = SelectionSettings()
    calibration_days: int = Field(182, ge=14)
    retrain_min_new_rows: int = Field(500, ge=1)
    n_jobs: int = Field(2, ge=1)
    registered_model: str = "smartmarket-forecaster"
    seed: int = 42
    hyperparameters: Hyperparameters = Hyperparameters()
    surge_rise: float = Field(0.1, gt=0)  # a surge: ≥ this rise over the last price in horizon
    surge_precision: float = Field(0.6, gt=0, le=1)  # the warning threshold's precision (ml.surge)
    # the exogenous feature families of the global model (ml.exogenous; weather: measured off)
    global_exogenous: list[Literal["weather", "news", "supply"]] = ["news", "supply"]
    # the global model's own feature families (ml.global_model), each measured on the panel
    global_features: list[Literal["region", "scaled", "momentum"]] = []
    surge_model: SurgeModelSettings = SurgeModelSettings()  # the surge classifier (ml.surge_model)

    @field_validator("models")
    @classmethod
    def _some_models(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("list at least one model, e.g. [naive]")
        return value

    @model_validator(mode="after")
    def _scored_origins_left(self) -> MlSettings:
        if self.selection_origins >= self.origins:
            raise ValueError("selection_origins must be smaller than origins")
        return self


class ServiceSettings(BaseModel):
    start_timeout_seconds: float = Field(120, gt=0)
    stop_timeout_seconds: float = Field(30, gt=0)
    restart_backoff_seconds: float = Field(1.0, gt=0)
    restart_backoff_max_seconds: float = Field(60.0, gt=0)
    log_max_bytes: int = Field(10_000_000, ge=1024)
    log_backups: int = Field(3, ge=0)
    niceness: int = Field(0, ge=0, le=19)  # every service this much below the default


class AnomalySettings(BaseModel):
    """Knobs of the anomaly models in ``ml.anomalies`` (meaning of each in conf/settings.yaml)."""

    temporal_floor: float = Field(0.55, ge=0, le=1)
    geographic_floor: float = Field(0.65, ge=0, le=1)
    window_days: int = Field(28, ge=3)
    return_lookback: int = Field(3, ge=1)
    min_history: int = Field(7, ge=2)
    n_estimators: int = Field(200, ge=10)
    max_samples: int = Field(256, ge=16)
    contamination: float = Field(0.01, gt=0, lt=0.5)
    random_state: int = 0
    geo_eps: float = Field(1.0, gt=0)
    geo_min_samples: int = Field(3, ge=2)
    geo_price_scale: float = Field(0.05, gt=0)
    geo_distance_km: float = Field(50.0, gt=0)
    geo_min_markets: int = Field(4, ge=3)


class ImpactSettings(BaseModel):
    """Knobs of the price-impact model in ``ml.impact`` (meaning of each in conf/settings.yaml)."""

    data_dir: Path = Path("datasets")
    holdout_months: int = Field(6, ge=1)
    min_rows: int = Field(24, ge=4)
    n_estimators: int = Field(200, ge=10)
    max_depth: int = Field(3, ge=1)
    learning_rate: float = Field(0.03, gt=0, le=1)
    subsample: float = Field(0.8, gt=0, le=1)
    min_child_weight: float = Field(30, ge=0)
    reg_lambda: float = Field(10, ge=0)
    random_state: int = 0
    ramadan_days: int = Field(30, ge=1)
    daily_resolution: Literal["W", "M"] = "W"
    holdout_weeks: int = Field(12, ge=1)
    min_child_weight_weekly: float = Field(10, ge=0)
    min_explained_r2: float = Field(0.3, le=1)

    def model_post_init(self, _context: Any) -> None:
        if not self.data_dir.is_absolute():
            self.data_dir = (PROJECT_ROOT / self.data_dir).resolve()


class AnalystSettings(BaseModel):
    """SQL over the lakehouse and table upkeep (`./run.sh query`, `tables`, `maintain`)."""

    default_engine: Literal["spark", "duckdb"] = "spark"
    retention_hours: float = Field(168, gt=0)
    min_retention_hours: float = Field(24, gt=0)
    table_rows: int = Field(200, ge=1)


class NotifierChannel(BaseModel):
    """Where alert notifications go: a generic webhook (HTTP POST of the alert as JSON), a
    Telegram bot (``<url>/bot<token>/sendMessage`` with chat_id/text), the WhatsApp Cloud API
    (``<url>`` = the phone number's ``/messages`` endpoint, bearer ``token``, recipient ``to``)
    or e-mail (``url`` = ``smtp://[user@]host:port``, or ``smtps://`` for TLS from the start;
    the password is ``token``; ``sender`` the From address, ``to`` the recipient). The channels
    of a kind also carry the subscriptions of that kind (their own recipients); a channel with
    ``broadcast: false`` carries only those."""

    name: str = Field(min_length=1)
    kind: Literal["webhook", "telegram", "whatsapp", "email"] = "webhook"
    url: str = Field(pattern=r"^(https?|smtps?)://")
    token: str = ""
    chat_id: str = ""
    to: str = ""
    sender: str = ""  # e-mail: the From address
    min_severity: Literal["warning", "critical"] = "warning"
    #: the text's language here (id, en or both); None: ``alerts.language``
    language: Literal["id", "en", "both"] | None = None
    #: every alert to this channel's own recipient; false: only subscriptions' deliveries
    broadcast: bool = True

    @model_validator(mode="after")
    def _scheme_fits_kind(self) -> NotifierChannel:
        if (self.kind == "email") != self.url.startswith("smtp"):
            raise ValueError(
                f"channel {self.name!r}: e-mail takes smtp(s)://, the others http(s)://"
            )
        if self.kind == "email" and not (self.sender and (self.to or not self.broadcast)):
            raise ValueError(
                f"channel {self.name!r}: e-mail needs a sender (From) and, to broadcast, a to"
            )
        return self


class AlertSettings(BaseModel):
    """Delivery of alerts (the rule thresholds live in conf/alerts.yaml)."""

    channels: list[NotifierChannel] = []
    language: Literal["id", "en", "both"] = "id"  # of the notifications' text
    poll_seconds: float = Field(1.0, gt=0)
    max_age_hours: float = Field(48.0, gt=0)
    max_attempts: int = Field(5, ge=1)
    backoff_seconds: float = Field(1.0, gt=0)
    backoff_max_seconds: float = Field(60.0, gt=0)
    timeout_seconds: float = Field(5.0, gt=0)
    digest_hour: int = Field(7, ge=0, le=23)  # local hour the subscriptions' daily digests go


class SecuritySettings(BaseModel):
    """Device registry, tokens, broker credentials and rate limits (see docs/security.md).
    Secrets themselves (the JWT key, notifier tokens) never live here: see
    lakehouse.config.secrets."""

    registry_url: str = ""
    secrets_file: Path | None = None
    token_minutes: float = Field(15, gt=0)
    device_token_days: float = Field(365, gt=0)
    mqtt_auth: bool = True
    registry_refresh_seconds: float = Field(2.0, gt=0)
    rate_limit_per_minute: int = Field(600, ge=0)
    rate_limit_burst: int = Field(100, ge=1)
    rate_limit_exempt: list[str] = ["127.0.0.1", "::1"]
    cors_origins: list[str] = []
    #: PBKDF2-SHA512 rounds of a new user password (OWASP's recommendation); each stored hash
    #: keeps its own count, so a change applies to passwords set from then on
    user_password_rounds: int = Field(210_000, ge=1_000)

    def model_post_init(self, _context: Any) -> None:
        if self.secrets_file and not self.secrets_file.is_absolute():
            self.secrets_file = (PROJECT_ROOT / self.secrets_file).resolve()


class DashboardSettings(BaseModel):
    """The web dashboard the API serves at ``GET /``."""

    tile_url: str = Field("", pattern=r"^(https?://.*)?$")
    tile_attribution: str = ""
    poll_seconds: float = Field(5.0, gt=0)


class PriceSimulatorSettings(BaseModel):
    """The ``prices`` service: the shipped real price files as the reference markets' history
    and today's reports, and the province averages' (producers.price_simulator);
    ``enabled: false`` turns it off."""

    enabled: bool = True
    files: list[Path] = [SAMPLE_PRICES]
    province_files: list[Path] = [PROVINCE_PANEL]
    interval_seconds: float = Field(15.0, gt=0)
    markets: int = Field(0, ge=0)
    markets_per_round: int = Field(4, ge=1)  # markets that report in one round, taking turns
    noise_pct: float = Field(0.75, ge=0, le=5)  # intraday noise: uniform within ± this % of the day
    seed_days: int = Field(60, ge=0)  # days of history published before today on a first start

    def model_post_init(self, _context: Any) -> None:
        self.files = [f if f.is_absolute() else (PROJECT_ROOT / f).resolve() for f in self.files]
        self.province_files = [
            f if f.is_absolute() else (PROJECT_ROOT / f).resolve() for f in self.province_files
        ]


class NewsFeed(BaseModel):
    """One RSS/Atom feed the feed collector polls."""

    url: str = Field(min_length=1, description="http(s) URL (or file path) of the feed")
    source: str = Field("", description="publisher name for its items; empty: the feed's title")


class NewsSettings(BaseModel):
    """News headlines (issue 36): their streaming query and the feed collector."""

    trigger_seconds: float = Field(10.0, gt=0)  # the news query's micro-batch interval
    feeds: list[NewsFeed] = []  # RSS/Atom feeds polled by the news_feeds service (none: off)
    feed_poll_seconds: float = Field(300.0, gt=0)  # how often each feed is polled
    feed_timeout_seconds: float = Field(20.0, gt=0)  # HTTP timeout of one poll
    seen_items: int = Field(20000, ge=100)  # item ids remembered across restarts (newest kept)
    #: real headlines replayed by the news_feeds service, dated from the first start on (none: off)
    replay_file: Path | None = Path("datasets/news_headlines_labelled.csv")
    replay_days: int = Field(14, ge=0)  # headlines dated in the days before the first start
    replay_hours: float = Field(6.0, gt=0)  # one replayed headline this often

    def model_post_init(self, _context: Any) -> None:
        if self.replay_file is not None and not self.replay_file.is_absolute():
            self.replay_file = (PROJECT_ROOT / self.replay_file).resolve()


class SupplySimulatorSettings(BaseModel):
    """The ``supply`` service: the simulated supply chain of the registry's entities
    (producers.supply_sim), published as its days pass; ``enabled: false`` turns it off."""

    enabled: bool = True
    history_days: int = Field(14, ge=0)  # days simulated before the first start
    interval_seconds: float = Field(60.0, gt=0)  # how often the events now due are published
    seed: int = 7  # random seed of the simulation (same seed and first day, same events)


class _YamlSource(PydanticBaseSettingsSource):
    """Reads the YAML configuration file; a missing or unreadable file is a ConfigError."""

    def __init__(self, settings_cls: type[BaseSettings], path: Path) -> None:
        super().__init__(settings_cls)
        self.path = path

    def get_field_value(self, field: Any, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused: __call__ returns the whole mapping

    def __call__(self) -> dict[str, Any]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(
                f"cannot read configuration file {self.path}: {exc.strerror or exc}. "
                f"Restore it (git checkout conf/) or point {CONFIG_ENV} at a readable file."
            ) from exc
        try:
            data = parse_yaml(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"configuration file {self.path} is not valid YAML: {exc}") from exc
        if not isinstance(data, dict):
            raise ConfigError(f"configuration file {self.path} must hold a mapping of sections")
        return data


class PipelineMetricsSettings(BaseModel):
    """The pipeline's Prometheus endpoint (``streaming_jobs.progress_metrics``)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9464, ge=1, le=65535)
    holds_seconds: float = Field(15.0, gt=0)


class BridgeMetricsSettings(BaseModel):
    """The MQTT bridge's Prometheus endpoint: its own counts and the broker's ``$SYS`` numbers
    (``producers.bridge_metrics``)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9465, ge=1, le=65535)


class PrometheusSettings(BaseModel):
    """The Prometheus server of the embedded stack and the exporters it scrapes
    (docs/operations.md)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = Field(9090, ge=1, le=65535)
    url: str = ""  # the server the operations view asks; empty: the embedded one
    scrape_seconds: float = Field(10.0, gt=0)
    retention: str = "15d"
    kafka_jmx_port: int = Field(9404, ge=1, le=65535)
    query_timeout_seconds: float = Field(5.0, gt=0)

    @property
    def base_url(self) -> str:
        return (self.url or f"http://{self.host}:{self.port}").rstrip("/")


class HistorySettings(BaseModel):
    """The bulk history load (``./run.sh load-history``, docs/bulk_history.md)."""

    #: records per staged file; the history query reads ``files_per_trigger`` files a batch
    records_per_file: int = Field(250_000, ge=1)
    files_per_trigger: int = Field(1, ge=1)


class SupplySettings(BaseModel):
    """The supply-chain query and route analysis (docs/supply.md)."""

    #: the supply query's own trigger: its idle micro-batches cost the price pipeline CPU
    trigger_seconds: float = Field(5.0, gt=0)
    max_offsets_per_trigger: int = Field(20_000, ge=1)
    #: days of outflow averaged for days of cover (stock / mean daily outflow)
    cover_window_days: int = Field(7, ge=1)
    #: the largest plausible quantity (kg or l) one report may carry, per entity kind
    max_quantity: dict[str, float] = {
        "warehouse": 50_000_000.0,
        "distributor": 5_000_000.0,
        "farmer_group": 500_000.0,
        "market": 200_000.0,
    }
    road_factor: float = Field(1.3, ge=1)  # road km per great-circle km
    road_speed_kmh: float = Field(40.0, gt=0)  # a loaded truck's mean speed, stops included
    sea_speed_kmh: float = Field(25.0, gt=0)  # a ro-ro ferry or coaster
    port_hours: float = Field(12.0, ge=0)  # waiting and loading per sea crossing
    #: an in-transit shipment is late when this many hours past its expected time
    late_after_hours: float = Field(0.0, ge=0)


class Settings(BaseSettings):
    """Configuration of the whole platform (see conf/settings.yaml for the meaning of each knob)."""

    model_config = SettingsConfigDict(
        env_prefix="SMARTMARKET_", env_nested_delimiter="__", extra="forbid"
    )

    timezone: str = "Asia/Jakarta"
    paths: Paths = Paths()
    kafka: KafkaSettings = KafkaSettings()
    storage: StorageSettings = StorageSettings()
    mqtt: MqttSettings = MqttSettings()
    producers: ProducerSettings = ProducerSettings()
    simulator: SimulatorSettings = SimulatorSettings()
    mlflow: MlflowSettings = MlflowSettings()
    api: ApiSettings = ApiSettings()
    spark: SparkSettings = SparkSettings()
    ml: MlSettings = MlSettings()
    services: ServiceSettings = ServiceSettings()
    anomalies: AnomalySettings = AnomalySettings()
    impact: ImpactSettings = ImpactSettings()
    analyst: AnalystSettings = AnalystSettings()
    alerts: AlertSettings = AlertSettings()
    security: SecuritySettings = SecuritySettings()
    supply: SupplySettings = SupplySettings()
    history: HistorySettings = HistorySettings()

    dashboard: DashboardSettings = DashboardSettings()
    price_simulator: PriceSimulatorSettings = PriceSimulatorSettings()
    supply_simulator: SupplySimulatorSettings = SupplySimulatorSettings()
    pipeline_metrics: PipelineMetricsSettings = PipelineMetricsSettings()
    bridge_metrics: BridgeMetricsSettings = BridgeMetricsSettings()
    prometheus: PrometheusSettings = PrometheusSettings()
    news: NewsSettings = NewsSettings()

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r} (e.g. Asia/Jakarta)") from None
        return value

    @property
    def tz(self) -> ZoneInfo:
        """Local time of the markets: times without an offset, local dates and hours in gold."""
        return ZoneInfo(self.timezone)

    @property
    def secrets_file_path(self) -> Path:
        """The secrets file (``lakehouse.config.secrets``): ``security.secrets_file``, else
        ``secrets.yaml`` in the data folder."""
        return self.security.secrets_file or self.paths.data_dir / "secrets.yaml"

    def with_channel_tokens(self) -> Settings:
        """These settings with each notifier channel's empty ``token`` taken from the secret
        ``alerts.<channel name>.token``: tokens stay out of the tracked settings file."""
        channels = [
            c.model_copy(update={"token": secret(self, f"alerts.{c.name}.token") or ""})
            if not c.token
            else c
            for c in self.alerts.channels
        ]
        alerts = self.alerts.model_copy(update={"channels": channels})
        return self.model_copy(update={"alerts": alerts})

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, _YamlSource(settings_cls, config_path()))


def config_path() -> Path:
    """The YAML file in force: ``$SMARTMARKET_CONFIG`` or ``conf/settings.yaml``."""
    return Path(os.environ.get(CONFIG_ENV) or CONF_DIR / "settings.yaml")


def load_settings() -> Settings:
    """Load and validate the settings; raise ConfigError with a readable message if invalid."""
    try:
        settings = Settings()
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"invalid configuration ({config_path()}): {problems}") from exc
    return settings.with_channel_tokens()
