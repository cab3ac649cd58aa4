"""The registered forecaster is portable: its requirements are the project's pins of what its
code imports, and it loads with ``mlflow.pyfunc.load_model`` and serves with ``mlflow models
serve --env-manager local`` from a folder outside the checkout, with no PYTHONPATH."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import tomllib
from importlib.metadata import version
from pathlib import Path

import httpx
import pytest

from lakehouse.config.settings import PROJECT_ROOT, Settings
from scripts.isolated_stack import free_ports

SERIES = ("market:PIHPS-AGG:bawang_merah", "market:PIHPS-AGG:cabai_merah")
LOAD = """
import json, sys
import mlflow, pandas as pd
model = mlflow.pyfunc.load_model(sys.argv[1])
out = model.predict(pd.DataFrame({"series_id": sys.argv[2:]}))
print(json.dumps({"ml": sys.modules["ml"].__file__, "yhat": out["yhat"].tolist()}))
"""


def test_requirements_are_the_project_pins_of_what_the_model_imports() -> None:
    from ml.pins import requirements

    combo = requirements("combo")
    names = {r.split("==")[0] for r in combo}
    # imported by lakehouse.config.settings, ml.models (lazily) and ml.features; sklearn by xgboost
    assert {"pydantic-settings", "pyyaml", "statsforecast", "xgboost-cpu", "holidays"} <= names
    assert {"mlflow", "pandas", "numpy", "scikit-learn"} <= names
    assert "prophet" not in names and "pyspark" not in names
    assert "prophet" in {r.split("==")[0] for r in requirements("prophet")}
    # the global model's bundle serves its stored points: no mlforecast or LightGBM to load it
    assert not {"mlforecast", "lightgbm"} & {r.split("==")[0] for r in requirements("lgbm_global")}
    project = tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "pyyaml==6.0.3" in combo and "pyyaml==6.0.3" in project["project"]["dependencies"]
    for requirement in combo:  # the pins are what this environment runs
        name, pin = requirement.split("==")
        assert version(name) == pin


def _outside_env(settings: Settings) -> dict[str, str]:
    """This environment without PYTHONPATH, pointing at the test's MLflow server."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    path = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"  # venv activated
    return env | {"MLFLOW_TRACKING_URI": settings.mlflow.tracking_uri, "PATH": path}


def test_registered_model_loads_and_serves_outside_the_checkout(
    settings: Settings, mlflow_server, sample_prices: Path, tmp_path: Path
) -> None:
    from mlflow import MlflowClient
    from mlflow.models import get_model_info
    from mlflow.pyfunc import get_model_dependencies

    from lakehouse.catalog.conf import conf_of
    from ml import tracking
    from ml.models import make_model
    from ml.pins import requirements
    from ml.series import csv_series, regular

    series, _ = csv_series(sample_prices, settings.tz, conf_of(settings))
    fitted = {}
    for sid in SERIES:
        y, _ = regular(series[series["series_id"] == sid].set_index("date")["y"])
        fitted[sid] = make_model("combo", settings.ml.horizon, seed=1).fit(y)
    expected = [v for sid in SERIES for v in fitted[sid].predict()["yhat"]]
    tracking.connect(settings)
    with tracking.tracked_run("test", {}, {}):
        version = tracking.register(fitted, "portable-forecaster", "combo")
    uri = "models:/portable-forecaster@champion"
    client = MlflowClient(settings.mlflow.tracking_uri)
    assert client.get_model_version_by_alias("portable-forecaster", "champion").version == version
    info = get_model_info(uri)
    assert info.signature.inputs.input_names() == ["series_id"]
    assert {"target_date", "yhat", "yhat_upper_95"} <= set(info.signature.outputs.input_names())
    shipped = Path(get_model_dependencies(uri)).read_text(encoding="utf-8")
    assert shipped.split() == requirements("combo")

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = _outside_env(settings)
    done = subprocess.run(
        [sys.executable, "-c", LOAD, uri, *SERIES],
        cwd=outside,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert not loaded["ml"].startswith(str(PROJECT_ROOT))  # the model's own copy of the code
    assert loaded["yhat"] == pytest.approx(expected)

    (port,) = free_ports(1)
    mlflow_bin = str(Path(sys.executable).parent / "mlflow")
    serve = [mlflow_bin, "models", "serve", "-m", uri, "-h", "127.0.0.1", "-p", str(port)]
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [*serve, "--env-manager", "local"], cwd=outside, env=env, stdout=out, stderr=out
        )
    try:
        deadline = time.monotonic() + 600  # imports on a busy box take minutes
        while True:
            assert server.poll() is None, log.read_text()[-2000:]
            try:
                answer = httpx.post(
                    f"http://127.0.0.1:{port}/invocations",
                    json={"dataframe_records": [{"series_id": sid} for sid in SERIES]},
                    timeout=30,
                )
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "mlflow models serve did not start"
                time.sleep(1)
        assert answer.status_code == 200, answer.text
        served = answer.json()["predictions"]
        ids = [s for s in SERIES for _ in range(settings.ml.horizon)]
        assert [row["series_id"] for row in served] == ids
        assert [row["yhat"] for row in served] == pytest.approx(expected)
    finally:
        server.terminate()
        server.wait(timeout=30)
