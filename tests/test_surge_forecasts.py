"""Surge warnings and the global model on small frames: surge_prob is a probability and
calibrated-ish on simulated paths, the backtest carries it per origin, the global model
forecasts every series from data up to its origin only, and its calendar comes from the
``holidays`` package."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lakehouse.config.settings import MlSettings
from ml.backtest import backtest_series, global_points_for
from ml.features import ramadan_day, weeks_to_idul_fitri, weeks_to_nataru
from ml.global_model import global_forecast
from ml.models import INTERVAL_COLUMNS, Z80, surge_probability

HORIZON = 7
ML = MlSettings(origins=4, selection_origins=2, min_history_days=60, n_jobs=1)


def _frame(last: float, drift: float, sigma: float) -> pd.DataFrame:
    """A forecast frame whose point path drifts by ``drift`` a day (log) and whose bands are
    those of a log random walk with daily volatility ``sigma``."""
    h = np.arange(1, HORIZON + 1)
    yhat = last * np.exp(drift * h)
    z95 = 1.959963984540054
    spread = sigma * np.sqrt(h)
    bands = [np.exp(-Z80 * spread), np.exp(Z80 * spread), np.exp(-z95 * spread)]
    bands.append(np.exp(z95 * spread))
    frame = pd.DataFrame({"horizon": h, "yhat": yhat})
    for column, factor in zip(INTERVAL_COLUMNS, bands, strict=True):
        frame[column] = yhat * factor
    return frame


@pytest.mark.parametrize("drift", [-0.01, 0.0, 0.01, 0.02])
def test_surge_prob_is_calibrated_ish_on_simulated_random_walks(drift: float) -> None:
    """Daily log random walks with the forecast's drift and volatility: the share of paths
    reaching +10 % within the week is close to the predicted probability (the formula watches
    the path continuously, days only daily: it may overstate by a little, never understate)."""
    sigma, last = 0.025, 100.0
    predicted = surge_probability(last, _frame(last, drift, sigma), 0.10)
    rng = np.random.default_rng(7)
    paths = last * np.exp(np.cumsum(rng.normal(drift, sigma, (20_000, HORIZON)), axis=1))
    observed = float((paths.max(axis=1) >= 1.1 * last).mean())
    assert 0.0 <= predicted <= 1.0
    assert observed - 0.02 <= predicted <= observed + 0.1


def test_surge_prob_extremes() -> None:
    assert surge_probability(100.0, _frame(100.0, 0.03, 0.01), 0.10) > 0.9  # +21 % expected
    assert surge_probability(100.0, _frame(100.0, -0.01, 0.005), 0.10) < 0.01
    flat = _frame(100.0, 0.0, 0.0)
    assert surge_probability(100.0, flat, 0.10) == 0.0  # no spread, no rise: no surge


def _surging(days: int = 240, seed: int = 3) -> pd.Series:
    """A calm random walk with a +30 % surge over a week every ~8 weeks."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0, 0.01, days)
    for start in range(50, days - 7, 56):
        steps[start : start + 7] += np.log(1.3) / 7
    index = pd.date_range("2024-01-01", periods=days, freq="D")
    return pd.Series(40_000 * np.exp(np.cumsum(steps)), index=index)


def test_backtest_carries_a_surge_probability_per_model_and_origin() -> None:
    ml = ML.model_copy(update={"origins": 10})
    result = backtest_series("s", _surging(), ["naive", "ets"], ml)
    f = result.forecasts
    assert f["surge_prob"].between(0, 1).all()
    assert (f.groupby(["model", "origin"])["surge_prob"].nunique() == 1).all()
    served = result.metrics()["selected"]
    assert served["surges"] >= 1  # the surges are there to be warned of


def _panel(days: int = 200) -> pd.DataFrame:
    parts = []
    for i, commodity in enumerate(("cabai_merah", "cabai_merah", "bawang_merah")):
        y = _surging(days, seed=i)
        parts.append(
            pd.DataFrame(
                {
                    "series_id": f"market:M{i}:{commodity}",
                    "region": "Jawa Barat",
                    "commodity": commodity,
                    "date": y.index,
                    "y": y.to_numpy(),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def test_global_model_forecasts_every_series_from_its_own_past() -> None:
    panel = _panel()
    points = global_forecast(panel, ML)
    assert set(points) == set(panel["series_id"])
    for sid, p in points.items():
        last = panel.loc[panel["series_id"] == sid, "y"].iloc[-1]
        assert p.shape == (HORIZON,) and np.isfinite(p).all()
        assert (np.abs(np.log(p / last)) < 0.5).all()

    at = global_points_for(panel, ["naive", "lgbm_global"], ML)
    origin = min(at["market:M0:cabai_merah"])
    later = panel["date"] > origin
    altered = panel.assign(y=panel["y"].where(~later, panel["y"] * 2))  # the future changes
    again = global_points_for(altered, ["naive", "lgbm_global"], ML)
    for sid in at:
        np.testing.assert_allclose(at[sid][origin], again[sid][origin])


def test_backtest_scores_the_global_model_like_any_other() -> None:
    panel = _panel()
    points = global_points_for(panel, ["naive", "lgbm_global", "combo_global"], ML)
    sid = "market:M1:cabai_merah"
    y = panel[panel["series_id"] == sid].set_index("date")["y"]
    result = backtest_series(
        sid, y, ["naive", "lgbm_global", "combo_global"], ML, None, points[sid]
    )
    metrics = result.metrics()
    assert {"lgbm_global", "combo_global"} <= set(metrics)
    assert np.isfinite(metrics["lgbm_global"]["mape"])


def test_calendar_of_the_global_model() -> None:
    days = pd.DatetimeIndex(["2024-03-12", "2024-04-09", "2024-04-10", "2024-12-11", "2024-03-11"])
    # Ramadan 1445 began on 12 March 2024 in Indonesia (the holidays package's MABIMS calendar),
    # not 30 days before Idul Fitri (10 April, confirmed): 29 days
    assert list(ramadan_day(days)) == [1, 29, 0, 0, 0]
    assert list(weeks_to_idul_fitri(days))[:3] == [4, 0, 0]
    assert weeks_to_nataru(days)[3] == 2  # 14 days to Christmas 2024


def test_retrain_serves_the_global_model_with_its_surge_probability() -> None:
    from ml.retrain import ServedJob, global_series, train_series

    panel = _panel()
    models = ["naive", "lgbm_global"]
    points = global_series(panel, models, ML)
    sid = "market:M0:cabai_merah"
    y = panel[panel["series_id"] == sid].set_index("date")["y"]
    backtest = backtest_series(sid, y, models, ML, models, points[sid].backtest)
    backtest.selected = "lgbm_global"  # as if it had beaten naive (ml.selection)
    trained = train_series(sid, y, ML, ServedJob(backtest, points[sid].served))
    np.testing.assert_allclose(trained.forecast["yhat"], points[sid].served)
    assert trained.forecast["surge_prob"].between(0, 1).all()
    assert trained.forecast["surge_prob"].nunique() == 1


def test_calibration_fixes_an_overconfident_probability_and_picks_a_precise_threshold() -> None:
    from ml.surge import brier, calibrate, reliability, threshold_for_precision

    rng = np.random.default_rng(5)
    truth = rng.beta(0.5, 4, 4000)  # the real chance of a surge at each origin
    came = rng.random(4000) < truth
    raw = np.clip(2 * truth, 0, 1)  # a forecast that says twice the real chance
    frame = pd.DataFrame({"prob": raw, "came": came})
    fitted, held = frame.iloc[:2000], frame.iloc[2000:]
    calibration = calibrate(fitted, precision=0.6)
    calibrated = calibration(held["prob"])
    assert brier(calibrated, held["came"]) < brier(held["prob"], held["came"])
    table = reliability(calibrated, held["came"].to_numpy())
    assert (abs(table["mean_prob"] - table["observed"]) < 0.1).all()
    at = calibration.threshold
    assert at is not None
    warned = calibrated >= at
    assert held["came"][warned].mean() > 0.5  # close to the 0.6 asked, on new origins
    assert threshold_for_precision(np.array([0.9, 0.8]), np.array([False, False]), 0.6) is None
