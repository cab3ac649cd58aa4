"""The global forecasting model: one LightGBM model (``mlforecast``) trained across every series
of a panel — all markets and regions, all commodities, the commodity a categorical feature —
so that a surge seen in one series teaches the others.

The target is the daily log return (``mlforecast`` differences the log price once), so the
model learns changes, not levels, as a random-walk-like series needs; it forecasts the next
``ml.horizon`` days recursively. Features, all known at the origin or in advance:

- lags 1, 2, 7, 14 of the daily return and its 7- and 28-day rolling mean and standard
  deviation (lagged one day: no look-ahead);
- calendar of the target day (``ml.features.CALENDAR``): day of week, month, Ramadan day,
  weeks to Idul Fitri, Idul Adha and Nataru — from the ``holidays`` package;
- exogenous, dynamic features (``ml.exogenous``, the families of ``ml.global_exogenous``) when
  ``ExogSources`` are given: the weather of the series' place (rain and temperature anomalies of
  the last complete month), the news signal's direction and the days of supply cover (7-day
  means) of its commodity and province where gold has them. Each is computed for a target day
  from data dated at least ``ml.horizon`` days before it, so the rows of the recursive 7-day
  forecast (``X_df``) hold only what was known at the origin, and the training rows are built
  the same way (no fresher feature at fit than at predict). A feature empty over the training
  rows (its gold table absent, no rows for these series) is left out of that fit; a missing
  value elsewhere is NaN (LightGBM's missing). Default families: news and supply; the weather
  is off — on the PIHPS backtest it cost a warned surge for no MAPE gain (docs/forecasting.md,
  "Exogenous features").

Each series' points are handed to ``ml.models.GlobalForecast``, which serves them like any
other model (bands and selection come from the backtest), so a registered model needs neither
``mlforecast`` nor LightGBM to load.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lakehouse.config.settings import MlSettings
from ml.features import CALENDAR
from ml.series import regular

if TYPE_CHECKING:
    from mlforecast import MLForecast

    from ml.exogenous import ExogSources

LAGS = (1, 2, 7, 14)
ROLLING = (7, 28)
MIN_ROWS = 60  # days of history a series needs to enter the training panel


MOMENTUM = (3, 14, 56)  # the ``momentum`` family: mean daily return over these windows too


def static_features(ml: MlSettings) -> list[str]:
    """The static (per series) categorical features: the commodity, and the province with
    the ``region`` family."""
    return ["commodity", *(["region"] if "region" in ml.global_features else [])]


def panel(series: pd.DataFrame) -> pd.DataFrame:
    """``unique_id, ds, y, commodity, region`` with y the log price of every day (gaps
    forward-filled, as the local models see them) of every series of a ``SERIES_COLUMNS``
    frame."""
    parts = []
    for sid, g in series.groupby("series_id", sort=True):
        filled, _ = regular(g.set_index("date")["y"])
        parts.append(
            pd.DataFrame(
                {
                    "unique_id": sid,
                    "ds": filled.index,
                    "y": np.log(filled.to_numpy(dtype=float)),
                    "commodity": g["commodity"].iloc[0],
                    "region": g["region"].iloc[0] or "",
                }
            )
        )
    frame = pd.concat(parts, ignore_index=True)
    for column in ("commodity", "region"):
        frame[column] = frame[column].astype("category")
    return frame


def _forecaster(ml: MlSettings) -> MLForecast:
    from lightgbm import LGBMRegressor
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean, RollingStd
    from mlforecast.target_transforms import Differences, LocalStandardScaler

    model = LGBMRegressor(
        **ml.hyperparameters.lgbm_global,
        n_jobs=1,  # one thread: OpenMP threads spin against each other on a busy 2-core box
        random_state=ml.seed,
        verbose=-1,
    )
    transforms = [t(window_size=w) for w in ROLLING for t in (RollingMean, RollingStd)]
    if "momentum" in ml.global_features:
        transforms += [RollingMean(window_size=w) for w in MOMENTUM]
    targets = [Differences([1])]
    if "scaled" in ml.global_features:  # each series' returns in units of its own spread
        targets.append(LocalStandardScaler())
    return MLForecast(
        models={"lgbm": model},
        freq="D",
        lags=list(LAGS),
        lag_transforms={1: transforms},
        date_features=list(CALENDAR),
        target_transforms=targets,
    )


def features(
    series: pd.DataFrame, ml: MlSettings, sources: ExogSources | None
) -> pd.DataFrame | None:
    """The exogenous features (``ml.exogenous``) of every series' days and the ``ml.horizon``
    after its last, or None without sources or families."""
    if sources is None or not ml.global_exogenous:
        return None
    from ml.exogenous import exogenous

    return exogenous(series, sources, ml.horizon, ml.global_exogenous)


@dataclass(frozen=True)
class Fitted:
    """The global model fitted on the panel up to ``through`` (its last day), and the
    exogenous columns it was fitted with (``used``: those not empty over its rows)."""

    model: MLForecast
    used: list[str]
    through: pd.Timestamp


def _training_rows(data: pd.DataFrame, ml: MlSettings) -> pd.DataFrame:
    """The series of ``data`` with at least ``MIN_ROWS`` days, with the static features only."""
    sizes = data.groupby("unique_id", observed=True)["ds"].transform("size")
    statics = static_features(ml)
    rows = data[sizes >= MIN_ROWS]
    return rows.drop(columns=[c for c in ("commodity", "region") if c not in statics])


def _fit(data: pd.DataFrame, ml: MlSettings, exog: pd.DataFrame | None) -> Fitted | None:
    """The model fitted on ``data`` (None: no series long enough). ``exog``: the dynamic
    features of every day (``features``), those of the forecast days included."""
    train = _training_rows(data, ml)
    if train.empty:
        return None
    used: list[str] = []
    if exog is not None:
        train = train.merge(exog, on=["unique_id", "ds"], how="left")
        named = [c for c in exog.columns if c not in ("unique_id", "ds")]
        used = [c for c in named if train[c].notna().any()]
        train = train.drop(columns=[c for c in named if c not in used])
    model = _forecaster(ml).fit(train, static_features=static_features(ml))
    return Fitted(model, used, data["ds"].max())


def _predict(
    fitted: Fitted,
    data: pd.DataFrame,
    ids: list[str],
    ml: MlSettings,
    exog: pd.DataFrame | None,
) -> pd.DataFrame:
    """Forecast ``ids`` from their history in ``data``: frame ``unique_id, ds, yhat`` (prices).
    ``data`` may run past ``fitted.through``: the model then forecasts from the later days with
    the parameters of its fit (nothing after ``through`` trained it)."""
    rows = _training_rows(data, ml)
    ids = [i for i in ids if i in set(rows["unique_id"])]
    if not ids:
        return pd.DataFrame(columns=["unique_id", "ds", "yhat"])
    later = data["ds"].max() > fitted.through
    future = None
    if fitted.used:
        used = exog.loc[:, ["unique_id", "ds", *fitted.used]]
        if later:
            rows = rows.merge(used, on=["unique_id", "ds"], how="left")
        last = rows.groupby("unique_id", observed=True)["ds"].max().loc[ids]
        days = np.arange(1, ml.horizon + 1) * pd.Timedelta(days=1)
        future = pd.DataFrame(
            {
                "unique_id": np.repeat(last.index.to_numpy(), ml.horizon),
                "ds": np.repeat(last.to_numpy(), ml.horizon) + np.tile(days, len(last)),
            }
        ).merge(used, on=["unique_id", "ds"], how="left")
    new_df = rows if later else None
    out = fitted.model.predict(ml.horizon, new_df=new_df, ids=ids, X_df=future)
    return pd.DataFrame(
        {"unique_id": out["unique_id"], "ds": out["ds"], "yhat": np.exp(out["lgbm"])}
    )


def _points(out: pd.DataFrame, horizon: int) -> Mapping[str, np.ndarray]:
    return {
        str(sid): g.sort_values("ds")["yhat"].to_numpy()[:horizon]
        for sid, g in out.groupby("unique_id", sort=False)
    }


def global_forecast(
    series: pd.DataFrame, ml: MlSettings, sources: ExogSources | None = None
) -> dict[str, np.ndarray]:
    """The next ``ml.horizon`` days of every series (long enough) from one model fitted on all
    of their history: series id → prices (horizon,). ``sources``: of the exogenous features."""
    data = panel(series)
    exog = features(series, ml, sources)
    fitted = _fit(data, ml, exog)
    if fitted is None:
        return {}
    return dict(
        _points(_predict(fitted, data, list(data["unique_id"].unique()), ml, exog), ml.horizon)
    )


def global_backtest(
    series: pd.DataFrame,
    origins: Mapping[str, pd.DatetimeIndex],
    ml: MlSettings,
    sources: ExogSources | None = None,
) -> dict[str, dict[pd.Timestamp, np.ndarray]]:
    """For every backtest origin of every series, the global model's forecast made with data
    up to that origin only: series id → origin → prices (horizon,). The model is fitted on
    every series' history up to an origin, and again at the first origin more than
    ``ml.fit_every_origins`` − 1 horizons after it (1: at every distinct origin); in between,
    it forecasts from each origin's history with the parameters of that earlier fit."""
    data = panel(series)
    exog = features(series, ml, sources)
    out: dict[str, dict[pd.Timestamp, np.ndarray]] = {sid: {} for sid in origins}
    reuse = pd.Timedelta(days=(ml.fit_every_origins - 1) * ml.horizon)
    fitted: Fitted | None = None
    for origin in sorted({o for days in origins.values() for o in days}):
        ids = [sid for sid, days in origins.items() if origin in days]
        known = data[data["ds"] <= origin]
        if fitted is None or origin - fitted.through > reuse:
            fitted = _fit(known, ml, exog)
            if fitted is None:
                continue
        predicted = _predict(fitted, known, ids, ml, exog)
        for sid, points in _points(predicted, ml.horizon).items():
            out[sid][origin] = points
    return out
