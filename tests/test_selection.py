"""Honest selection (``ml.selection``): naive serves unless a rival beats it by the margin with a
significant one-sided Diebold–Mariano test over enough origins; choices at an origin use only
the origins before it; series of a commodity are pooled; the reason says why."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lakehouse.config.settings import MlSettings, SelectionSettings
from ml.backtest import SELECTED, SeriesBacktest, metrics_by_series, select
from ml.selection import choices_by_origin, choose, dm_pvalue, origin_losses

SEL = SelectionSettings(level="commodity", min_origins=26, margin=0.02, significance=0.05)
ORIGINS = pd.date_range("2023-01-02", periods=40, freq="7D")


def _forecasts(series: str, errors: dict[str, np.ndarray]) -> pd.DataFrame:
    """One forecast row per model and origin (horizon 1) with the given relative errors."""
    rows = [
        {
            "series": series,
            "model": model,
            "origin": origin,
            "target_date": origin + pd.Timedelta(days=1),
            "y": 100.0,
            "yhat": 100.0 * (1 + e),
        }
        for model, errs in errors.items()
        for origin, e in zip(ORIGINS, errs, strict=True)
    ]
    return pd.DataFrame(rows)


def _errors(seed: int, rival_scale: float, spread: float = 0.1) -> dict[str, np.ndarray]:
    """Naive's errors, and the rival's: ``rival_scale`` × naive's on average, each origin's
    ratio scattered by ``spread`` (log)."""
    rng = np.random.default_rng(seed)
    naive = np.abs(rng.normal(0, 0.04, len(ORIGINS)))
    ratio = rng.lognormal(-(spread**2) / 2, spread, len(ORIGINS))
    return {"naive": naive, "rival": naive * rival_scale * ratio}


def test_dm_pvalue_is_one_sided() -> None:
    rng = np.random.default_rng(0)
    better = rng.normal(0.01, 0.01, 40)
    assert dm_pvalue(better) < 0.001
    assert dm_pvalue(-better) > 0.999
    # no real difference: "significant at 5 %" about one time in twenty (the test's size)
    rejected = np.mean([dm_pvalue(rng.normal(0, 0.01, 40)) < 0.05 for _ in range(400)])
    assert 0.02 < rejected < 0.09
    assert dm_pvalue(np.zeros(30)) == 1.0


def test_a_rival_replaces_naive_only_on_significant_evidence() -> None:
    clear = choose(origin_losses(_forecasts("s", _errors(1, 0.8))), ["naive", "rival"], SEL)
    assert clear.model == "rival"
    assert "over 40 origins" in clear.reason and "DM p" in clear.reason
    # 1 % better on average: within the 2 % margin, so naive keeps serving
    close = choose(origin_losses(_forecasts("s", _errors(1, 0.99))), ["naive", "rival"], SEL)
    assert close.model == "naive" and close.reason.startswith("naive: no rival beat it by 2%")
    few = origin_losses(_forecasts("s", _errors(1, 0.8))).iloc[:20]
    short = choose(few, ["naive", "rival"], SEL)
    assert short.model == "naive" and "20 origins < 26" in short.reason


def test_choices_at_an_origin_use_the_origins_before_it_only() -> None:
    errors = _errors(2, 0.7)
    errors["rival"][30:] = 5.0  # the rival fails badly from origin 30 on
    losses = origin_losses(_forecasts("s", errors))
    at = choices_by_origin(losses, ["naive", "rival"], SEL, list(ORIGINS[25:]))
    assert at[ORIGINS[25]].model == "naive"  # 25 earlier origins < the 26 needed
    assert at[ORIGINS[26]].model == "rival"
    assert at[ORIGINS[30]].model == "rival"  # origin 30's own failure is not known yet
    assert at[ORIGINS[39]].model == "naive"


def test_series_of_a_commodity_are_pooled() -> None:
    ml = MlSettings(origins=40, selection_origins=30, selection=SEL)
    results = []
    for i in range(6):  # each series alone: a weak edge; six together: significant
        f = _forecasts(f"region:P{i}:cabai_merah", _errors(10 + i, 0.9, 0.5)).assign(
            horizon=1, scored=lambda d: d["origin"] >= ORIGINS[30]
        )
        results.append(SeriesBacktest(f"region:P{i}:cabai_merah", f, "naive"))
    alone = [choose(origin_losses(r.forecasts), ["naive", "rival"], SEL) for r in results]
    groups = {r.series_id: "cabai_merah" for r in results}
    select(results, ["naive", "rival"], ml.selection, groups)
    assert {r.selected for r in results} == {"rival"}
    assert all(r.reason.startswith("rival: ") for r in results)
    assert sum(c.model == "rival" for c in alone) < len(alone)
    served = results[0].forecasts[results[0].forecasts["model"] == SELECTED]
    assert sorted(served["origin"].unique()) == list(ORIGINS[30:])
    assert set(served["chosen"]) == {"rival"}


def test_each_forecast_carries_its_backtest_against_naive() -> None:
    """gold.forecasts' quality columns (``ml.retrain.backtest_quality``): the served model's
    MAPE and band coverage over the scored origins, naive's MAPE on the same origins."""
    from ml.retrain import backtest_quality

    frame = _forecasts("s", {"naive": np.full(40, 0.04), SELECTED: np.full(40, 0.02)})
    frame = frame.assign(
        scored=frame["origin"] >= ORIGINS[26],  # the first origins only select
        scale=1.0,
        last=100.0,
        surge_prob=0.1,
        yhat_lower_80=frame["yhat"] - 1.0,  # 102 ± 1 misses 100; 104 ± 1 too
        yhat_upper_80=frame["yhat"] + 1.0,
        yhat_lower_95=frame["yhat"] - 3.0,  # 102 ± 3 holds 100; 104 ± 3 does not
        yhat_upper_95=frame["yhat"] + 3.0,
    )
    backtest = SeriesBacktest("s", frame, selected="naive")
    assert backtest_quality(backtest.metrics()) == pytest.approx(
        {"backtest_mape": 2.0, "naive_mape": 4.0, "coverage_80": 0.0, "coverage_95": 1.0}
    )
    assert metrics_by_series([backtest]) == {"s": backtest.metrics()}
    unscored = SeriesBacktest("s", frame.assign(scored=False), selected="naive")
    assert metrics_by_series([unscored]) == {}
    assert backtest_quality({}) == dict.fromkeys(backtest_quality(backtest.metrics()))
