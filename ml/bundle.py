"""The registered forecaster: a pyfunc bundling the fitted models of the series that one
algorithm serves. Kept apart from ``ml.tracking`` so that loading a registered model needs
only this module, ``ml.models`` (+ ``ml.features``) and ``lakehouse.settings`` — which the
registered model carries as ``code_paths`` — and the packages of ``requirements``."""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from ml.models import Forecaster

# What unpickling and running the models imports (pydantic-settings and pyyaml through
# lakehouse.settings, scikit-learn through xgboost's estimator); Prophet only when served.
REQUIREMENTS = (
    "mlflow",
    "cloudpickle",
    "numpy",
    "pandas",
    "pydantic",
    "pydantic-settings",
    "pyyaml",
    "holidays",
    "scikit-learn",
    "xgboost-cpu",
    "statsforecast",
)
CODE_PACKAGES = ("ml", "lakehouse")  # the project code a registered model carries


def requirements(algorithm: str) -> list[str]:
    """The pinned (installed) versions of the packages the ``algorithm``'s bundle needs."""
    packages = [*REQUIREMENTS, *(["prophet"] if algorithm.startswith("prophet") else [])]
    return [f"{p}=={version(p)}" for p in packages]


class ForecastBundle(PythonModel):
    """Fitted forecasters by series id. ``predict`` takes a frame with a ``series_id`` column
    and returns each requested, known series' next ``horizon`` days (target_date, horizon,
    yhat, 80 %/95 % bands, series_id)."""

    def __init__(self, models: dict[str, Forecaster]) -> None:
        self.models = models

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        frames = [
            self.models[sid].predict().reset_index().assign(series_id=sid)
            for sid in model_input["series_id"].unique()
            if sid in self.models
        ]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
