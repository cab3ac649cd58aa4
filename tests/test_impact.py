"""Impact engine on the real monthly panel, fuel and inflation files (and the real daily series
fanned out to a few markets): fit quality on held-out months, stable explanations, weights."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient

from lakehouse.config.errors import InputError
from lakehouse.config.settings import Settings
from lakehouse.io.lake import Lakehouse
from ml.impact import (
    FAMILIES,
    ImpactInputs,
    ImpactModel,
    _whole_percent,
    explain,
    family_gain,
    fit_if_missing,
    fit_impact_model,
    holdout_fit,
    holdout_metrics,
    load_inputs,
)
from ml.impact_design import FEATURES, NEWS_SIGNAL, SUPPLY_REGION_DAILY
from ml.impact_result import NoImpactModel, model_path
from tests.api_samples import alert, upsert_alerts, with_api
from tests.shipped import SHIPPED

# Measured on the held-out last 6 months of the rice panel (12 locations): R² 0.24 of the monthly
# change, price MAPE 0.53 % vs 0.55 % for "no change". Monthly rice prices are sticky (a third of
# the changes are 0) so the bar is modest, but it must stay clearly above zero and beat naive.
R2_FLOOR = 0.15
DAILY_MARKETS = ("IP-001", "IP-009", "IP-063", "JB-BDG-KOSAMBI")
SHIPPED_DAILY = ("bawang_merah", "bawang_putih", "cabai_merah")  # the PIHPS file's commodities
#: a bar below every shipped model's hold-out R² (the lowest: red chili's, −0.14), so that only
#: a MAPE no better than naive's makes an answer "mostly unexplained"
LENIENT = -1.0
QUESTION = {"region": "Indonesia", "date": "2025-02-12"}  # a week of the shipped daily series


@pytest.fixture(scope="module")
def inputs(conf_settings: Settings) -> ImpactInputs:
    data_dir = conf_settings.impact.data_dir
    if not (data_dir / "panel_monthly_jabar_jakarta.csv").is_file():
        pytest.fail(f"the sample data is missing from {data_dir}: it ships with the repository")
    return load_inputs(data_dir, SHIPPED)


@pytest.fixture(scope="module")
def model(inputs: ImpactInputs, conf_settings: Settings) -> ImpactModel:
    return fit_impact_model(inputs, conf_settings)


@pytest.fixture(scope="module")
def min_r2(conf_settings: Settings) -> float:
    """The shipped ``impact.min_explained_r2``."""
    return conf_settings.impact.min_explained_r2


def _daily(sample_prices: Path) -> pd.DataFrame:
    """The real PIHPS daily series as closes of a few markets (deterministic level and noise)."""
    real = pd.read_csv(sample_prices).groupby(["commodity", "observed_at"], as_index=False).last()
    rng = np.random.default_rng(3)
    return pd.concat(
        [
            pd.DataFrame(
                {
                    "market_id": m,
                    "region": SHIPPED.markets[m].province,
                    "commodity": real["commodity"],
                    "date": real["observed_at"],
                    "price": real["price"] * rng.normal(1, 0.05) * rng.normal(1, 0.02, len(real)),
                }
            )
            for m in DAILY_MARKETS
        ],
        ignore_index=True,
    )


def test_fit_quality_on_held_out_months(model: ImpactModel):
    rice = model.metrics["beras"]
    print(
        f"\nimpact hold-out (beras, last 6 months, {rice['test_rows']:.0f} location-months): "
        f"R² {rice['r2']:.3f}, MAPE {rice['mape']:.3f} % (naive {rice['naive_mape']:.3f} %)"
    )
    assert rice["r2"] >= R2_FLOOR
    assert rice["mape"] < rice["naive_mape"]


def test_same_input_same_output(
    inputs: ImpactInputs, model: ImpactModel, tmp_path: Path, conf_settings: Settings
):
    again = fit_impact_model(inputs, conf_settings)
    loaded = ImpactModel.load(model.save(tmp_path / "impact.joblib"))
    for where in ({"region": "Bandung"}, {"market_id": "IP-001"}, {"region": "Jawa Barat"}):
        question = ("beras", "2025-07-15", SHIPPED)
        first = explain(model, *question, **where, min_explained_r2=LENIENT)
        assert explain(again, *question, **where, min_explained_r2=LENIENT) == first
        assert explain(loaded, *question, **where, min_explained_r2=LENIENT) == first


def test_weights_sum_to_100_and_dominant_is_the_largest(model: ImpactModel):
    design = model.design[model.design["change"].notna() & (model.design["commodity"] == "beras")]
    for location, start in (
        design[["location", "start"]].drop_duplicates().iloc[::7].itertuples(index=False)
    ):
        result = explain(model, "beras", start, SHIPPED, region=location, min_explained_r2=LENIENT)
        assert result.status == "explained"
        weights = result.factors_with_weights
        assert list(weights) == list(FAMILIES)
        assert sum(weights.values()) == 100
        assert all(w >= 0 for w in weights.values())
        assert weights[result.dominant_factor] == max(weights.values())
        assert 0 <= result.impact_score <= 100


def test_a_file_that_is_not_a_model_is_a_clear_error(tmp_path: Path):
    garbage = tmp_path / "impact.joblib"
    garbage.write_bytes(b"not a pickle")
    with pytest.raises(InputError, match="cannot load the impact model"):
        ImpactModel.load(garbage)
    with pytest.raises(InputError, match="cannot load the impact model"):
        ImpactModel.load(tmp_path / "missing.joblib")


def test_whole_percent_sums_exactly():
    assert sum(_whole_percent({"a": 1, "b": 1, "c": 1}).values()) == 100
    assert _whole_percent({"a": 0.0, "b": 0.0}) == {"a": 50, "b": 50}
    assert _whole_percent({"a": 2.0, "b": 1.0}) == {"a": 67, "b": 33}


@pytest.mark.parametrize(
    ("commodity", "where", "day", "message"),
    [
        ("durian", {"region": "Bandung"}, "2025-01-01", "no impact model for commodity 'durian'"),
        ("beras", {"market_id": "XX-999"}, "2025-01-01", "unknown market 'XX-999'"),
        ("beras", {"market_id": "SU-MDN-PETISAH"}, "2025-01-01", "no beras data for market"),
        ("beras", {"region": "Atlantis"}, "2025-01-01", "no beras data for region 'Atlantis'"),
        ("beras", {"region": "Bandung"}, "2030-01-01", "2030-01 is outside the beras data"),
        ("beras", {"region": "Bandung"}, "2021-02-01", "2021-02 is outside the beras data"),
        ("beras", {}, "2025-01-01", "give either a market id or a region"),
        ("beras", {"region": "Bandung"}, "someday", "not a date"),
    ],
)
def test_clear_errors(
    model: ImpactModel, min_r2: float, commodity: str, where: dict, day: str, message: str
):
    with pytest.raises(InputError, match=message):
        explain(model, commodity, day, SHIPPED, **where, min_explained_r2=min_r2)


def test_daily_prices_get_models_per_commodity(
    inputs: ImpactInputs, sample_prices: Path, conf_settings: Settings, min_r2: float
):
    with_daily = ImpactInputs(**{**inputs.__dict__, "daily": _daily(sample_prices)})
    model = fit_impact_model(with_daily, conf_settings)
    assert {"beras", "bawang_merah", "bawang_putih", "cabai_merah"} <= set(model.models)
    result = explain(
        model, "bawang_merah", "2024-04-20", SHIPPED, market_id="IP-001", min_explained_r2=min_r2
    )
    assert result.locations == ["IP-001"] and result.price_change > 0
    region = explain(
        model, "cabai_merah", "2024-03-05", SHIPPED, region="DKI Jakarta", min_explained_r2=min_r2
    )
    assert region.locations == ["IP-001", "IP-009"]
    for commodity in ("bawang_merah", "bawang_putih", "cabai_merah"):
        m = model.metrics[commodity]
        print(f"\nimpact hold-out {commodity}: R² {m['r2']:.3f}, MAPE {m['mape']:.2f} %")


def test_cli_explains_and_saves_the_model(inputs: ImpactInputs, tmp_path: Path, capsys):
    from scripts.cli import main

    saved = tmp_path / "impact.joblib"
    args = ["impact", "--commodity", "beras", "--region", "Bandung", "--date", "2025-07-01"]
    assert main([*args, "--model", str(saved), "--json"]) == 0
    first = json.loads(capsys.readouterr().out)
    assert saved.exists() and sum(first["factors_with_weights"].values()) == 100
    assert main([*args, "--model", str(saved), "--json"]) == 0  # now loaded, same answer
    assert json.loads(capsys.readouterr().out) == first
    assert main(["impact", "--commodity", "durian", "--region", "Bandung", "--date", "2025-07-01",
                 "--model", str(saved)]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.startswith("error: no impact model for commodity 'durian'")
    assert len(err.strip().splitlines()) == 1


def test_first_start_fits_the_model_from_the_shipped_data(
    tmp_path: Path, conf_settings: Settings
) -> None:
    settings = conf_settings.model_copy(
        update={"paths": conf_settings.paths.model_copy(update={"data_dir": tmp_path})}
    )
    done = fit_if_missing(settings)
    assert done is not None and "fitted from" in done and str(settings.impact.data_dir) in done
    assert model_path(settings).is_file()
    assert ImpactModel.load(model_path(settings)).models
    assert fit_if_missing(settings) is None  # a saved model is kept


def _with_data_dir(settings: Settings, data_dir: Path) -> Settings:
    return settings.model_copy(
        update={
            "paths": settings.paths.model_copy(
                update={"data_dir": data_dir, "lakehouse_root": str(data_dir / "lake")}
            )
        }
    )


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory, conf_settings: Settings) -> Settings:
    """Settings of a first start: the impact model fitted from the shipped data alone."""
    settings = _with_data_dir(conf_settings, tmp_path_factory.mktemp("fresh"))
    assert fit_if_missing(settings) is not None
    return settings


def _api(settings: Settings) -> TestClient:
    from serving_api.app import create_app

    return TestClient(create_app(settings))


def test_a_fresh_start_answers_impact_for_the_shipped_daily_commodities(fresh: Settings) -> None:
    api = _api(fresh)
    for commodity in SHIPPED_DAILY:
        answer = api.get("/api/v1/impact", params={"commodity": commodity, **QUESTION})
        assert answer.status_code == 200, answer.text
        impact = answer.json()
        assert impact["resolution"] == "week" and impact["period"] == "2025-02-10/2025-02-16"
        assert impact["locations"] == ["PIHPS-AGG"] and impact["month"] == "2025-02"
        assert sum(impact["factors_with_weights"].values()) == 100
        # no supply stream, no news and a single national series at first start: said, weight 0
        for family in ("supply", "news", "national_demand"):
            assert impact["factors_with_weights"][family] == 0
            assert impact["unavailable_factors"][family]
        assert NEWS_SIGNAL in impact["unavailable_factors"]["news"]
    by_market = api.get(
        "/api/v1/impact",
        params={"commodity": "cabai_merah", "market_id": "PIHPS-AGG", "date": "2025-02-12"},
    )
    assert by_market.status_code == 200 and by_market.json()["locations"] == ["PIHPS-AGG"]
    none = api.get(
        "/api/v1/impact",
        params={"commodity": "daging_sapi", "region": "Indonesia", "date": "2025-02-12"},
    )
    assert none.status_code == 404
    assert none.json()["detail"].startswith(
        "no impact model for commodity 'daging_sapi': it has 0 price changes"
    )
    assert "needs 24" in none.json()["detail"]


def test_the_verdict_follows_the_threshold(model: ImpactModel) -> None:
    """Rice's model (hold-out R² 0.24, MAPE below naive's) is "explained" at a bar just below its
    R² and "mostly unexplained" just above: no dominant factor then, the weights still given."""
    r2 = model.metrics["beras"]["r2"]
    question = ("beras", "2025-07-15", SHIPPED)
    below = explain(model, *question, region="Bandung", min_explained_r2=r2 - 0.01)
    above = explain(model, *question, region="Bandung", min_explained_r2=r2 + 0.01)
    weights = below.factors_with_weights
    assert below.status == "explained" and weights[below.dominant_factor] == max(weights.values())
    assert below.message.startswith(f"Faktor dominan: {below.dominant_factor}. Pada periode uji")
    assert above.status == "mostly_unexplained" and above.dominant_factor is None
    assert above.message.startswith(
        "Sebagian besar tidak terjelaskan: pada periode uji model hanya menjelaskan R² 0,24 "
    )
    assert "MAPE" not in above.message  # it does beat naive
    assert (above.factors_with_weights, above.contributions) == (weights, below.contributions)
    assert above.fit == below.fit.model_copy(update={"min_r2": r2 + 0.01})
    assert above.fit.r2 == pytest.approx(r2, abs=1e-4) and above.fit.held_out_rows == 72
    assert above.fit.mape < above.fit.naive_mape


def test_a_model_no_better_than_naive_names_no_factor_whatever_its_r2(
    model: ImpactModel,
) -> None:
    """Red chili's weekly model misses its held-out prices by more than "no change" does: the
    answer is mostly unexplained at any R² bar, and says why in either language."""
    result = explain(model, "cabai_merah", "2025-02-12", SHIPPED, region="Indonesia",
                     min_explained_r2=LENIENT)  # fmt: skip
    fit = result.fit
    assert fit.r2 >= LENIENT and fit.mape >= fit.naive_mape
    assert result.status == "mostly_unexplained" and result.dominant_factor is None
    assert result.lang == "id" and "tidak lebih baik dari naif" in result.message
    english = result.in_language("en")
    assert english.lang == "en" and english.message == (
        f"Mostly unexplained: its MAPE {fit.mape:.2f}% is no better than naive's "
        f"({fit.naive_mape:.2f}%). The factor weights are only the model's attribution, not a "
        "tested cause."
    )
    assert english.in_language("id") == result


def test_holdout_fit_is_the_fitted_metrics(model: ImpactModel, min_r2: float) -> None:
    for commodity in model.models:
        fit, m = holdout_fit(model, commodity, min_r2), model.metrics[commodity]
        assert fit.r2 == round(m["r2"], 4) and fit.naive_mape == round(m["naive_mape"], 4)
        assert fit.held_out_rows == m["test_rows"] and fit.min_r2 == min_r2


def test_the_api_judges_with_impact_min_explained_r2(fresh: Settings) -> None:
    """The verdict follows the hold-out fit and ``impact.min_explained_r2``: at the shipped bar
    the first start's models name no dominant factor (docs/impact.md); at a lenient one the
    API names one where the MAPE beats naive's — the setting, not a constant, decides."""
    lenient = fresh.model_copy(
        update={"impact": fresh.impact.model_copy(update={"min_explained_r2": LENIENT})}
    )
    shipped, relaxed = _api(fresh), _api(lenient)
    changed = []
    for commodity in SHIPPED_DAILY:
        params = {"commodity": commodity, **QUESTION}
        impact = shipped.get("/api/v1/impact", params=params).json()
        other = relaxed.get("/api/v1/impact", params=params).json()
        fit = impact["fit"]
        assert fit["min_r2"] == fresh.impact.min_explained_r2
        assert other["fit"] == fit | {"min_r2": LENIENT}
        for answer in (impact, other):
            least = answer["fit"]["min_r2"]
            explained = fit["r2"] >= least and fit["mape"] < fit["naive_mape"]
            assert answer["status"] == ("explained" if explained else "mostly_unexplained")
            assert (answer["dominant_factor"] is not None) == explained
            assert answer["dominant_factor"] not in answer["unavailable_factors"]
            assert answer["lang"] == "id"
            words = "Faktor dominan: " if explained else "Sebagian besar tidak terjelaskan: "
            assert answer["message"].startswith(words)
        changed += [commodity] if impact["status"] != other["status"] else []
    assert changed == ["bawang_merah", "bawang_putih"]  # R² 0.02 and −0.08, MAPE < naive's
    assert (
        shipped.get("/api/v1/impact", params={"commodity": "cabai_merah", **QUESTION, "lang": "en"})
        .json()["message"]
        .startswith("Mostly unexplained: on its held-out periods the model ")
    )
    answer = shipped.get(
        "/api/v1/impact",
        params={"commodity": "bawang_merah", **QUESTION},
        headers={"Accept-Language": "en-US,en;q=0.9,id;q=0.8"},
    ).json()
    assert answer["lang"] == "en" and answer["message"].startswith("Mostly unexplained: ")


def test_the_openapi_schema_describes_the_verdict(fresh: Settings) -> None:
    spec = _api(fresh).get("/openapi.json").json()
    schemas = spec["components"]["schemas"]
    result = schemas["ImpactResult"]["properties"]
    assert set(result["status"]["enum"]) == {"explained", "mostly_unexplained"}
    assert {"type": "null"} in result["dominant_factor"]["anyOf"]
    assert {"status", "dominant_factor", "fit", "message"} <= set(
        schemas["ImpactResult"]["required"]
    )
    assert result["fit"] == {"$ref": "#/components/schemas/ImpactFit"}
    assert set(schemas["ImpactFit"]["required"]) == {
        "r2", "mape", "naive_mape", "held_out_rows", "min_r2"
    }  # fmt: skip
    params = {p["name"] for p in spec["paths"]["/api/v1/impact"]["get"]["parameters"]}
    assert {"commodity", "date", "market_id", "region", "lang"} <= params


def test_a_critical_alert_carries_the_verdict_in_its_language(fresh: Settings) -> None:
    opened = datetime(2025, 2, 12, 3, tzinfo=UTC)
    planted = alert("impact-verdict", "critical", "Indonesia") | {
        "market_id": "PIHPS-AGG",
        "commodity": "cabai_merah",
        "opened_at": opened,
        "updated_at": opened,
    }
    upsert_alerts(fresh, [planted])
    api = _api(with_api(fresh, cache_check_ms=0))
    for lang, words in (
        ("id", "Sebagian besar tidak terjelaskan: "),
        ("en", "Mostly unexplained: "),
    ):
        (served,) = api.get("/api/v1/alerts", params={"lang": lang}).json()
        impact = served["impact"]
        assert served["lang"] == impact["lang"] == lang
        assert impact["status"] == "mostly_unexplained" and impact["message"].startswith(words)


def test_too_little_history_is_a_404_saying_how_much(
    inputs: ImpactInputs, conf_settings: Settings, min_r2: float
) -> None:
    strict = conf_settings.model_copy(
        update={"impact": conf_settings.impact.model_copy(update={"min_rows": 60})}
    )
    model = fit_impact_model(inputs, strict)
    assert "beras" in model.models and not set(SHIPPED_DAILY) & set(model.models)
    with pytest.raises(NoImpactModel) as raised:
        explain(
            model, "cabai_merah", "2025-02-12", SHIPPED, region="Indonesia", min_explained_r2=min_r2
        )
    assert str(raised.value).startswith(
        "no impact model for commodity 'cabai_merah': it has 63 weekly price changes, 51 of "
        "them before the 12 held-out weeks, and needs 60 there (impact.min_rows)"
    )


def _news_signal(commodity: str) -> pd.DataFrame:
    """A fake daily signal in the shape of gold.news_signal (a unit-test fake: it only checks
    that the family is read when present; no measurement is made on it)."""
    days = pd.date_range("2024-01-01", "2025-03-22", freq="D")
    up = (np.arange(len(days)) % 5 == 0).astype(int)
    return pd.DataFrame(
        {
            "date": days.date,
            "commodity": commodity,
            "province": np.where(np.arange(len(days)) % 2, "DKI Jakarta", "Indonesia"),
            "headlines": 1 + up,
            "up": up,
            "down": 0,
            "stable": 1,
            "net_direction": up / (1 + up),
            "intensity": 1.0 + up,
        }
    )


def test_an_absent_gold_table_leaves_its_family_unavailable_not_an_error(
    inputs: ImpactInputs, conf_settings: Settings, tmp_path: Path, min_r2: float
) -> None:
    from ml.retrain import optional_gold

    frames, absent = optional_gold(
        [NEWS_SIGNAL, SUPPLY_REGION_DAILY], Lakehouse(_with_data_dir(conf_settings, tmp_path))
    )
    assert frames == {}
    assert set(absent) == {NEWS_SIGNAL, SUPPLY_REGION_DAILY}
    assert all(name in why for name, why in absent.items())

    missing = ImpactInputs(**{**inputs.__dict__, "absent": absent})
    model = fit_impact_model(missing, conf_settings)
    result = explain(
        model, "cabai_merah", "2025-02-12", SHIPPED, region="Indonesia", min_explained_r2=min_r2
    )
    assert result.unavailable_factors["news"] == absent[NEWS_SIGNAL]
    assert result.factors_with_weights["news"] == 0

    signal = _news_signal("cabai_merah")
    supply = signal.loc[:, ["date", "commodity", "province"]].assign(
        stock=1000.0,
        days_of_cover=signal["headlines"] * 3.0,
        shipments_in_transit=2,
        shipments_late=signal["up"],
    )  # a fake in the shape of gold.supply_region_daily, same purpose
    with_news = ImpactInputs(
        **{**inputs.__dict__, "gold": {NEWS_SIGNAL: signal, SUPPLY_REGION_DAILY: supply}}
    )
    model = fit_impact_model(with_news, conf_settings)
    assert "supply" not in model.models["cabai_merah"].unavailable
    assert model.models["bawang_merah"].unavailable["supply"] == (
        f"{SUPPLY_REGION_DAILY} has no rows for bawang_merah"
    )
    assert "news" not in model.models["cabai_merah"].unavailable
    assert model.models["bawang_putih"].unavailable["news"] == (
        f"{NEWS_SIGNAL} has no rows for bawang_putih"
    )
    rows = model.design[model.design["commodity"] == "cabai_merah"]
    assert rows["news_direction"].between(0, 1).all() and rows["news_intensity"].notna().all()
    assert rows["days_of_cover"].between(3, 6).all() and rows["shipments_late"].notna().all()
    gains = family_gain(with_news, conf_settings, "news", model)
    assert set(gains) == {"cabai_merah"}
    assert set(gains["cabai_merah"]) == {"r2", "r2_without", "mae", "mae_without"}


def test_r2_is_measured_on_the_held_out_rows_only(conf_settings: Settings) -> None:
    """A synthetic frame whose change is 3 × rain anomaly: the model fitted on the first rows
    scores near 1 on held-out rows that follow the same law, and below 0 on held-out rows where
    the law is reversed — the hold-out is never part of the fit."""
    rng = np.random.default_rng(0)
    n, held_n = 200, 40
    frame = pd.DataFrame(np.nan, index=range(n), columns=list(FEATURES))
    frame["rain_anomaly"] = rng.normal(0, 1, n)
    frame["resolution"] = "W"
    frame["change"] = 3 * frame["rain_anomaly"] + rng.normal(0, 0.1, n)
    frame["previous_price"] = 10_000.0
    frame["price"] = 10_000 * np.exp(frame["change"] / 100)
    held = pd.Series(np.arange(n) >= n - held_n)
    same = holdout_metrics(frame, held, conf_settings.impact)
    assert same["r2"] > 0.8 and same["mae"] < same["naive_mae"]
    assert (same["train_rows"], same["test_rows"]) == (n - held_n, held_n)
    reversed_ = frame.copy()
    reversed_.loc[held, "change"] *= -1
    assert holdout_metrics(reversed_, held, conf_settings.impact)["r2"] < 0
