"""The surge classifier (``ml.surge_model``) on synthetic panels: planted precursors are found
(recall and precision high, the explanation names them), pure random walks get probabilities
near their base rate and no warnings, the threshold and the model depend on nothing after the
cutoff, and the backtest's served rows carry the classifier's probability and reason."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from lakehouse.config.settings import MlSettings
from ml.backtest import SELECTED, apply_surge_model, surge_scores
from ml.surge import brier
from ml.surge_model import (
    backtest_warnings,
    feature_names,
    fit_surge_model,
    latest_warnings,
    nearest,
    surge_frame,
)

START = pd.Timestamp("2021-01-01")
DAYS = 900
REGIONS = [f"P{i}" for i in range(6)]
CENTROIDS = {r: (0.0, float(i)) for i, r in enumerate(REGIONS)}  # on a line: P0 P1 … P5
COMMODITIES = ["cabai", "bawang"]
CUTOFF = START + pd.Timedelta(days=620)
PANEL = {"national": "nat_", "neighbours": "nb_"}


def ml_settings(**surge: object) -> MlSettings:
    ml = MlSettings()
    return ml.model_copy(update={"surge_model": ml.surge_model.model_copy(update=surge)})


def frame_of(prices: dict[tuple[str, str], np.ndarray]) -> pd.DataFrame:
    """``SERIES_COLUMNS`` rows of region series (``region:<r>:<c>``) from daily prices."""
    days = pd.date_range(START, periods=DAYS, freq="D")
    return pd.concat(
        pd.DataFrame(
            {
                "series_id": f"region:{r}:{c}",
                "series_kind": "region",
                "market_id": None,
                "region": r,
                "commodity": c,
                "date": days,
                "y": y,
            }
        )
        for (r, c), y in prices.items()
    ).reset_index(drop=True)


def led_panel(seed: int = 0) -> tuple[pd.DataFrame, set[tuple[str, pd.Timestamp]]]:
    """Quiet random walks (0.3 % a day: no surge by chance) where, about monthly per
    commodity, every province but one steps up 6 % and 8 days later that one province jumps
    17 % (for 10 days). Its own price is flat until then: only the other provinces' moves
    (``nat_*``, ``nb_*``) announce its surge. Returns the series and the led (series, day)
    pairs: the days between the others' step and the surge."""
    rng = np.random.default_rng(seed)
    level = {
        (r, c): 100 * np.exp(np.cumsum(rng.normal(0, 0.003, DAYS)))
        for r in REGIONS
        for c in COMMODITIES
    }
    led = set()
    for c in COMMODITIES:
        t0 = int(rng.integers(100, 130))
        while t0 + 30 < DAYS:
            target = REGIONS[int(rng.integers(len(REGIONS)))]
            for r in REGIONS:
                if r != target:
                    level[(r, c)][t0:] *= 1.06
            level[(target, c)][t0 + 8 : t0 + 18] *= 1.17
            led |= {
                (f"region:{target}:{c}", START + pd.Timedelta(days=d))
                for d in range(t0 + 1, t0 + 8)
            }
            t0 += int(rng.integers(28, 40))
    return frame_of(level), led


def random_walks(seed: int = 1) -> pd.DataFrame:
    """Pure random walks, 2.5 % a day: surges come by chance only (~5 % of weeks)."""
    rng = np.random.default_rng(seed)
    return frame_of(
        {
            (r, c): 100 * np.exp(np.cumsum(rng.normal(0, 0.025, DAYS)))
            for r in REGIONS
            for c in COMMODITIES
        }
    )


def weekly_after(frame: pd.DataFrame, cutoff: pd.Timestamp) -> pd.DataFrame:
    """Weekly origins after ``cutoff`` whose label is known: the held-out rows."""
    later = frame[(frame["date"] > cutoff) & frame["came"].notna()]
    return later[(later["date"] - cutoff).dt.days % 7 == 0]


@pytest.fixture(scope="module")
def led() -> tuple[pd.DataFrame, pd.DataFrame, set[tuple[str, pd.Timestamp]]]:
    series, led_days = led_panel()
    return series, surge_frame(series, ml_settings(), CENTROIDS), led_days


def test_nearest_provinces_by_centroid() -> None:
    near = nearest(REGIONS, CENTROIDS, 2)
    assert near["P0"] == ["P1", "P2"] and sorted(near["P3"]) == ["P2", "P4"]
    assert nearest(REGIONS, {}, 2) == {}  # no centroids: no neighbours


def test_features_use_nothing_after_the_day(led: tuple) -> None:
    series, frame, _ = led
    day = START + pd.Timedelta(days=400)
    changed = series.assign(y=series["y"].where(series["date"] <= day, series["y"] * 1.5))
    later = surge_frame(changed, ml_settings(), CENTROIDS)
    columns = feature_names(ml_settings())
    before = frame["date"] <= day
    pd.testing.assert_frame_equal(frame.loc[before, columns], later.loc[before, columns])
    assert not frame.loc[~before, "ret_1"].equals(later.loc[~before, "ret_1"])  # really used
    # the label looks ahead, and is NaN where the horizon is not over
    assert frame.groupby("series_id").tail(7)["came"].isna().all()


def test_a_planted_precursor_is_found_on_held_out_origins(led: tuple) -> None:
    _, frame, led_days = led
    model = fit_surge_model(frame, CUTOFF, ml_settings())
    assert model is not None and model.calibration.threshold is not None
    test = weekly_after(frame, CUTOFF)
    came = test["came"].to_numpy(dtype=bool)
    assert came.sum() >= 15  # the held-out origins hold surges to find
    # every surge of the panel is a led one (the walks are too quiet for chance surges)
    assert set(zip(test.loc[came, "series_id"], test.loc[came, "date"], strict=True)) <= led_days
    prob = model.predict(test)
    warned = prob >= model.calibration.threshold
    hits = (warned & came).sum()
    assert hits / came.sum() >= 0.8 and hits / warned.sum() >= 0.8  # recall, precision
    assert brier(prob, came) < 0.5 * brier(np.full(len(came), came.mean()), came)


def test_the_explanation_names_the_planted_feature(led: tuple) -> None:
    _, frame, _ = led
    model = fit_surge_model(frame, CUTOFF, ml_settings())
    test = weekly_after(frame, CUTOFF)
    test = test[model.predict(test) >= model.calibration.threshold]
    contributions = model.contributions(test).drop(columns="base")
    top = contributions.idxmax(axis=1)
    panel = tuple(PANEL.values())
    # the others' moves announce the surge (with, second, the series' own flat price: only
    # the province that has not moved yet surges)
    assert len(test) >= 10 and top.str.startswith(panel).mean() >= 0.6
    because = model.explain(test)
    assert all(b.startswith("surge classifier") for b in because)
    named = [[f.split(" ")[0] for f in b.split("): ", 1)[1].split(", ")] for b in because]
    assert [n[0] for n in named] == list(top)  # the text names the largest contribution first
    assert all(len(n) == 3 and any(f.startswith(panel) for f in n) for n in named)


def test_random_walks_get_the_base_rate_and_no_warning() -> None:
    frame = surge_frame(random_walks(), ml_settings(), CENTROIDS)
    model = fit_surge_model(frame, CUTOFF, ml_settings())
    assert model is not None
    test = weekly_after(frame, CUTOFF)
    came = test["came"].to_numpy(dtype=bool)
    base = frame.loc[frame["date"] <= CUTOFF, "came"].mean()
    assert 0.02 < base < 0.15
    prob = model.predict(test)
    assert abs(prob.mean() - came.mean()) < 0.04  # calibrated: as many surges as it says
    assert np.quantile(prob, 0.9) < 3 * base  # and it does not pretend to know which
    assert model.calibration.threshold is None  # nothing reaches precision 0.6: no warning


def test_model_and_threshold_depend_only_on_what_was_known_at_the_cutoff(led: tuple) -> None:
    series, frame, _ = led
    ml = ml_settings()
    model = fit_surge_model(frame, CUTOFF, ml)
    rows = frame[frame["date"] <= CUTOFF]
    for shift, same in ((pd.Timedelta(days=1), True), (-pd.Timedelta(days=60), False)):
        # a surge planted after the cutoff's known labels (or, to show the test can fail,
        # well before them) in every series
        day = CUTOFF - pd.Timedelta(days=ml.horizon) + shift
        y = series["y"].where(series["date"] != day, series["y"] * 1.3)
        other = fit_surge_model(surge_frame(series.assign(y=y), ml, CENTROIDS), CUTOFF, ml)
        unchanged = other.calibration.threshold == model.calibration.threshold and np.array_equal(
            other.raw(rows), model.raw(rows)
        )
        assert unchanged is same


def test_backtest_warnings_are_fitted_before_their_origins(led: tuple) -> None:
    series, frame, _ = led
    ml = ml_settings(refit_origins=2)
    origins = [CUTOFF + pd.Timedelta(weeks=k) for k in range(4)]
    warnings = backtest_warnings(frame, origins, ml)
    assert {o for _, o in warnings} == set(origins)
    # the first block is fitted at origins[0]: prices of the days between origins[0] and
    # origins[1] do not move its warning at origins[0] (they would, were it fitted at
    # origins[1]: the labels known then reach into them), and do move the second block's
    between = (series["date"] > origins[0]) & (series["date"] < origins[1])
    changed_series = series.assign(y=series["y"].where(~between, series["y"] * 1.3))
    changed = backtest_warnings(surge_frame(changed_series, ml, CENTROIDS), origins, ml)
    first = [k for k in warnings if k[1] == origins[0]]
    assert all(changed[k].prob == warnings[k].prob for k in first)
    assert all(changed[k].because == warnings[k].because for k in first)
    assert any(changed[k].prob != warnings[k].prob for k in warnings if k[1] == origins[2])


def test_served_backtest_rows_carry_the_classifier(led: tuple) -> None:
    from ml.backtest import SeriesBacktest

    series, _, _ = led
    origins = [CUTOFF + pd.Timedelta(weeks=k) for k in range(3)]
    results = []
    for sid, g in series.groupby("series_id"):
        y = g.set_index("date")["y"]
        rows = [
            {
                "model": model,
                "origin": o,
                "target_date": o + pd.Timedelta(days=h),
                "horizon": h,
                "y": y[o + pd.Timedelta(days=h)],
                "last": y[o],
                "surge_prob": 0.9,  # a raw probability that always warns
                "scored": True,
                "series": sid,
            }
            for model in ("naive", SELECTED)
            for o in origins
            for h in range(1, 8)
        ]
        results.append(SeriesBacktest(str(sid), pd.DataFrame(rows), "naive"))
    apply_surge_model(results, series, ml_settings(), CENTROIDS)
    f = pd.concat([r.forecasts for r in results], ignore_index=True)
    served, naive = f[f["model"] == SELECTED], f[f["model"] == "naive"]
    assert (naive["surge_prob"] == 0.9).all() and naive["warn_at"].isna().all()
    assert (served["surge_prob_raw"] == 0.9).all() and served["warn_at"].notna().all()
    assert served["surge_because"].str.startswith("surge classifier").all()
    raw, classified = surge_scores(naive, 0.1), surge_scores(served, 0.1)
    assert raw["surges"] == classified["surges"] > 0
    assert raw["surge_precision"] < 0.5 < classified["surge_precision"]  # always-on vs learnt
    off = [
        SeriesBacktest(r.series_id, r.forecasts.drop(columns="warn_at"), "naive") for r in results
    ]
    apply_surge_model(off, series, ml_settings(enabled=False), CENTROIDS)
    assert "warn_at" not in off[0].forecasts  # disabled: left as it was


def test_retrain_serves_the_classifier_and_says_why(led: tuple) -> None:
    from ml.retrain import RunContext, forecast_rows, train_all

    series, frame, _ = led
    ml = ml_settings().model_copy(update={"origins": 4, "selection_origins": 2, "n_jobs": 1})
    trained = train_all(series, ["naive"], ml, centroids=CENTROIDS)
    ctx = RunContext("run", pd.Timestamp("2026-01-01", tz="UTC"), 1, {"naive": ("m", "1")})
    rows = forecast_rows(series, trained, ctx)
    assert rows["surge_because"].str.startswith("surge classifier").all()
    per_series = rows.groupby("series_id")[["surge_prob", "surge_because"]].nunique()
    assert (per_series == 1).all().all()  # one probability and one reason per forecast
    # the served probability is the classifier fitted on everything, at each series' last day
    model = fit_surge_model(frame, frame["date"].max(), ml)
    last = frame.groupby("series_id").tail(1)
    expected = dict(zip(last["series_id"], model.predict(last), strict=True))
    served = rows.groupby("series_id")["surge_prob"].first()
    assert served.to_dict() == pytest.approx(expected)
    # without a classifier: the first passage of the forecast, and the reason says so
    off = train_all(
        series,
        ["naive"],
        ml.model_copy(update={"surge_model": ml_settings(enabled=False).surge_model}),
        centroids=CENTROIDS,
    )
    rows = forecast_rows(series, off, ctx)
    assert rows["surge_because"].str.startswith("first passage").all()
    assert rows["surge_prob"].between(0, 1).all()


def test_weeks_of_history_build_no_classifier_rows(
    led: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first start's 60 days hold no label old enough to fit on (``calibration_weeks`` and
    two horizons): no warning, and the classifier's rows are not built for nothing."""
    from ml import surge_model

    series, _, _ = led
    weeks = series[series["date"] > series["date"].max() - pd.Timedelta(days=60)]
    monkeypatch.setattr(surge_model, "surge_frame", lambda *a: pytest.fail("rows built"))
    assert latest_warnings(weeks, ml_settings(), CENTROIDS) == {}
