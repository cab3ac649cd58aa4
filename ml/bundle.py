"""The registered forecaster: a pyfunc bundling the fitted models of the series that one
algorithm serves. Kept apart from ``ml.tracking`` so that loading a registered model needs
only this module, ``ml.models`` (+ ``ml.features``) and ``lakehouse.config.settings`` — which the
registered model carries as ``code_paths`` — and the packages ``ml.pins.requirements``
derives from that import graph.
"""

from __future__ import annotations

from typing import Any

import pandas as pd
from mlflow.pyfunc import PythonModel

from ml.models import Forecaster

ROOT_MODULE = "ml.bundle"  # what loading a registered model imports first
CODE_PACKAGES = ("ml", "lakehouse")  # the project code a registered model carries


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
