"""``retrain`` end to end: the replayed lakehouse (copied), a real MLflow server, gold.forecasts
rows traceable to MLflow runs and registered model versions, idempotent re-runs, the
data-change trigger and clear errors when MLflow or the tables are missing."""

from __future__ import annotations

import os
import shutil
import time
from datetime import UTC, datetime

import psutil
import pyarrow as pa
import pytest
from deltalake import write_deltalake

from lakehouse.catalog.tables import (
    GOLD_ALERTS,
    GOLD_ANOMALIES,
    GOLD_FORECASTS,
    GOLD_PRICE_DAILY,
    arrow_schema,
)
from lakehouse.config.settings import Settings
from lakehouse.io.lake import Lakehouse
from scripts.cli import main

# The replayed lakehouse takes minutes to build on a busy box; setup counts against the timeout.
pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def lake(replayed: Settings, mlflow_server, tmp_path_factory) -> Settings:
    """A writable copy of the replayed lakehouse; a fast model set (the models themselves are
    tested on small frames elsewhere)."""
    root = tmp_path_factory.mktemp("retrain") / "lakehouse"
    shutil.copytree(replayed.paths.lakehouse_root, root)
    ml = replayed.ml.model_copy(
        update={
            "models": ["naive", "xgboost_damped", "lgbm_global"],  # and the global model
            "origins": 3,
            "selection_origins": 1,
            "min_history_days": 60,
        }
    )
    return replayed.model_copy(
        update={"paths": replayed.paths.model_copy(update={"lakehouse_root": root}), "ml": ml}
    )


def _forecasts(settings: Settings):
    rows = Lakehouse(settings)[GOLD_FORECASTS].open().to_pandas()
    return rows.sort_values(list(GOLD_FORECASTS.keys), ignore_index=True)


def test_retrain_writes_traceable_forecasts_idempotently(
    lake: Settings, monkeypatch, capsys
) -> None:
    from mlflow import MlflowClient

    from ml import tracking
    from ml.retrain import retrain, should_retrain

    tracking.connect(lake)
    first = retrain(lake)
    rows = _forecasts(lake)
    series = rows["series_id"].nunique()
    assert first.series == series and len(rows) == series * lake.ml.horizon
    assert {"market", "region"} <= set(rows["series_kind"])
    assert (rows["yhat_lower_95"] <= rows["yhat_lower_80"]).all()
    assert (rows["yhat_lower_80"] <= rows["yhat"]).all()
    assert (rows["yhat"] <= rows["yhat_upper_80"]).all()
    assert (rows["yhat_upper_80"] <= rows["yhat_upper_95"]).all()
    assert (rows["data_version"] == first.versions.price_daily).all()
    assert rows["surge_prob"].between(0, 1).all()  # one probability per series and origin
    assert (rows.groupby(["series_id", "origin_date"])["surge_prob"].nunique() == 1).all()
    assert rows["surge_warn_at"].dropna().between(0, 1).all()  # where a threshold was reached
    # how good each served forecast has been: its backtest against naive's, its bands' coverage
    assert (rows[["backtest_mape", "naive_mape"]] > 0).all().all()
    assert rows[["coverage_80", "coverage_95"]].stack().between(0, 1).all()
    naive = rows[rows["served_because"].str.startswith("naive")]
    assert (naive["backtest_mape"] == naive["naive_mape"]).all()

    client = MlflowClient(lake.mlflow.tracking_uri)
    assert client.get_run(first.run_id).data.tags["silver.prices.rows"] == str(
        first.versions.silver_rows
    )
    for (name, version, run_id), _ in rows.groupby(["model_name", "model_version", "run_id"]):
        assert run_id == first.run_id
        assert client.get_model_version(name, version).run_id == run_id

    second = retrain(lake)
    assert second.run_id != first.run_id
    assert second.written == {"inserted": 0, "replaced": 0}
    again = _forecasts(lake)
    assert again.equals(rows)

    go, why = should_retrain(lake)
    assert not go and "grew by 0 rows" in why
    monkeypatch.setenv("SMARTMARKET_PATHS__LAKEHOUSE_ROOT", str(lake.paths.lakehouse_root))
    capsys.readouterr()
    assert main(["retrain", "--if-changed"]) == 0  # the cron trigger: nothing new, no run
    assert capsys.readouterr().out.startswith("no retrain: silver.prices grew by 0 rows")
    assert tracking.last_run(lake, "retrain").info.run_id == second.run_id


def test_cli_errors_when_mlflow_or_tables_are_missing(
    lake: Settings, tmp_path, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("SMARTMARKET_PATHS__LAKEHOUSE_ROOT", str(tmp_path / "empty"))
    assert main(["retrain"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: gold.price_daily does not exist yet") and "\n" not in err

    monkeypatch.setenv("SMARTMARKET_MLFLOW__PORT", "1")
    assert main(["retrain", "--if-changed"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: MLflow is not reachable at http://localhost:1")
    assert "\n" not in err


def test_anomaly_pass_and_impact_model_trace_to_mlflow(lake: Settings) -> None:
    from fastapi.testclient import TestClient
    from mlflow import MlflowClient

    from ml import tracking
    from ml.retrain import fit_impact, score_anomalies
    from serving_api.app import create_app

    tracking.connect(lake)
    first = score_anomalies(lake)
    rows = Lakehouse(lake)[GOLD_ANOMALIES].open().to_pandas()
    assert first["inserted"] == len(rows) and first["replaced"] == 0
    assert set(rows["kind"]) <= {"temporal", "geographic"}
    assert rows["score"].between(0, 1).all()
    client = MlflowClient(lake.mlflow.tracking_uri)
    for run_id in rows["run_id"].unique():
        assert client.get_run(run_id).data.tags["gold.price_daily.version"]
    assert score_anomalies(lake) == {"inserted": 0, "replaced": 0}  # same data, same rows

    assert "saved to" in fit_impact(lake)
    api = TestClient(create_app(lake))
    answer = api.get(
        "/api/v1/impact", params={"commodity": "beras", "region": "Bandung", "date": "2025-03-10"}
    )
    assert answer.status_code == 200, answer.text
    impact = answer.json()
    assert sum(impact["factors_with_weights"].values()) == 100
    assert 0 <= impact["impact_score"] <= 100
    weights, fit = impact["factors_with_weights"], impact["fit"]
    if fit["r2"] >= fit["min_r2"] and fit["mape"] < fit["naive_mape"]:
        assert impact["status"] == "explained"
        assert weights[impact["dominant_factor"]] == max(weights.values())
    else:  # the hold-out fit of the retrained rice model is below impact.min_explained_r2
        assert (impact["status"], impact["dominant_factor"]) == ("mostly_unexplained", None)
    outside = api.get(
        "/api/v1/impact", params={"commodity": "beras", "region": "Bandung", "date": "1990-01-01"}
    )
    assert outside.status_code == 422 and "outside" in outside.json()["detail"]

    # critical alerts carry the explanation of their market's month
    daily = Lakehouse(lake)[GOLD_PRICE_DAILY].open().to_pandas()
    market, commodity = daily[["market_id", "commodity"]].iloc[0]
    at = datetime(2025, 3, 10, tzinfo=UTC)
    alert = {c: None for c in arrow_schema(GOLD_ALERTS).names} | {
        "alert_id": "a-critical",
        "rule": "price_spike",
        "severity": "critical",
        "status": "open",
        "market_id": market,
        "commodity": commodity,
        "opened_at": at,
        "updated_at": datetime.now(UTC),  # the newest: first in /alerts, within its default limit
    }
    calm = alert | {"alert_id": "a-warning", "severity": "warning"}
    write_deltalake(
        str(GOLD_ALERTS.path(lake)),
        pa.Table.from_pylist([alert, calm], schema=arrow_schema(GOLD_ALERTS)),
        mode="append",
    )
    served: dict = {}
    deadline = time.monotonic() + 2 + lake.api.cache_check_ms / 1000
    while "a-warning" not in served and time.monotonic() < deadline:  # the view's next check
        served = {a["alert_id"]: a for a in api.get("/api/v1/alerts").json()}
        time.sleep(0.1)
    assert served["a-warning"]["impact"] is None
    explained = served["a-critical"]["impact"]
    assert explained["month"] == "2025-03" and explained["lang"] == "id"
    assert sum(explained["factors_with_weights"].values()) == 100


def test_the_tracking_server_runs_no_idle_job_runner(mlflow_server) -> None:
    """MLflow 3's job runner (``huey`` consumers polling their queues, ~half a core of this
    box) is off: nothing in the server's session but the server."""
    session = mlflow_server.process().pid  # the keeper leads the service's session
    members = [p for p in psutil.process_iter(["cmdline"]) if _session(p) == session]
    assert members, "the server's session is empty"
    assert not [p for p in members if "huey" in " ".join(p.info["cmdline"] or [])]


def _session(process: psutil.Process) -> int | None:
    try:
        return os.getsid(process.pid)
    except OSError:  # gone meanwhile
        return None
