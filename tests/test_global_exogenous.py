"""The global model's exogenous features (``ml.exogenous``): weather, news signal and supply
cover known at the forecast origin only, and a model that works the same when their sources
are absent."""

from __future__ import annotations

import numpy as np
import pandas as pd

from lakehouse.catalog.reference import Market
from lakehouse.config.settings import MlSettings
from ml.backtest import global_points_for
from ml.exogenous import ExogSources, exogenous
from ml.global_model import global_forecast
from ml.impact_design import NEWS_SIGNAL, SUPPLY_REGION_DAILY

HORIZON = 7
ML = MlSettings(origins=4, selection_origins=2, min_history_days=60, n_jobs=1)
MODELS = ["naive", "lgbm_global"]
START = pd.Timestamp("2024-01-01")
DAYS = 200
SURGES = range(50, DAYS - 7, 56)  # a +30 % week starts on these days
MARKETS = {
    "M0": Market("M0", "Pasar M0", "Bandung", "Jawa Barat", None, None, "pasar"),
    "M1": Market("M1", "Pasar M1", "Surabaya", "Jawa Timur", None, None, "pasar"),
}


def _series() -> pd.DataFrame:
    """Three series (two markets, one national) of calm random walks with a surge every ~8
    weeks, in the ``SERIES_COLUMNS`` layout."""
    parts = []
    places = [("M0", "Jawa Barat", "cabai_merah"), ("M1", "Jawa Timur", "cabai_merah")]
    places.append(("AGG", "Indonesia", "bawang_merah"))
    for i, (market, region, commodity) in enumerate(places):
        rng = np.random.default_rng(i)
        steps = rng.normal(0, 0.01, DAYS)
        for start in SURGES:
            steps[start : start + 7] += np.log(1.3) / 7
        parts.append(
            pd.DataFrame(
                {
                    "series_id": f"market:{market}:{commodity}",
                    "series_kind": "market",
                    "market_id": market,
                    "region": region,
                    "commodity": commodity,
                    "date": pd.date_range(START, periods=DAYS, freq="D"),
                    "y": 40_000 * np.exp(np.cumsum(steps)),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def _panel() -> pd.DataFrame:
    """The rice panel's monthly weather for two places (Bandung, and a province)."""
    months = pd.period_range("2022-01", "2024-12", freq="M")
    rng = np.random.default_rng(9)
    rows = [
        {
            "location_name": place,
            "year_month": str(m),
            "price": 12_000.0,
            "precipitation_mm": rng.uniform(50, 400),
            "temperature_mean_c": rng.normal(27, 1),
            "bbm_price_idr": 10_000.0,
            "luas_panen_ha": 1_000.0,
        }
        for place in ("Bandung", "Jawa Timur")
        for m in months
    ]
    return pd.DataFrame(rows)


def _gold() -> dict[str, pd.DataFrame]:
    """A news signal that says "up" in the week before each surge (a real lead, so the model
    uses it), and a supply cover that falls then; one row per day and province."""
    days = pd.date_range(START, periods=DAYS, freq="D")
    before = np.zeros(DAYS, dtype=bool)
    for start in SURGES:
        before[start - 7 : start] = True
    rows = []
    places = [("Jawa Barat", "cabai_merah"), ("Jawa Timur", "cabai_merah")]
    for province, commodity in [*places, ("Jawa Tengah", "bawang_merah")]:
        rows.append(
            pd.DataFrame(
                {
                    "date": days.date,
                    "province": province,
                    "commodity": commodity,
                    "headlines": 4,
                    "up": np.where(before, 4, 1),
                    "down": np.where(before, 0, 1),
                    "days_of_cover": np.where(before, 3.0, 20.0),
                }
            )
        )
    frame = pd.concat(rows, ignore_index=True)
    news = frame.drop(columns="days_of_cover")
    supply = frame.loc[:, ["date", "province", "commodity", "days_of_cover"]]
    return {NEWS_SIGNAL: news, SUPPLY_REGION_DAILY: supply}


def _sources(panel: pd.DataFrame | None = None, gold: dict | None = None) -> ExogSources:
    return ExogSources(
        _panel() if panel is None else panel, _gold() if gold is None else gold, MARKETS
    )


def _after(sources: ExogSources, cutoff: pd.Timestamp, factor: float) -> ExogSources:
    """``sources`` with every figure dated after ``cutoff`` changed (scaled by ``factor``): the
    weather of the months that end after it, the gold rows of the days after it."""
    panel = sources.panel.copy()
    month_end = pd.PeriodIndex(panel["year_month"], freq="M").end_time
    late = np.asarray(month_end > cutoff)
    panel.loc[late, ["precipitation_mm", "temperature_mean_c"]] *= factor
    gold = {}
    for name, frame in sources.gold.items():
        frame = frame.copy()
        late = pd.to_datetime(frame["date"]) > cutoff
        for column in ("up", "days_of_cover"):
            if column in frame:
                frame.loc[late, column] = frame.loc[late, column] * factor
        if "down" in frame:
            frame.loc[late, "down"] = 0
        gold[name] = frame
    return ExogSources(panel, gold, sources.markets)


def test_features_of_a_day_use_only_data_dated_a_horizon_before_it() -> None:
    series, sources = _series(), _sources()
    families = ["weather", "news", "supply"]
    full = exogenous(series, sources, HORIZON, families)
    features = ["rain_anomaly", "temperature_anomaly", "news_direction", "days_of_cover"]
    assert list(full.columns) == ["unique_id", "ds", *features]
    # every series gets its days and the horizon after its last
    assert full.groupby("unique_id")["ds"].max().eq(START + pd.Timedelta(days=DAYS - 1 + 7)).all()
    for cutoff in pd.to_datetime(["2024-02-29", "2024-03-01", "2024-04-17", "2024-06-05"]):
        changed = exogenous(series, _after(sources, cutoff, 3.0), HORIZON, families)
        known = full["ds"] <= cutoff + pd.Timedelta(days=HORIZON)  # forecasts made by cutoff
        pd.testing.assert_frame_equal(full[known], changed[known])
        assert not full.loc[~known, features].equals(changed.loc[~known, features])
    # weather of a day: its place's (Bandung: the city; the national series: the panel mean),
    # of the last month complete a horizon before the day
    day = full[(full["unique_id"] == "market:M0:cabai_merah") & (full["ds"] == "2024-03-07")]
    assert day["rain_anomaly"].notna().all()
    january = full[(full["unique_id"] == "market:M0:cabai_merah") & (full["ds"] == "2024-02-08")]
    assert float(day["rain_anomaly"].iloc[0]) == float(january["rain_anomaly"].iloc[0])
    on_day = full[full["ds"] == "2024-03-07"].set_index("unique_id")["rain_anomaly"]
    bandung, jatim = on_day["market:M0:cabai_merah"], on_day["market:M1:cabai_merah"]
    assert bandung != jatim  # M1: not its city (Surabaya), its province's weather
    assert np.isclose(on_day["market:AGG:bawang_merah"], (bandung + jatim) / 2)  # panel mean
    # a national series takes every province's headlines (shallots: Jawa Tengah's); a day
    # with none in its window (the first week: nothing a horizon before) has it missing
    national = full[full["unique_id"] == "market:AGG:bawang_merah"]
    assert (
        national.loc[national["ds"] >= START + pd.Timedelta(days=HORIZON), "news_direction"]
        .notna()
        .all()
    )
    assert national["news_direction"].iloc[:HORIZON].isna().all()
    assert full.loc[full["unique_id"] == "market:M1:cabai_merah", "days_of_cover"].notna().any()


def test_global_forecast_at_an_origin_ignores_weather_and_news_after_it() -> None:
    series, sources = _series(), _sources()
    at = global_points_for(series, MODELS, ML, MODELS, sources)
    origin = min(at["market:M0:cabai_merah"])
    again = global_points_for(series, MODELS, ML, MODELS, _after(sources, origin, 3.0))
    for sid in at:
        np.testing.assert_allclose(at[sid][origin], again[sid][origin])
    # and the features are used: the same change made before the origin changes the forecast
    earlier = origin - pd.Timedelta(days=60)
    moved = global_points_for(series, MODELS, ML, MODELS, _after(sources, earlier, 3.0))
    assert any(not np.allclose(at[sid][origin], moved[sid][origin]) for sid in at)
    without = global_points_for(series, MODELS, ML, MODELS)
    assert any(not np.allclose(at[sid][origin], without[sid][origin]) for sid in at)


def test_absent_sources_leave_the_global_model_as_without_features() -> None:
    series = _series()
    plain = global_forecast(series, ML)
    no_gold = ExogSources(None, {}, MARKETS)  # no panel, no gold table
    other_commodity = {k: v.assign(commodity="beras") for k, v in _gold().items()}  # no rows
    for sources in (no_gold, ExogSources(None, other_commodity, MARKETS)):
        points = global_forecast(series, ML, sources)
        assert set(points) == set(plain)
        for sid, p in points.items():
            assert p.shape == (HORIZON,) and np.isfinite(p).all()
            np.testing.assert_allclose(p, plain[sid])
    # with only the weather, the model runs too (news and supply not used)
    weather_only = global_forecast(series, ML, ExogSources(_panel(), {}, MARKETS))
    assert all(np.isfinite(p).all() and p.shape == (HORIZON,) for p in weather_only.values())


def test_the_global_model_refits_every_few_origins_and_forecasts_from_each_origin_s_days(
    monkeypatch,
) -> None:
    """Between its fits (``ml.fit_every_origins``), the global model forecasts each origin from
    the days up to it with the parameters fitted at an earlier origin: the days since that fit
    move the forecast, the days after the origin do not."""
    import ml.global_model

    fitted_through: list[pd.Timestamp] = []
    fit = ml.global_model._fit

    def counted(data: pd.DataFrame, *args):
        fitted_through.append(data["ds"].max())
        return fit(data, *args)

    monkeypatch.setattr(ml.global_model, "_fit", counted)
    series, sources = _series(), _sources()
    at = global_points_for(series, MODELS, ML, MODELS, sources)
    sid = "market:M0:cabai_merah"
    origins = sorted(at[sid])
    assert len(origins) == ML.origins == ML.fit_every_origins
    assert fitted_through == origins[:1]
    last = origins[-1]
    after = series.assign(y=series["y"].where(series["date"] <= last, series["y"] * 2))
    again = global_points_for(after, MODELS, ML, MODELS, _after(sources, last, 3.0))
    np.testing.assert_allclose(again[sid][last], at[sid][last])
    since_fit = series.assign(y=series["y"].where(series["date"] <= origins[0], series["y"] * 1.2))
    moved = global_points_for(since_fit, MODELS, ML, MODELS, sources)
    np.testing.assert_allclose(moved[sid][last] / at[sid][last], 1.2, rtol=0.05)

    fitted_through.clear()
    every = ML.model_copy(update={"fit_every_origins": 1})
    global_points_for(series, MODELS, every, MODELS, sources)
    assert fitted_through == origins
