"""Forecasting models and features on small frames: shapes, ordered intervals, baselines'
arithmetic, holidays from the `holidays` package, and no look-ahead in the features."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from ml.features import design, holiday_table, origin_features
from ml.models import GLOBAL_MODELS, INTERVAL_COLUMNS, MODELS, Combination, make_model

HORIZON = 7


def _series(days: int = 200, seed: int = 1) -> pd.Series:
    rng = np.random.default_rng(seed)
    index = pd.date_range("2024-01-01", periods=days, freq="D")
    weekly = 1 + 0.03 * np.sin(2 * np.pi * index.dayofweek / 7)
    trend = np.linspace(40_000, 46_000, days)
    return pd.Series(trend * weekly * (1 + rng.normal(0, 0.01, days)), index=index)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_every_model_forecasts_the_next_days_with_ordered_intervals(name: str) -> None:
    y = _series()
    model = make_model(name, HORIZON, seed=3)
    if name in GLOBAL_MODELS:  # handed the global model's points (ml.global_model)
        model.global_points = np.full(HORIZON, y.iloc[-1] * 1.01)
    forecast = model.fit(y).predict()
    expected_days = pd.date_range(y.index[-1] + pd.Timedelta(days=1), periods=HORIZON)
    assert list(forecast.index) == list(expected_days)
    assert list(forecast["horizon"]) == list(range(1, HORIZON + 1))
    assert forecast.notna().all().all()
    low80, high80, low95, high95 = (forecast[c] for c in INTERVAL_COLUMNS)
    assert (low95 <= low80).all() and (low80 <= high80).all() and (high80 <= high95).all()
    assert (low95 <= forecast["yhat"]).all() and (forecast["yhat"] <= high95).all()
    assert (forecast["yhat"] > 0).all()
    assert ((forecast["yhat"] / y.iloc[-1] - 1).abs() < 0.3).all()  # sane on a calm series


def test_same_data_same_forecast() -> None:
    y = _series()
    for name in ("xgboost", "prophet", "ets", "combo"):
        first = make_model(name, HORIZON, seed=5).fit(y).predict()
        again = make_model(name, HORIZON, seed=5).fit(y).predict()
        pd.testing.assert_frame_equal(first, again)


def test_combination_is_the_geometric_mean_of_its_members() -> None:
    y = _series()
    combo = make_model("combo", HORIZON, seed=2).fit(y).predict()
    members = [make_model(m, HORIZON, seed=2).fit(y).predict() for m in Combination.members]
    columns = ["yhat", *INTERVAL_COLUMNS]
    logs = np.mean([np.log(m[columns].to_numpy()) for m in members], axis=0)
    np.testing.assert_allclose(combo[columns].to_numpy(), np.exp(logs))


@pytest.mark.parametrize("name", ["ets", "theta"])
def test_a_model_advanced_to_a_later_origin_keeps_its_fit_and_follows_the_new_days(name: str):
    rng = np.random.default_rng(4)  # a random walk: the level follows the last prices
    index = pd.date_range("2024-01-01", periods=200, freq="D")
    y = pd.Series(50_000 * np.exp(np.cumsum(rng.normal(0, 0.01, 200))), index=index)
    model = make_model(name, HORIZON).fit(y.iloc[:-14])
    fitted = model.model.model_  # the form and parameters the fit chose
    # advanced over the very history it was fitted on: the fit's own forecast
    fresh = model.predict()
    pd.testing.assert_frame_equal(model.advance(y.iloc[:-14]).predict(), fresh)
    # two weeks later, 20 % dearer: the same parameters, a forecast from the new last day on
    dearer = pd.concat([y.iloc[:-14], y.iloc[-14:] * 1.2])
    later = model.advance(dearer).predict()
    assert model.model.model_ is fitted
    assert later.index[0] == dearer.index[-1] + pd.Timedelta(days=1)
    assert abs(later["yhat"].iloc[0] / dearer.iloc[-1] - 1) < 0.02


def test_conformal_quantiles_replace_the_native_bands() -> None:
    model = make_model("ets", HORIZON).fit(_series())
    native = model.predict()
    model.conformal = np.array([-0.01, 0.01, -0.02, 0.02])  # in QUANTILES order
    calibrated = model.predict()
    pd.testing.assert_series_equal(calibrated["yhat"], native["yhat"])
    h = np.arange(1, HORIZON + 1)
    np.testing.assert_allclose(
        calibrated["yhat_upper_95"] / calibrated["yhat"], np.exp(0.02 * np.sqrt(h))
    )
    np.testing.assert_allclose(
        calibrated["yhat_lower_80"] / calibrated["yhat"], np.exp(-0.01 * np.sqrt(h))
    )


def test_baselines() -> None:
    y = _series(60)
    naive = make_model("naive", HORIZON).fit(y).predict()
    assert (naive["yhat"] == y.iloc[-1]).all()
    spiked = y.copy()
    spiked.iloc[-1] *= 1.4  # a one-day data-entry spike
    robust = make_model("naive_median3", HORIZON).fit(spiked).predict()
    assert (robust["yhat"] == y.iloc[-3:-1].max()).all()  # the median of the last three days
    seasonal = make_model("seasonal_naive", HORIZON).fit(y).predict()
    np.testing.assert_array_equal(seasonal["yhat"].to_numpy(), y.iloc[-7:].to_numpy())


def test_holidays_and_ramadan_come_from_the_package() -> None:
    table = holiday_table(pd.Timestamp("2024-06-01"), pd.Timestamp("2024-06-30"))
    days = table.groupby("holiday")["ds"].apply(set)
    assert {"idul_fitri", "idul_adha", "natal", "tahun_baru", "imlek", "ramadan_start"} <= set(
        days.index
    )
    assert pd.Timestamp("2024-04-10") in days["idul_fitri"]
    assert pd.Timestamp("2024-03-12") in days["ramadan_start"]  # Indonesia's (MABIMS) 1 Ramadan
    assert pd.Timestamp("2024-04-11") not in days["idul_fitri"]  # second day is not counted


def test_features_at_an_origin_ignore_later_prices() -> None:
    y = _series()
    origin = y.index[150]
    altered = y.copy()
    altered.iloc[151:] *= 3
    pd.testing.assert_series_equal(
        origin_features(y).loc[origin], origin_features(altered).loc[origin]
    )
    origins = pd.DatetimeIndex([origin])
    pd.testing.assert_frame_equal(design(y, origins, HORIZON), design(altered, origins, HORIZON))
