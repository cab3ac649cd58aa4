"""``./run.sh retrain``: backtest and select a model per series from gold, fit it on the whole
history, register it in MLflow and write the next ``ml.horizon`` days to gold.forecasts.

Idempotent: a forecast row is keyed on (series_id, origin_date, target_date); the merge inserts
new keys and replaces an existing row only when it was computed from an older version of
gold.price_daily (``data_version``). Re-running on the same data therefore leaves gold.forecasts
exactly as it was — rows keep the run, model version and ``created_at`` (the start of that run)
of the first run that produced them — while a run on newer data replaces them.

``--if-changed`` retrains only when silver.prices has grown by ``ml.retrain_min_new_rows`` rows
since the last retrain (its silver version and row count are tags of that MLflow run); the
check reads only the Delta log and one MLflow query.

Other gold writers (e.g. anomalies) reuse ``write_gold`` and ``RunContext``.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa

from lakehouse.catalog.conf import conf_of
from lakehouse.catalog.tables import (
    GOLD_ANOMALIES,
    GOLD_FORECASTS,
    GOLD_PRICE_DAILY,
    GOLD_REGION_DAILY,
    SILVER_PRICES,
    TABLES,
    arrow_schema,
)
from lakehouse.config.settings import ConfigError, MlSettings, Settings
from lakehouse.domain.metrics import DAILY_COLUMNS
from lakehouse.io.fast_read import TableMissing
from lakehouse.io.lake import Lakehouse, LakeTable
from ml.backtest import (
    SELECTED,
    GlobalPoints,
    SeriesBacktest,
    backtest_series,
    global_points_for,
    metrics_by_series,
    per_series,
    plan_series,
    residual_quantiles,
    select,
    summary,
    table,
)
from ml.models import (
    GLOBAL_MODELS,
    Forecaster,
    configured_model,
    configured_models,
    recent_volatility,
    surge_probability,
)
from ml.selection import groups_of
from ml.series import regular, series_frame
from ml.surge import Calibration, calibrate, outcomes
from ml.surge_model import SurgeWarning, latest_warnings, province_centroids

if TYPE_CHECKING:
    from ml.exogenous import ExogSources

RETRAIN = "retrain"
ROWS_TAG = "silver.prices.rows"
REGION_COLUMNS = ["region", "commodity", "date", "median"]


@dataclass(frozen=True)
class DataVersions:
    """The Delta versions a training read (tags of its MLflow run)."""

    price_daily: int
    region_daily: int | None
    silver_prices: int | None
    silver_rows: int | None

    def tags(self) -> dict[str, str]:
        values = {
            "gold.price_daily.version": self.price_daily,
            "gold.region_daily.version": self.region_daily,
            "silver.prices.version": self.silver_prices,
            ROWS_TAG: self.silver_rows,
        }
        return {k: str(v) for k, v in values.items() if v is not None}


@dataclass(frozen=True)
class RunContext:
    """What links written gold rows to their MLflow run."""

    run_id: str
    created_at: datetime
    data_version: int
    models: dict[str, tuple[str, str]] = field(default_factory=dict)  # algorithm → (name, version)


@dataclass
class TrainedSeries:
    backtest: SeriesBacktest
    model: Forecaster
    forecast: pd.DataFrame  # ml.models forecast frame of the served model, with surge_prob


@dataclass(frozen=True)
class GlobalSeries:
    """The global model's points for one series: at its backtest origins and after its last
    day (``ml.global_model``)."""

    backtest: GlobalPoints
    served: np.ndarray | None


def global_series(
    series: pd.DataFrame, models: list[str], ml: MlSettings, sources: ExogSources | None = None
) -> dict[str, GlobalSeries] | None:
    """Per series long enough for the global model (``plan_series``; the others are absent),
    its backtest and served points (None without a global model among ``models`` or without
    such a series): one fit per backtest origin and one on all the history, with the
    exogenous features of ``sources`` (``exog_sources``) in both."""
    backtest = global_points_for(series, models, ml, models, sources)
    if backtest is None:
        return None
    from ml.global_model import global_forecast

    served = global_forecast(series, ml, sources)
    return {sid: GlobalSeries(points, served.get(sid)) for sid, points in backtest.items()}


def _missing(exc: TableMissing) -> ConfigError:
    return ConfigError(f"{exc}: run the pipeline first (./run.sh up) so that gold has prices")


def silver_size(lake: Lakehouse) -> tuple[int | None, int | None]:
    """silver.prices' newest version and row count, from the Delta log only (no data read)."""
    try:
        delta = lake[SILVER_PRICES].open()
    except TableMissing:
        return None, None
    actions = pa.table(delta.get_add_actions(flatten=True))
    return delta.version(), int(pa.compute.sum(actions["num_records"]).as_py() or 0)


def read_gold(table: LakeTable, columns: list[str] | None = None) -> tuple[pd.DataFrame, int]:
    """A gold table as pandas with the version read; ConfigError when it does not exist yet.
    (The anomaly pass reads gold.price_daily the same way.)"""
    try:
        delta = table.open()
    except TableMissing as exc:
        raise _missing(exc) from None
    return delta.to_pandas(columns=columns), delta.version()


def load_series(lake: Lakehouse) -> tuple[pd.DataFrame, DataVersions]:
    """Every series from gold.price_daily (market closes) and gold.region_daily (region
    medians), with the versions read."""
    daily, daily_version = read_gold(lake[GOLD_PRICE_DAILY], list(DAILY_COLUMNS))
    daily["region"] = daily["region"].fillna("")
    region_version: int | None = None
    if lake[GOLD_REGION_DAILY].version() is None:
        regions = pd.DataFrame(columns=REGION_COLUMNS)
    else:
        regions, region_version = read_gold(lake[GOLD_REGION_DAILY], REGION_COLUMNS)
    versions = DataVersions(daily_version, region_version, *silver_size(lake))
    return series_frame(daily, regions), versions


@dataclass(frozen=True)
class ServedJob:
    """What the final fit of a series needs: its backtest (with the served choice) and the
    global model's points after its last day (None without a global model)."""

    backtest: SeriesBacktest
    global_points: np.ndarray | None = None
    surge: Calibration = field(default_factory=lambda: Calibration(None, None))  # ml.surge
    warning: SurgeWarning | None = None  # the surge classifier's, where it is trained


def train_series(series_id: str, y: pd.Series, ml: MlSettings, job: ServedJob) -> TrainedSeries:
    """Fit the served model of one series (``job.backtest.selected``) on its whole history;
    its forecast carries the backtest's conformal bands, ``surge_prob`` — the surge
    classifier's (``job.warning``) where it is trained, else the first-passage probability of
    the forecast calibrated on the backtest (``job.surge``) — with ``surge_because`` and the
    threshold it warns at (``surge_warn_at``)."""
    backtest = job.backtest
    filled, _ = regular(y)
    began = time.process_time()
    model = configured_model(backtest.selected, ml)
    if backtest.selected in GLOBAL_MODELS:
        model.global_points = job.global_points
    model.fit(filled)
    past = backtest.forecasts[backtest.forecasts["model"] == backtest.selected]
    # the served bands: backtest errors per unit of volatility, at today's volatility
    quantiles = residual_quantiles(past, ml.horizon)
    model.conformal = None if quantiles is None else quantiles * recent_volatility(filled)
    forecast = model.predict()
    if job.warning is not None:
        forecast["surge_prob"] = job.warning.prob
        forecast["surge_because"] = job.warning.because
        warn_at = job.warning.warn_at
    else:
        raw = surge_probability(filled.iloc[-1], forecast, ml.surge_rise)
        forecast["surge_prob"] = float(job.surge(np.array([raw]))[0])
        forecast["surge_because"] = first_passage_because(job.surge)
        warn_at = job.surge.threshold
    forecast["surge_warn_at"] = np.nan if warn_at is None else warn_at
    backtest.seconds[backtest.selected] += time.process_time() - began
    return TrainedSeries(backtest, model, forecast)


def served_calibrations(
    backtests: Iterable[SeriesBacktest], rise: float, precision: float
) -> dict[str, Calibration]:
    """Per served model (``selected`` of the backtests), the calibration of its raw
    ``surge_prob`` fitted on its forecasts at every backtest origin of every series."""
    backtests = list(backtests)
    return {
        model: calibrate(
            outcomes(
                pd.concat(
                    [b.forecasts[b.forecasts["model"] == model] for b in backtests],
                    ignore_index=True,
                ),
                rise,
            ),
            precision,
        )
        for model in sorted({b.selected for b in backtests})
    }


def first_passage_because(calibration: Calibration) -> str:
    """``surge_because`` of a probability that is not the surge classifier's."""
    kind = "raw" if calibration.model is None else "calibrated on the backtest's origins"
    return (
        f"first passage of the forecast's path and band ({kind}): no surge classifier trained "
        "(too few surges or origins, or ml.surge_model.enabled is off)"
    )


def modelled(series: pd.DataFrame, ml: MlSettings) -> bool:
    """Whether any series of a ``SERIES_COLUMNS`` frame is long enough to model
    (``plan_series``): a fresh stack's weeks of history get the naive fallback alone, whose work
    in ``ml.n_jobs`` worker processes cost their start and imports besides (the first forecasts:
    61 → 53 CPU s in one process)."""
    return any(
        not plan_series(g.set_index("date")["y"], [], ml).note
        for _, g in series.groupby("series_id", sort=False)
    )


def train_all(
    series: pd.DataFrame,
    models: list[str],
    ml: MlSettings,
    sources: ExogSources | None = None,
    centroids: Mapping[str, tuple[float, float]] | None = None,
) -> list[TrainedSeries]:
    """Backtest every series (the global model once per origin), choose the served models
    (``ml.selection``, pooled per its level) and fit each on its whole history, across
    ``ml.n_jobs`` worker processes (one when no series is ``modelled``); the surge classifier
    (``ml.surge_model``) is fitted once on every series (``centroids``: of the provinces, for
    the neighbours' moves)."""
    points = global_series(series, models, ml, sources) or {}  # the series long enough for it
    backtest_points = {sid: p.backtest for sid, p in points.items()}
    n_jobs = ml.n_jobs if modelled(series, ml) else 1
    backtests = list(
        per_series(
            backtest_series,
            series,
            n_jobs,
            "backtest",
            models,
            ml,
            models,
            per_id=backtest_points,
        )
    )
    select(backtests, models, ml.selection, groups_of(series, ml.selection))
    surge = served_calibrations(backtests, ml.surge_rise, ml.surge_precision)
    warnings = latest_warnings(series, ml, centroids)
    jobs = {
        b.series_id: ServedJob(
            b,
            points[b.series_id].served if b.series_id in points else None,
            surge[b.selected],
            warnings.get(b.series_id),
        )
        for b in backtests
    }
    return list(per_series(train_series, series, n_jobs, "fit", ml, per_id=jobs))


def backtest_quality(metrics: Mapping[str, Mapping[str, Any]]) -> dict[str, float | None]:
    """The served model's backtest MAPE and band coverage, and naive's MAPE, from a series'
    backtest metrics (``SeriesBacktest.metrics``: over its scored origins) — gold.forecasts'
    quality columns; None where a series had none."""
    served, naive = metrics.get(SELECTED, {}), metrics.get("naive", {})
    return {
        "backtest_mape": served.get("mape"),
        "naive_mape": naive.get("mape"),
        "coverage_80": served.get("coverage80"),
        "coverage_95": served.get("coverage95"),
    }


def forecast_rows(
    series: pd.DataFrame, trained: list[TrainedSeries], ctx: RunContext
) -> pd.DataFrame:
    """The gold.forecasts rows of a training run (pure)."""
    keys = series.drop_duplicates("series_id").set_index("series_id")
    metrics = metrics_by_series([t.backtest for t in trained])
    frames = []
    for t in trained:
        sid = t.backtest.series_id
        name, version = ctx.models[t.backtest.selected]
        f = t.forecast.reset_index()
        frames.append(
            f.assign(
                series_id=sid,
                series_kind=keys.at[sid, "series_kind"],
                market_id=keys.at[sid, "market_id"],
                region=keys.at[sid, "region"] or None,
                commodity=keys.at[sid, "commodity"],
                origin_date=f["target_date"].iloc[0] - pd.Timedelta(days=1),
                model_name=name,
                model_version=version,
                served_because=t.backtest.reason,
                **backtest_quality(metrics.get(sid, {})),
                run_id=ctx.run_id,
                data_version=ctx.data_version,
                created_at=ctx.created_at,
            )
        )
    rows = pd.concat(frames, ignore_index=True)
    for column in ("origin_date", "target_date"):
        rows[column] = rows[column].dt.date
    return rows


def write_gold(
    frame: pd.DataFrame, table: LakeTable, replace_when: str | None = None
) -> dict[str, int]:
    """Idempotent write of ``frame`` to a gold table with a declared schema: MERGE on the
    table's keys (``LakeTable.merge``: retried on a concurrent commit), inserting new keys;
    an existing row is replaced only where ``replace_when`` (a predicate over ``s.`` source and
    ``t.`` target columns) holds — never if it is None. A table written before a column was
    declared gets it (its earlier rows read null). Returns the rows inserted and replaced."""
    schema = arrow_schema(table.table)
    data = pa.Table.from_pandas(frame[schema.names], schema=schema, preserve_index=False)
    merged = table.merge(data, replace_when, merge_schema=True)
    return {"inserted": merged.inserted, "replaced": merged.replaced}


def should_retrain(settings: Settings) -> tuple[bool, str]:
    """Whether silver.prices has grown by ``ml.retrain_min_new_rows`` since the last retrain
    recorded in MLflow (needs ``tracking.connect`` first), and why."""
    from ml.tracking import last_run

    _, rows = silver_size(Lakehouse(settings))
    if rows is None:
        return False, f"{SILVER_PRICES.qualified_name} does not exist yet: nothing to train on"
    last = last_run(settings, RETRAIN)
    if last is None or ROWS_TAG not in last.data.tags:
        return True, "no earlier retrain recorded in MLflow"
    grown = rows - int(last.data.tags[ROWS_TAG])
    enough = grown >= settings.ml.retrain_min_new_rows
    verdict = "≥" if enough else "<"
    return enough, (
        f"silver.prices grew by {grown} rows since run {last.info.run_id} "
        f"({verdict} ml.retrain_min_new_rows = {settings.ml.retrain_min_new_rows})"
    )


@dataclass(frozen=True)
class RetrainResult:
    run_id: str
    series: int
    served: dict[str, int]
    written: dict[str, int]
    versions: DataVersions
    too_short: int = 0  # series too short to model: the naive fallback serves them

    def __str__(self) -> str:
        served = ", ".join(f"{m} {n}" for m, n in sorted(self.served.items()))
        if self.too_short:
            served += f"; {self.too_short} too short to model, naive fallback"
        return (
            f"retrained {self.series} series (served: {served}) from gold.price_daily "
            f"v{self.versions.price_daily}; MLflow run {self.run_id}; gold.forecasts: "
            f"{self.written['inserted']} rows inserted, {self.written['replaced']} replaced"
        )


def gold_daily_closes(lake: Lakehouse) -> tuple[pd.DataFrame, int]:
    """gold.price_daily as the daily-closes frame of ``ml.daily`` (one close per market ×
    commodity × day: a market reported under two region spellings keeps the later one), with
    the version read."""
    daily, version = read_gold(lake[GOLD_PRICE_DAILY], list(DAILY_COLUMNS))
    daily = daily.rename(columns={"close": "price"}).sort_values(["date", "region"])
    return daily.drop_duplicates(["market_id", "commodity", "date"], keep="last"), version


def anomaly_rows(daily: pd.DataFrame, settings: Settings, ctx: RunContext) -> pd.DataFrame:
    """The gold.anomalies rows of a scoring run (pure given the data and settings)."""
    from ml.anomalies import MODEL_NAMES, detect

    found = detect(daily, settings)
    found["date"] = pd.to_datetime(found["date"]).dt.date
    return found.assign(
        model_name=found["kind"].map(MODEL_NAMES),
        model_version=ctx.models["anomalies"][1],
        run_id=ctx.run_id,
        created_at=ctx.created_at,
    )


def score_anomalies(settings: Settings) -> dict[str, int]:
    """The anomaly pass (also run alone, hourly): score every daily close of gold.price_daily
    and merge the anomalous ones into gold.anomalies — a row is replaced only when its score
    changed, so the same data version writes nothing new. One MLflow run; the models' version
    is a digest of their parameters."""
    import mlflow

    from ml import tracking
    from ml.anomalies import model_params

    lake = Lakehouse(settings)
    daily, version = gold_daily_closes(lake)
    params = model_params(settings)
    digest = hashlib.sha256(json.dumps(params, sort_keys=True).encode()).hexdigest()[:12]
    flat = {f"{model}.{k}": v for model, ps in params.items() for k, v in ps.items()}
    with tracking.tracked_run("anomalies", flat, {"gold.price_daily.version": version}) as run:
        ctx = RunContext(
            run.info.run_id,
            datetime.fromtimestamp(run.info.start_time / 1000, UTC),
            version,
            {"anomalies": ("anomalies", digest)},
        )
        rows = anomaly_rows(daily, settings, ctx)
        written = write_gold(rows, lake[GOLD_ANOMALIES], replace_when="s.score <> t.score")
        counts = rows["kind"].value_counts()
        mlflow.log_metrics({f"anomalies.{kind}": int(n) for kind, n in counts.items()})
        mlflow.log_metrics({f"gold.anomalies.{k}": v for k, v in written.items()})
    return written


def optional_gold(
    names: list[str], lake: Lakehouse
) -> tuple[dict[str, pd.DataFrame], dict[str, str]]:
    """The gold tables of ``names`` (registry names) that exist and hold rows, and for each of
    the others why not — absent from the registry, not written yet, or empty."""
    frames, absent = {}, {}
    for name in names:
        table = TABLES.get(name)
        if table is None:
            absent[name] = f"{name} is not a table of this lakehouse"
            continue
        try:
            frame = lake[table].read().to_pandas()
        except TableMissing:
            absent[name] = f"{name} does not exist yet"
            continue
        if frame.empty:
            absent[name] = f"{name} has no rows yet"
        else:
            frames[name] = frame
    return frames, absent


def exog_sources(
    settings: Settings, lake: Lakehouse | None = None
) -> tuple[ExogSources, dict[str, str]]:
    """The sources of the global model's exogenous features (``ml.exogenous``) of the
    families of ``ml.global_exogenous``: the rice panel's weather (``impact.data_dir``) and the
    gold tables that exist and hold rows; and why the other gold tables are not used."""
    from ml.exogenous import SOURCES as EXOG_SOURCES
    from ml.exogenous import ExogSources
    from ml.impact import read_input

    families = settings.ml.global_exogenous
    panel = read_input(settings.impact.data_dir, "panel") if "weather" in families else None
    names = sorted(EXOG_SOURCES[f] for f in families if f in EXOG_SOURCES)
    gold, absent = optional_gold(names, lake or Lakehouse(settings))
    return ExogSources(panel, gold, conf_of(settings).markets), absent


def fit_impact(settings: Settings) -> str:
    """Fit the price-impact model on the sample real data plus gold's daily closes and the
    optional gold tables its families read (news signal, supply), save it where the API loads
    it (``ml.impact_result.model_path``) and log it with its hold-out fit to MLflow. Returns a
    one-line summary."""
    import mlflow

    from ml import tracking
    from ml.impact import describe, fit_impact_model, load_inputs
    from ml.impact import model_params as impact_params
    from ml.impact_design import SOURCES
    from ml.impact_result import model_path

    lake = Lakehouse(settings)
    daily, version = gold_daily_closes(lake)
    gold, absent = optional_gold(sorted(set(SOURCES.values())), lake)
    tags = {"gold.price_daily.version": version}
    with tracking.tracked_run("impact", impact_params(settings), tags):
        inputs = load_inputs(settings.impact.data_dir, conf_of(settings), daily, gold, absent)
        model = fit_impact_model(inputs, settings)
        path = model.save(model_path(settings))
        mlflow.log_artifact(str(path))
        overall = model.metrics.get("overall", {})
        mlflow.log_metrics({f"impact.{k}": float(v) for k, v in overall.items()})
    return describe(model, path)


def retrain(settings: Settings) -> RetrainResult:
    """The whole job: load, backtest and select, fit, register, write gold.forecasts."""
    import mlflow

    from ml import tracking

    ml = settings.ml
    models = configured_models(ml)
    lake = Lakehouse(settings)
    series, versions = load_series(lake)
    if series.empty:
        raise ConfigError("gold.price_daily has no rows yet: nothing to train on")
    params = {
        "horizon": ml.horizon,
        "models": ",".join(ml.models),
        "origins": ml.origins,
        "selection_origins": ml.selection_origins,
        "min_history_days": ml.min_history_days,
        "series": series["series_id"].nunique(),
        "global_exogenous": ",".join(ml.global_exogenous),
    }
    sources, absent = exog_sources(settings, lake)
    with tracking.tracked_run(RETRAIN, params, versions.tags()) as run:
        mlflow.set_tags({f"exogenous.absent.{name}": why for name, why in absent.items()})
        trained = train_all(series, models, ml, sources, province_centroids(conf_of(settings)))
        doc = summary([t.backtest for t in trained], ml)
        tracking.log_backtest(doc, table(doc))
        by_model: dict[str, dict[str, Forecaster]] = {}
        for t in trained:
            by_model.setdefault(t.backtest.selected, {})[t.backtest.series_id] = t.model
        registered = {}
        for algorithm, models in sorted(by_model.items()):
            name = f"{ml.registered_model}-{algorithm}"
            registered[algorithm] = (name, tracking.register(models, name, algorithm))
        served = {m: len(v) for m, v in by_model.items()}
        mlflow.log_metrics({f"served.{m}": n for m, n in served.items()})
        ctx = RunContext(
            run.info.run_id,
            datetime.fromtimestamp(run.info.start_time / 1000, UTC),
            versions.price_daily,
            registered,
        )
        rows = forecast_rows(series, trained, ctx)
        tracking.log_plots(series, rows, "forecast")
        written = write_gold(
            rows, lake[GOLD_FORECASTS], replace_when="s.data_version > t.data_version"
        )
        mlflow.log_metrics({f"gold.forecasts.{k}": v for k, v in written.items()})
    short = sum("too short" in t.backtest.note for t in trained)
    return RetrainResult(ctx.run_id, len(trained), served, written, versions, short)
