"""The global forecasting model: one LightGBM model (``mlforecast``) trained across every series
of a panel — all markets and regions, all commodities, the commodity a categorical feature —
so that a surge seen in one series teaches the others.

The target is the daily log return (``mlforecast`` differences the log price once), so the
model learns changes, not levels, as a random-walk-like series needs; it forecasts the next
``ml.horizon`` days recursively. Features, all known at the origin or in advance:

- lags 1, 2, 7, 14 of the daily return and its 7- and 28-day rolling mean and standard
  deviation (lagged one day: no look-ahead);
- calendar of the target day (``ml.features.CALENDAR``): day of week, month, Ramadan day,
  weeks to Idul Fitri, Idul Adha and Nataru — from the ``holidays`` package.

Weather, the news signal and supply cover are not features yet (see docs/forecasting.md).

Each series' points are handed to ``ml.models.GlobalForecast``, which serves them like any
other model (bands and selection come from the backtest), so a registered model needs neither
``mlforecast`` nor LightGBM to load.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from lakehouse.config.settings import MlSettings
from ml.features import CALENDAR
from ml.series import regular

if TYPE_CHECKING:
    from mlforecast import MLForecast

LAGS = (1, 2, 7, 14)
ROLLING = (7, 28)
MIN_ROWS = 60  # days of history a series needs to enter the training panel


def panel(series: pd.DataFrame) -> pd.DataFrame:
    """``unique_id, ds, y, commodity`` with y the log price of every day (gaps forward-filled,
    as the local models see them) of every series of a ``SERIES_COLUMNS`` frame."""
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
                }
            )
        )
    frame = pd.concat(parts, ignore_index=True)
    frame["commodity"] = frame["commodity"].astype("category")
    return frame


def _forecaster(ml: MlSettings) -> MLForecast:
    from lightgbm import LGBMRegressor
    from mlforecast import MLForecast
    from mlforecast.lag_transforms import RollingMean, RollingStd
    from mlforecast.target_transforms import Differences

    model = LGBMRegressor(
        **ml.hyperparameters.lgbm_global,
        n_jobs=1,  # one thread: OpenMP threads spin against each other on a busy 2-core box
        random_state=ml.seed,
        verbose=-1,
    )
    transforms = [t(window_size=w) for w in ROLLING for t in (RollingMean, RollingStd)]
    return MLForecast(
        models={"lgbm": model},
        freq="D",
        lags=list(LAGS),
        lag_transforms={1: transforms},
        date_features=list(CALENDAR),
        target_transforms=[Differences([1])],
    )


def _fit_predict(data: pd.DataFrame, ids: list[str], ml: MlSettings) -> pd.DataFrame:
    """Fit on ``data`` (series with at least ``MIN_ROWS`` days) and forecast ``ids``: frame
    ``unique_id, ds, yhat`` (prices)."""
    sizes = data.groupby("unique_id", observed=True)["ds"].transform("size")
    train = data[sizes >= MIN_ROWS]
    ids = [i for i in ids if i in set(train["unique_id"])]
    if not ids:
        return pd.DataFrame(columns=["unique_id", "ds", "yhat"])
    fitted = _forecaster(ml).fit(train, static_features=["commodity"])
    out = fitted.predict(ml.horizon, ids=ids)
    return pd.DataFrame(
        {"unique_id": out["unique_id"], "ds": out["ds"], "yhat": np.exp(out["lgbm"])}
    )


def _points(out: pd.DataFrame, horizon: int) -> Mapping[str, np.ndarray]:
    return {
        str(sid): g.sort_values("ds")["yhat"].to_numpy()[:horizon]
        for sid, g in out.groupby("unique_id", sort=False)
    }


def global_forecast(series: pd.DataFrame, ml: MlSettings) -> dict[str, np.ndarray]:
    """The next ``ml.horizon`` days of every series (long enough) from one model fitted on all
    of their history: series id → prices (horizon,)."""
    data = panel(series)
    return dict(_points(_fit_predict(data, list(data["unique_id"].unique()), ml), ml.horizon))


def global_backtest(
    series: pd.DataFrame, origins: Mapping[str, pd.DatetimeIndex], ml: MlSettings
) -> dict[str, dict[pd.Timestamp, np.ndarray]]:
    """For every backtest origin of every series, the global model's forecast made with data
    up to that origin only (one fit per distinct origin, on every series' history up to it):
    series id → origin → prices (horizon,)."""
    data = panel(series)
    out: dict[str, dict[pd.Timestamp, np.ndarray]] = {sid: {} for sid in origins}
    for origin in sorted({o for days in origins.values() for o in days}):
        ids = [sid for sid, days in origins.items() if origin in days]
        predicted = _fit_predict(data[data["ds"] <= origin], ids, ml)
        for sid, points in _points(predicted, ml.horizon).items():
            out[sid][origin] = points
    return out
