"""Impact engine: which factors drove the monthly price change of a market × commodity.

For each commodity, an XGBoost regression of the month-on-month change of a location's mean price
(``100 × log(p_m / p_{m-1})``, i.e. in %) on factor features, fitted on real data: the monthly rice
panel of Jakarta/West Java cities (``beras``), and optionally daily closes of any commodity
(aggregated to months per market). A location is a panel city/province or a market. Features,
grouped into the factor families of ``FAMILIES``:

* weather — rainfall, and rainfall/temperature anomalies against the location's past 12 months;
* distribution_cost — national fuel price change over 1 and 3 months;
* season_holidays — month of year, Ramadan days in the month and distance to Idul Fitri (dates
  from the ``holidays`` package);
* supply — harvested-area change and anomaly (rice panel only);
* national_demand — the same month's mean change of the other locations (co-movement) and last
  month's;
* macro — food inflation (year on year) and its change, headline inflation (month on month).

Each explanation is the model's SHAP contributions (``pred_contribs=True``) summed per family.
``factors_with_weights`` are the families' shares of the absolute contributions, in whole
percent summing to exactly 100. ``impact_score`` (0..100) = 100 × share × magnitude, where
*move* is the month's change minus the model's average change (its bias), *share* is how much of
the move the factors explain (Σ contributions / move, clipped to 0..1; 0 if they point the other
way) and *magnitude* is ``1 − exp(−|move| / σ)`` with σ the standard deviation of the
commodity's monthly changes: a large move the factors account for scores high, a small move or
one they do not account for scores low.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import date as Date
from datetime import timedelta
from pathlib import Path
from typing import Any

import holidays
import joblib
import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.metrics import r2_score
from tqdm import tqdm

from lakehouse.errors import InputError
from lakehouse.reference import markets
from lakehouse.settings import ImpactSettings, Settings
from ml.daily import validated_daily
from ml.impact_result import ImpactResult, model_path

log = logging.getLogger(__name__)

FAMILIES: dict[str, tuple[str, ...]] = {
    "weather": ("rain_mm", "rain_anomaly", "temperature_anomaly"),
    "distribution_cost": ("fuel_change", "fuel_change_3m"),
    "season_holidays": ("month_sin", "month_cos", "ramadan_days", "days_to_idul_fitri"),
    "supply": ("harvest_change", "harvest_anomaly"),
    "national_demand": ("national_change", "national_change_lag"),
    "macro": ("food_inflation", "food_inflation_change", "inflation_mom"),
}
FEATURES: tuple[str, ...] = tuple(f for names in FAMILIES.values() for f in names)
MODEL_NAME = "impact-xgboost"
PANEL_COMMODITY = "beras"  # the monthly panel holds rice prices
INPUT_FILES = {
    "panel": "panel_monthly_jabar_jakarta.csv",
    "fuel": "indonesia_gasoline_prices_5y.csv",
    "food_inflation": "indonesia_food_inflation.csv",
    "inflation_mom": "indonesia_inflation_rate_mom.csv",
}
_TRAILING = 12  # months of a location's past that weather anomalies are measured against


@dataclass(frozen=True)
class ImpactInputs:
    """The real data the model is fitted on (see ``load_inputs``)."""

    panel: pd.DataFrame  # location_name, year_month, price, precipitation_mm, ... (rice)
    fuel: pd.DataFrame  # Date, Price_IDR_per_Liter
    food_inflation: pd.DataFrame  # date, food_inflation_yoy_pct
    inflation_mom: pd.DataFrame  # date, inflation_rate_mom_pct
    daily: pd.DataFrame | None = None  # market_id, region, commodity, date, price (daily closes)


@dataclass
class CommodityModel:
    """The fitted model of one commodity: a least-squares co-movement term plus XGBoost on what
    it leaves. Trees cannot extrapolate, and co-movement is close to linear: when every other
    market rises by more than the training data ever saw, this one is expected to rise too."""

    intercept: float
    slope: float  # change per point of national_change
    national_mean: float  # mean national_change in training (its SHAP reference)
    booster: xgb.XGBRegressor  # fitted on change − linear term
    sigma: float  # standard deviation of the monthly change, %

    def _linear(self, rows: pd.DataFrame) -> np.ndarray:
        """The co-movement term's SHAP contribution (0 where national_change is unknown)."""
        return (self.slope * (rows["national_change"] - self.national_mean)).fillna(0).to_numpy()

    @property
    def _bias(self) -> float:
        return self.intercept + self.slope * self.national_mean

    def predict(self, rows: pd.DataFrame) -> np.ndarray:
        trees = self.booster.predict(rows.loc[:, list(FEATURES)])
        return self._bias + self._linear(rows) + trees

    def contributions(self, rows: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        """Per row: each feature's contribution (SHAP, n × features) and the bias (n)."""
        matrix = xgb.DMatrix(rows.loc[:, list(FEATURES)])
        contribs = self.booster.get_booster().predict(matrix, pred_contribs=True)
        per_feature = contribs[:, :-1].copy()
        per_feature[:, FEATURES.index("national_change")] += self._linear(rows)
        return per_feature, contribs[:, -1] + self._bias

    @classmethod
    def fit(cls, rows: pd.DataFrame, s: ImpactSettings) -> CommodityModel:
        known = rows["national_change"].notna()
        x, y = rows.loc[known, "national_change"], rows.loc[known, "change"]
        slope, intercept = np.polyfit(x, y, 1) if known.sum() >= 2 and x.std() > 0 else (0, 0)
        mean = float(x.mean()) if known.any() else 0.0
        linear = cls(float(intercept), float(slope), mean, _regressor(s), 0.0)
        residual = rows["change"] - linear._bias - linear._linear(rows)
        linear.booster.fit(rows.loc[:, list(FEATURES)], residual)
        linear.sigma = float(rows["change"].std())
        return linear


@dataclass
class ImpactModel:
    """One model per commodity plus the monthly design table it explains from."""

    models: dict[str, CommodityModel]
    design: pd.DataFrame
    metrics: dict[str, dict[str, float]]  # commodity (and "overall") → hold-out r2, mape, ...
    params: dict[str, Any]
    skipped: dict[str, str] = field(default_factory=dict)  # commodity → why it has no model

    def save(self, path: Path) -> Path:
        path.parent.mkdir(parents=True, exist_ok=True)
        joblib.dump(self, path)
        return path

    @classmethod
    def load(cls, path: Path) -> ImpactModel:
        try:
            model = joblib.load(path)
        except Exception as exc:  # noqa: BLE001 - unpickling a wrong file can raise anything
            raise InputError(f"cannot load the impact model {path}: {exc}") from None
        if not isinstance(model, cls):
            raise InputError(f"{path} does not hold an impact model")
        return model


def describe(model: ImpactModel, path: Path) -> str:
    """One line about a saved model: its commodities and hold-out fit."""
    overall = model.metrics.get("overall", {})
    fit = ", ".join(f"{k} {v:.3f}" for k, v in overall.items())
    return f"impact model: {len(model.models)} commodities ({fit}) saved to {path}"


def fit_if_missing(settings: Settings) -> str | None:
    """On a first start: fit the model on the shipped data of ``impact.data_dir`` alone and save
    it where the API loads it, so ``/api/v1/impact`` answers before the first retrain. Returns
    what was done, or None when a model is already saved."""
    path = model_path(settings)
    if path.exists():
        return None
    model = fit_impact_model(load_inputs(settings.impact.data_dir), settings)
    model.save(path)
    return f"{describe(model, path)} (none yet: fitted from {settings.impact.data_dir})"


def load_inputs(data_dir: Path, daily: pd.DataFrame | None = None) -> ImpactInputs:
    """Read the real data files of ``data_dir`` (``impact.data_dir``)."""
    frames = {}
    for name, file in INPUT_FILES.items():
        try:
            frames[name] = pd.read_csv(data_dir / file)
        except (OSError, pd.errors.ParserError) as exc:
            raise InputError(f"cannot read {data_dir / file}: {exc}") from None
    return ImpactInputs(daily=daily, **frames)


def model_params(settings: Settings) -> dict[str, Any]:
    """The model's parameters, for MLflow."""
    s = settings.impact
    return {
        "features": ",".join(FEATURES),
        "holdout_months": s.holdout_months,
        "min_rows": s.min_rows,
        "n_estimators": s.n_estimators,
        "max_depth": s.max_depth,
        "learning_rate": s.learning_rate,
        "subsample": s.subsample,
        "min_child_weight": s.min_child_weight,
        "reg_lambda": s.reg_lambda,
        "random_state": s.random_state,
        "ramadan_days": s.ramadan_days,
    }


# --- design table -----------------------------------------------------------------------------


def _monthly(frame: pd.DataFrame, date_column: str, value_column: str) -> pd.Series:
    months = pd.to_datetime(frame[date_column]).dt.to_period("M")
    return frame.assign(month=months).groupby("month")[value_column].mean()


def _overlap_days(start: Date, end: Date, first: Date, last: Date) -> int:
    return max(0, (min(end, last) - max(start, first)).days + 1)


def _season(months: pd.PeriodIndex, ramadan_days: int) -> pd.DataFrame:
    """Month of year, days of Ramadan in the month, days from mid-month to the nearest Idul
    Fitri (negative: it is past)."""
    years = range(months.min().year - 1, months.max().year + 2)
    calendar = holidays.Indonesia(years=years, language="en_US")
    fitri = sorted(d for d, name in calendar.items() if name == "Eid al-Fitr")
    rows = []
    for month in months:
        start, end = month.start_time.date(), month.end_time.date()
        middle = start + timedelta(days=(end - start).days // 2)
        rows.append(
            {
                "month": month,
                "month_sin": math.sin(2 * math.pi * month.month / 12),
                "month_cos": math.cos(2 * math.pi * month.month / 12),
                "ramadan_days": sum(
                    _overlap_days(start, end, f - timedelta(days=ramadan_days), f - timedelta(1))
                    for f in fitri
                ),
                "days_to_idul_fitri": min(((f - middle).days for f in fitri), key=abs),
            }
        )
    return pd.DataFrame(rows).set_index("month")


def _national(inputs: ImpactInputs, months: pd.PeriodIndex, ramadan_days: int) -> pd.DataFrame:
    """Features that are the same for every location in a month."""
    fuel = np.log(_monthly(inputs.fuel, "Date", "Price_IDR_per_Liter"))
    food = _monthly(inputs.food_inflation, "date", "food_inflation_yoy_pct")
    out = pd.DataFrame(
        {
            "fuel_change": 100 * fuel.diff(),
            "fuel_change_3m": 100 * (fuel - fuel.shift(3)),
            "food_inflation": food,
            "food_inflation_change": food.diff(),
            "inflation_mom": _monthly(inputs.inflation_mom, "date", "inflation_rate_mom_pct"),
        }
    )
    return out.reindex(months).join(_season(months, ramadan_days))


def _local(panel: pd.DataFrame) -> pd.DataFrame:
    """Weather and supply features per panel location × month."""
    parts = []
    for location, g in panel.groupby("location_name"):
        g = g.sort_values("month").set_index("month")
        past = g.shift(1).rolling(_TRAILING, min_periods=_TRAILING // 2)
        harvest = np.log(g["luas_panen_ha"].where(g["luas_panen_ha"] > 0))
        parts.append(
            pd.DataFrame(
                {
                    "weather_location": location,
                    "rain_mm": g["precipitation_mm"],
                    "rain_anomaly": g["precipitation_mm"] - past["precipitation_mm"].mean(),
                    "temperature_anomaly": g["temperature_mean_c"]
                    - past["temperature_mean_c"].mean(),
                    "harvest_change": 100 * harvest.diff(),
                    "harvest_anomaly": 100
                    * (harvest - harvest.shift(1).rolling(24, min_periods=12).mean()),
                }
            )
        )
    return pd.concat(parts).reset_index()


def _weather_location(market_id: str, known: set[str]) -> str | None:
    """The panel location whose weather a market shares: its city, else its province."""
    market = markets().get(market_id)
    if market is None:
        return None
    return next((name for name in (market.city, market.province) if name in known), None)


def build_design(inputs: ImpactInputs, settings: ImpactSettings) -> pd.DataFrame:
    """One row per commodity × location × month: mean price, change (the target) and features."""
    panel = inputs.panel.assign(month=pd.PeriodIndex(inputs.panel["year_month"], freq="M"))
    local = _local(panel)
    prices = [
        panel.assign(commodity=PANEL_COMMODITY, location=panel["location_name"], region=None)
        .assign(weather_location=panel["location_name"])
        .loc[:, ["commodity", "location", "region", "weather_location", "month", "price"]]
    ]
    if inputs.daily is not None and not inputs.daily.empty:
        prices.append(_daily_prices(inputs.daily, set(local["weather_location"])))
    design = pd.concat(prices, ignore_index=True).sort_values(["commodity", "location", "month"])

    previous = design.groupby(["commodity", "location"])[["month", "price"]].shift(1)
    consecutive = (design["month"] - previous["month"]).map(lambda d: getattr(d, "n", None)) == 1
    design["previous_price"] = previous["price"].where(consecutive)
    design["change"] = 100 * np.log(design["price"] / design["previous_price"])

    by_month = design.groupby(["commodity", "month"])["change"]
    total, count = by_month.transform("sum"), by_month.transform("count")
    own = design["change"].fillna(0)
    others = count - design["change"].notna()
    design["national_change"] = ((total - own) / others).where(others > 0)
    design["national_change_lag"] = design.groupby(["commodity", "location"])[
        "national_change"
    ].shift(1)

    # Markets outside the panel's places get the mean weather of all panel locations.
    national_weather = local.groupby("month")[["rain_mm", "rain_anomaly", "temperature_anomaly"]]
    mean_weather = national_weather.mean().reset_index().assign(weather_location=None)
    local_all = pd.concat([local, mean_weather], ignore_index=True)
    design = design.merge(local_all, on=["weather_location", "month"], how="left")
    supply = ["harvest_change", "harvest_anomaly"]
    design.loc[design["commodity"] != PANEL_COMMODITY, supply] = np.nan  # rice harvest only
    months = pd.period_range(design["month"].min(), design["month"].max(), freq="M")
    design = design.join(_national(inputs, months, settings.ramadan_days), on="month")
    return design.reset_index(drop=True)


def _daily_prices(daily: pd.DataFrame, panel_locations: set[str]) -> pd.DataFrame:
    daily = validated_daily(daily)
    monthly = (
        daily.assign(month=daily["date"].dt.to_period("M"))
        .groupby(["commodity", "market_id", "month"], as_index=False)
        .agg(price=("price", "mean"), region=("region", "last"))
        .rename(columns={"market_id": "location"})
    )
    monthly["weather_location"] = monthly["location"].map(
        lambda m: _weather_location(m, panel_locations)
    )
    return monthly.loc[:, ["commodity", "location", "region", "weather_location", "month", "price"]]


# --- fitting ----------------------------------------------------------------------------------


def _regressor(s: ImpactSettings) -> xgb.XGBRegressor:
    return xgb.XGBRegressor(
        n_estimators=s.n_estimators,
        max_depth=s.max_depth,
        learning_rate=s.learning_rate,
        subsample=s.subsample,
        min_child_weight=s.min_child_weight,
        reg_lambda=s.reg_lambda,
        random_state=s.random_state,
        n_jobs=1,
    )


def _holdout_metrics(rows: pd.DataFrame, held: pd.Series, s: ImpactSettings) -> dict[str, float]:
    """Fit on the earlier months, score the held-out ones: R² of the change, MAPE of the price it
    implies (previous price × predicted change), and the naive (no change) MAPE beside it."""
    test = rows[held]
    predicted = CommodityModel.fit(rows[~held], s).predict(test)
    implied = test["previous_price"] * np.exp(predicted / 100)
    return {
        "r2": float(r2_score(test["change"], predicted)),
        "mape": float(np.mean(np.abs(implied / test["price"] - 1)) * 100),
        "naive_mape": float(np.mean(np.abs(test["previous_price"] / test["price"] - 1)) * 100),
        "test_rows": float(len(test)),
        "train_rows": float((~held).sum()),
    }


def fit_impact_model(inputs: ImpactInputs, settings: Settings) -> ImpactModel:
    """Fit one model per commodity with enough history; measure it on the held-out last
    ``impact.holdout_months`` months (``ImpactModel.metrics``), then refit on every month for
    serving. Deterministic for the same inputs and settings."""
    s = settings.impact
    design = build_design(inputs, s)
    models, metrics, skipped = {}, {}, {}
    pooled = []
    commodities = sorted(design["commodity"].unique())
    for commodity in tqdm(commodities, desc="impact models", unit="commodity", disable=None):
        rows = design[(design["commodity"] == commodity) & design["change"].notna()]
        months = sorted(rows["month"].unique())
        held = rows["month"].isin(months[-s.holdout_months :])
        if (~held).sum() < s.min_rows:
            skipped[commodity] = (
                f"{len(rows)} monthly changes, {s.min_rows} needed besides the "
                f"{s.holdout_months} held-out months"
            )
            continue
        metrics[commodity] = _holdout_metrics(rows, held, s)
        pooled.append(metrics[commodity])
        models[commodity] = CommodityModel.fit(rows, s)
        log.info("impact model fitted", extra={"commodity": commodity, **metrics[commodity]})
    if pooled:
        weights = np.array([m["test_rows"] for m in pooled])
        metrics["overall"] = {
            k: float(np.average([m[k] for m in pooled], weights=weights))
            for k in ("r2", "mape", "naive_mape")
        } | {"test_rows": float(weights.sum())}
    return ImpactModel(models, design, metrics, model_params(settings), skipped)


# --- explaining -------------------------------------------------------------------------------


def _locations(
    model: ImpactModel, commodity: str, market_id: str | None, region: str | None
) -> list[str]:
    known = set(model.design.loc[model.design["commodity"] == commodity, "location"])
    if (market_id is None) == (region is None):
        raise InputError("give either a market id or a region")
    if market_id is not None:
        if market_id in known:
            return [market_id]
        market = markets().get(market_id)
        if market is None:
            raise InputError(f"unknown market {market_id!r} (see conf/markets.csv)")
        place = next((n for n in (market.city, market.province) if n in known), None)
        if place is None:
            raise InputError(
                f"no {commodity} data for market {market_id} ({market.city}, {market.province})"
            )
        return [place]
    if region in known:
        return [region]
    in_region = sorted(m for m in known if m in markets() and markets()[m].province == region)
    if not in_region:
        raise InputError(f"no {commodity} data for region {region!r}")
    return in_region


def _whole_percent(values: dict[str, float]) -> dict[str, int]:
    """Shares of ``values`` in whole percent summing to exactly 100 (largest remainder)."""
    total = sum(values.values())
    if total <= 0:
        values, total = dict.fromkeys(values, 1.0), float(len(values))
    raw = {k: 100 * v / total for k, v in values.items()}
    out = {k: math.floor(v) for k, v in raw.items()}
    by_remainder = sorted(raw, key=lambda k: (out[k] - raw[k], list(raw).index(k)))
    for k in by_remainder[: 100 - sum(out.values())]:
        out[k] += 1
    return out


def explain(
    model: ImpactModel,
    commodity: str,
    date: Date | str,
    *,
    market_id: str | None = None,
    region: str | None = None,
) -> ImpactResult:
    """Explain the change of the month containing ``date`` vs the month before, for one market
    (or the panel city/province it lies in) or one region; raises ``InputError`` with a readable
    message for an unknown commodity, market or region, or a month outside the data."""
    if commodity not in model.models:
        why = model.skipped.get(commodity)
        known = ", ".join(sorted(model.models))
        raise InputError(
            f"no impact model for commodity {commodity!r}"
            + (f" (too little history: {why})" if why else "")
            + f"; known: {known}"
        )
    try:
        month = pd.Period(pd.Timestamp(date), freq="M")
    except ValueError:
        raise InputError(f"not a date: {date!r}") from None
    locations = _locations(model, commodity, market_id, region)
    d = model.design
    series = d[(d["commodity"] == commodity) & d["location"].isin(locations)]
    rows = series[(series["month"] == month) & series["change"].notna()]
    if rows.empty:
        with_change = series.loc[series["change"].notna(), "month"]
        raise InputError(
            f"{month} is outside the {commodity} data of {', '.join(locations)} "
            f"({with_change.min()} … {with_change.max()})"
        )
    fitted = model.models[commodity]
    per_feature, bias = fitted.contributions(rows)
    by_feature = dict(zip(FEATURES, per_feature.mean(axis=0), strict=True))
    families = {f: float(sum(by_feature[x] for x in names)) for f, names in FAMILIES.items()}
    weights = _whole_percent({f: abs(v) for f, v in families.items()})
    dominant = max(FAMILIES, key=lambda f: (weights[f], abs(families[f])))

    change = float(rows["change"].mean())
    move = change - float(bias.mean())
    explained = sum(families.values())
    share = min(1.0, max(0.0, explained / move)) if move else 0.0
    magnitude = 1 - math.exp(-abs(move) / fitted.sigma)
    price, previous = float(rows["price"].mean()), float(rows["previous_price"].mean())
    return ImpactResult(
        commodity=commodity,
        market_id=market_id,
        region=region,
        locations=locations,
        month=str(month),
        price=round(price, 2),
        previous_price=round(previous, 2),
        price_change=round(price - previous, 2),
        price_change_pct=round(100 * (price / previous - 1), 3),
        explained_change_pct=round(explained, 3),
        impact_score=round(100 * share * magnitude, 1),
        dominant_factor=dominant,
        factors_with_weights=weights,
        contributions={f: round(v, 4) for f, v in families.items()},
    )
