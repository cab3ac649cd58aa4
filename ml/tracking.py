"""MLflow: every backtest and training is a run (params, metrics per model, the backtest table
and forecast plots as artifacts, Delta table versions as tags); served models are registered.

The served forecaster of a retrain is registered once per algorithm, as
``<ml.registered_model>-<algorithm>`` (e.g. ``smartmarket-forecaster-xgboost``): a pyfunc
holding the fitted models of the series that algorithm serves (``ml.bundle``), with the code
and requirements to load it elsewhere and a signature; the alias ``champion`` points at the
newest version. A row of gold.forecasts carries that registered name, its version and the run
id, so each number traces to a run and a model.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pandas as pd

from lakehouse.config.settings import PROJECT_ROOT, ConfigError, Settings
from ml.bundle import CODE_PACKAGES, ForecastBundle
from ml.models import Forecaster
from ml.pins import requirements

CHAMPION = "champion"  # registry alias of the version a retrain serves
KIND_TAG = "smartmarket.kind"  # "backtest" or "retrain"
PLOT_SERIES = 6  # at most this many series per plot (the first of the group)
PLOT_HISTORY_DAYS = 90


def reachable(settings: Settings) -> str | None:
    """None when the tracking server answers, else why not."""
    url = f"{settings.mlflow.tracking_uri}/health"
    try:
        httpx.get(url, timeout=3).raise_for_status()
    except httpx.HTTPError as exc:
        return f"MLflow is not reachable at {settings.mlflow.tracking_uri} ({exc})"
    return None


def connect(settings: Settings) -> None:
    """Point the MLflow client at the server of ``settings`` and its experiment; ConfigError
    with one readable line when the server does not answer."""
    import mlflow
    from mlflow.utils.logging_utils import disable_logging

    if problem := reachable(settings):
        raise ConfigError(f"{problem}; start it with ./run.sh up mlflow")
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"  # our commands print their own
    disable_logging()  # MLflow's progress chatter; failures still raise
    mlflow.set_tracking_uri(settings.mlflow.tracking_uri)
    mlflow.set_registry_uri(settings.mlflow.tracking_uri)
    mlflow.set_experiment(settings.mlflow.experiment)


@contextmanager
def tracked_run(kind: str, params: dict[str, Any], tags: dict[str, Any]) -> Iterator[Any]:
    """An MLflow run tagged with its kind; yields the active run."""
    import mlflow

    with mlflow.start_run(tags={KIND_TAG: kind, **{k: str(v) for k, v in tags.items()}}) as run:
        mlflow.log_params({k: str(v)[:500] for k, v in params.items()})
        yield run


def log_backtest(doc: dict, table_text: str) -> None:
    """Overall metrics per model (``<model>.<metric>``), the JSON document and the text table."""
    import mlflow

    metrics = {
        f"{model}.{name}": value
        for model, values in doc["overall"].items()
        for name, value in values.items()
        if pd.notna(value)
    }
    mlflow.log_metrics(metrics)
    mlflow.log_dict(doc, "backtest/backtest.json")
    mlflow.log_text(table_text, "backtest/backtest.txt")


def log_plots(series: pd.DataFrame, forecasts: pd.DataFrame, title: str) -> None:
    """One PNG per commodity (the series group): recent history and forecast with intervals.
    ``forecasts`` has series_id, target_date, yhat and the interval columns."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow

    for commodity, group in series.groupby("commodity"):
        ids = sorted(group["series_id"].unique())[:PLOT_SERIES]
        height = 2.4 * len(ids)  # inches; fixed margins: tight_layout would draw it twice
        fig, axes = plt.subplots(len(ids), 1, figsize=(9, height), squeeze=False)
        fig.subplots_adjust(
            left=0.08, right=0.98, bottom=0.3 / height, top=1 - 0.55 / height, hspace=0.55
        )
        for ax, sid in zip(axes[:, 0], ids, strict=True):
            history = group[group["series_id"] == sid].set_index("date")["y"]
            ax.plot(history.iloc[-PLOT_HISTORY_DAYS:], color="black", lw=1, label="price")
            f = forecasts[forecasts["series_id"] == sid].set_index("target_date")
            f.index = pd.to_datetime(f.index)
            if len(f):
                ax.plot(f["yhat"], color="tab:blue", lw=1.5, label="forecast")
                ax.fill_between(f.index, f["yhat_lower_95"], f["yhat_upper_95"], alpha=0.15)
                ax.fill_between(f.index, f["yhat_lower_80"], f["yhat_upper_80"], alpha=0.3)
            ax.set_title(sid, fontsize=9)
            ax.tick_params(labelsize=7)
        axes[0, 0].legend(fontsize=7)
        fig.suptitle(f"{title}: {commodity}", fontsize=10)
        mlflow.log_figure(fig, f"plots/{commodity}.png")
        plt.close(fig)


def register(models: dict[str, Forecaster], name: str, algorithm: str) -> str:
    """Log the fitted models of one algorithm as a pyfunc in the active run — with the project
    code they need, their pinned requirements and a signature, so that it loads outside this
    checkout — register it as ``name`` and point the alias ``champion`` at the new version,
    which is returned."""
    import mlflow
    from mlflow.models import infer_signature

    bundle = ForecastBundle(models)
    example = pd.DataFrame({"series_id": sorted(models)[:1]})
    info = mlflow.pyfunc.log_model(
        name=name,
        python_model=bundle,
        code_paths=[str(PROJECT_ROOT / package) for package in CODE_PACKAGES],
        pip_requirements=requirements(algorithm),
        signature=infer_signature(example, bundle.predict(None, example)),
        input_example=example,
    )
    registered = mlflow.register_model(info.model_uri, name, await_registration_for=60)
    mlflow.MlflowClient().set_registered_model_alias(name, CHAMPION, registered.version)
    return str(registered.version)


def last_run(settings: Settings, kind: str) -> Any | None:
    """The newest finished run of this kind in the experiment, or None."""
    import mlflow

    experiment = mlflow.get_experiment_by_name(settings.mlflow.experiment)
    if experiment is None:
        return None
    runs = mlflow.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{KIND_TAG}` = '{kind}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
        output_format="list",
    )
    return runs[0] if runs else None
