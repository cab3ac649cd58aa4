"""The rolling-origin backtest and ``./run.sh backtest``: metrics, selection on earlier origins
only, no leakage, gaps/duplicates/outliers/short series, the JSON on the real sample file, and
one-line errors on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lakehouse.config.settings import MlSettings
from ml.backtest import (
    CONFORMAL_MIN_ORIGINS,
    SELECTED,
    backtest_series,
    metrics_by_model,
    residual_quantiles,
    summary,
)
from ml.models import INTERVAL_COLUMNS, conformal_bands
from scripts.cli import main

ML = MlSettings(origins=4, selection_origins=2, min_history_days=60, n_jobs=1)


def _series(days: int = 120, seed: int = 2, start: str = "2024-01-01") -> pd.Series:
    rng = np.random.default_rng(seed)
    index = pd.date_range(start, periods=days, freq="D")
    return pd.Series(50_000 * np.exp(np.cumsum(rng.normal(0, 0.01, days))), index=index)


def test_metrics() -> None:
    f = pd.DataFrame(
        {
            "model": "m",
            "y": [100.0, 200.0],
            "yhat": [110.0, 200.0],
            "scale": [5.0, 5.0],
            "yhat_lower_80": [105.0, 190.0],
            "yhat_upper_80": [115.0, 210.0],
            "yhat_lower_95": [95.0, 180.0],
            "yhat_upper_95": [125.0, 220.0],
        }
    )
    m = metrics_by_model(f)["m"]
    assert m["mape"] == pytest.approx(5.0)
    assert m["smape"] == pytest.approx(100 * (20 / 210) / 2)
    assert m["mase"] == pytest.approx(1.0)
    assert m["coverage80"] == 0.5 and m["coverage95"] == 1.0


def test_conformal_bands_come_from_earlier_origins_errors() -> None:
    y = _series(200)
    result = backtest_series("s", y, ["naive"], ML.model_copy(update={"origins": 8}))
    f = result.forecasts[result.forecasts["model"] == "naive"]
    origins = sorted(f["origin"].unique())
    for origin in origins[CONFORMAL_MIN_ORIGINS:]:
        known = f[(f["origin"] < origin) & (f["target_date"] <= origin)]
        quantiles = residual_quantiles(known, ML.horizon)
        now = f[f["origin"] == origin]
        # errors per unit of recent volatility, the band at the origin's volatility
        bands = conformal_bands(now["yhat"], now["horizon"], quantiles * now["vol"].iloc[0])
        expected = now.assign(**dict(zip(INTERVAL_COLUMNS, bands.T, strict=True)))
        pd.testing.assert_frame_equal(now, expected)
    assert residual_quantiles(f[f["origin"] == origins[0]], ML.horizon) is None  # too few


def test_conformal_band_is_the_finite_sample_rank_of_absolute_scaled_errors() -> None:
    n = 21  # three origins of 7 horizons: the fewest that give conformal bands
    scores = np.arange(1, n + 1) / 100  # |log(y / yhat)| / √h = 0.01 … 0.21
    horizons = np.tile(np.arange(1, 8), 3)
    signs = np.where(np.arange(n) % 2, 1, -1)  # errors on both sides
    rows = pd.DataFrame(
        {
            "horizon": horizons,
            "yhat": 100.0,
            "y": 100 * np.exp(signs * scores * np.sqrt(horizons)),
            "vol": 1.0,
        }
    )
    # ⌈22 · 0.8⌉ = 18th and ⌈22 · 0.95⌉ = 21st smallest score
    np.testing.assert_allclose(residual_quantiles(rows, 7), [-0.18, 0.18, -0.21, 0.21])
    assert residual_quantiles(rows.iloc[:-1], 7) is None


def test_backtest_forecasts_ignore_data_after_their_origin() -> None:
    y = _series()
    first = backtest_series("s", y, ["naive", "xgboost"], ML)
    origin = first.forecasts["origin"].min()
    altered = y.copy()
    altered[altered.index > origin + pd.Timedelta(days=ML.horizon)] *= 2
    again = backtest_series("s", altered, ["naive", "xgboost"], ML)
    columns = ["model", "target_date", "yhat", "yhat_lower_95", "yhat_upper_95", "y"]
    at = lambda r: r.forecasts[r.forecasts["origin"] == origin][columns].reset_index(drop=True)  # noqa: E731
    pd.testing.assert_frame_equal(at(first), at(again))


@pytest.mark.parametrize("every", [1, 3])
def test_ets_is_fitted_every_few_origins_on_the_history_up_to_there(monkeypatch, every: int):
    """Between its fits, ETS runs the parameters of the last one through the new days: the
    backtest fits it at every ``fit_every_origins``-th origin, on that origin's history."""
    from ml.models import ETS

    fitted_through: list[pd.Timestamp] = []
    fit = ETS.fit

    def counted(self, y: pd.Series) -> ETS:
        fitted_through.append(y.index[-1])
        return fit(self, y)

    monkeypatch.setattr(ETS, "fit", counted)
    ml = ML.model_copy(update={"origins": 7, "fit_every_origins": every})
    result = backtest_series("s", _series(200), ["naive", "ets"], ml)
    origins = sorted(result.forecasts["origin"].unique())
    assert len(origins) == 7
    assert fitted_through == origins[::every]
    ets = result.forecasts[result.forecasts["model"] == "ets"]
    assert ets.groupby("origin").size().tolist() == [ML.horizon] * 7


def test_gaps_duplicates_and_outliers() -> None:
    y = _series()
    gappy = y.drop(y.index[[100, 101, 102, 110]])
    gappy = pd.concat([gappy, gappy.iloc[[50, 60]] * 1.01])  # duplicate days
    gappy.iloc[30] *= 10  # an outlier
    result = backtest_series("s", gappy, ["naive", "seasonal_naive"], ML)
    scored_days = set(result.forecasts["target_date"])
    assert not scored_days & set(y.index[[100, 101, 102, 110]])  # never scored on a gap
    assert result.forecasts["origin"].nunique() == ML.origins
    assert np.isfinite(result.forecasts["yhat"]).all()
    assert SELECTED in result.metrics()


def test_short_series_get_the_naive_fallback_and_say_so() -> None:
    result = backtest_series("s", _series(30), ["naive", "xgboost"], ML)
    assert result.selected == "naive"
    assert "too short" in result.note and "naive fallback" in result.note
    assert set(result.forecasts["model"]) <= {"naive", SELECTED}
    tiny = backtest_series("t", _series(5), ["naive", "xgboost"], ML)
    assert tiny.forecasts.empty and "too short to backtest" in tiny.note


def test_backtest_json_on_the_sample_file(sample_prices: Path, tmp_path: Path, capsys) -> None:
    out = tmp_path / "bt.json"
    models = "naive,seasonal_naive,prophet_default,xgboost,lgbm_global"
    args = ["--models", models, "--origins", "3", "--jobs", "1", "--json", str(out)]
    code = main(["backtest", str(sample_prices), *args])
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["horizon"] == 7
    expected = {"naive", "seasonal_naive", "prophet_default", "xgboost", "lgbm_global", SELECTED}
    assert set(doc["overall"]) == expected
    metric_names = {"mape", "smape", "mase", "coverage80", "coverage95"}
    surge_names = {"surges", "warnings", "surge_recall", "surge_precision"}
    assert all(set(v) == metric_names | surge_names for v in doc["overall"].values())
    assert_recomputable(doc)
    assert [s["series"] for s in doc["series"]] == [
        f"market:PIHPS-AGG:{c}" for c in ("bawang_merah", "bawang_putih", "cabai_merah")
    ]
    for entry in doc["series"]:
        assert set(entry["models"]) == expected
        assert entry["selected"] in {"naive", "seasonal_naive", "xgboost", "lgbm_global"}
    printed = capsys.readouterr().out
    assert "OVERALL" in printed and "market:PIHPS-AGG:cabai_merah" in printed


ORIGIN_KEYS = {
    "origin", "last", "actual", "point", "lo80", "hi80", "lo95", "hi95", "surge_prob", "warn_at"
}  # fmt: skip


def assert_recomputable(doc: dict) -> None:
    """The per-origin lists of the JSON have the documented shape, and MAPE, coverage and
    surge recall/precision recomputed from them alone equal ``overall["selected"]``."""
    errors, inside80, inside95, came, warned = [], [], [], [], []
    for entry in doc["series"]:
        for o in entry["origins"]:
            assert set(o) == ORIGIN_KEYS
            assert all(
                len(o[k]) == doc["horizon"]
                for k in ORIGIN_KEYS - {"origin", "last", "surge_prob", "warn_at"}
            )
            assert 0.0 <= o["surge_prob"] <= 1.0
            seen = [i for i, a in enumerate(o["actual"]) if a is not None]
            for i in seen:
                a = o["actual"][i]
                errors.append(abs(a - o["point"][i]) / a)
                inside80.append(o["lo80"][i] <= a <= o["hi80"][i])
                inside95.append(o["lo95"][i] <= a <= o["hi95"][i])
            came.append(max(o["actual"][i] for i in seen) >= (1 + doc["surge"]["rise"]) * o["last"])
            # the threshold it was warned at: the classifier's (None: never), else the raw one's
            warned.append(o["warn_at"] is not None and o["surge_prob"] >= o["warn_at"])
    served = doc["overall"][SELECTED]
    assert served["mape"] == pytest.approx(100 * np.mean(errors))
    assert served["coverage80"] == pytest.approx(np.mean(inside80))
    assert served["coverage95"] == pytest.approx(np.mean(inside95))
    hits = sum(c and w for c, w in zip(came, warned, strict=True))
    assert served["surges"] == sum(came) and served["warnings"] == sum(warned)
    if sum(came):
        assert served["surge_recall"] == pytest.approx(hits / sum(came))
    if sum(warned):
        assert served["surge_precision"] == pytest.approx(hits / sum(warned))


def test_backtest_json_origins_recompute_the_overall_numbers() -> None:
    ml = ML.model_copy(update={"origins": 8})
    results = [
        backtest_series(f"s{seed}", _series(200, seed=seed), ["naive", "ets"], ml)
        for seed in (1, 2, 3)
    ]
    doc = json.loads(json.dumps(summary(results, ml)))
    assert len(doc["series"][0]["origins"]) == ml.origins - ml.selection_origins
    assert_recomputable(doc)


MESSY = """observed_at;market_id;region;commodity;price
{rows}
"""


def test_messy_file(tmp_path: Path) -> None:
    lines = []
    y = _series(130)
    for i, (day, price) in enumerate(y.items()):
        if i in (40, 41, 90):
            continue  # gaps
        for market in ("M1", "M2"):
            value = price * (8 if (i == 70 and market == "M1") else 1)  # an outlier
            lines.append(f"{day:%d/%m/%Y};{market};Jawa Barat;Cabai Merah;Rp {value:,.0f}")
        if i == 60:
            lines.append(f"{day:%d/%m/%Y};M1;Jawa Barat;Cabai Merah;{price * 1.02:.1f}")  # dup
    for day, price in _series(20).items():  # too short to model
        lines.append(f"{day:%Y-%m-%d};M3;Jawa Barat;bawang_merah;{price:.0f}")
    lines.append("2024-02-01;M3;Jawa Barat;bawang_merah;not a price")
    path = tmp_path / "messy.csv"
    path.write_text(MESSY.format(rows="\n".join(lines)).replace(",", "."), encoding="utf-8")
    out = tmp_path / "bt.json"
    args = ["--models", "naive,xgboost", "--origins", "3", "--jobs", "1", "--json", str(out)]
    assert main(["backtest", str(path), *args]) == 0
    series = {s["series"]: s for s in json.loads(out.read_text())["series"]}
    assert set(series) == {
        "market:M1:cabai_merah",
        "market:M2:cabai_merah",
        "market:M3:bawang_merah",
        "region:Jawa Barat:cabai_merah",
    }
    short = series["market:M3:bawang_merah"]
    assert short["selected"] == "naive" and "too short" in short["note"]
    assert "xgboost" in series["market:M1:cabai_merah"]["models"]


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (None, [], "no such file"),
        ("", [], "the file is empty"),
        ("when,where,what\n1,2,3\n", [], "lacks column(s) observed_at, market_id"),
        ("observed_at,market_id,device_id,metric,value\n2024-01-01,M,d,t,1\n", [], "sensor file"),
        ("observed_at,market_id,commodity,price\n2024-01-01,M,x,abc\n", [], "no row could be"),
    ],
)
def test_bad_input_is_one_error_line(tmp_path: Path, capsys, content, args, message) -> None:
    path = tmp_path / "prices.csv"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    assert main(["backtest", str(path), *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err


def test_bad_options_exit_2(sample_prices: Path, capsys) -> None:
    for args in (["--models", "naive,magic"], ["--horizon", "0"]):
        with pytest.raises(SystemExit) as exit_:
            main(["backtest", str(sample_prices), *args])
        assert exit_.value.code == 2
    assert "unknown model(s) magic" in capsys.readouterr().err
