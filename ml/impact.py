"""Impact engine: which factors drove the price change of a market × commodity over a period.

For each commodity, an XGBoost regression of the period-on-period change of a location's mean
price (``100 × log(p_t / p_{t-1})``, i.e. in %) on factor features, fitted on real data: the
monthly rice panel of Jakarta/West Java cities (``beras``, monthly periods), and daily closes of
any commodity — the shipped PIHPS series of shallot, garlic and red chili at first start, plus
gold.price_daily after a retrain — aggregated per market to weeks (``impact.daily_resolution``;
rice stays monthly). A location is a panel city/province or a market. The features, grouped into
the factor families of ``ml.impact_design.FAMILY_SPECS``:

* weather — rainfall, and rainfall/temperature anomalies against the location's past 12 months
  (the panel's; a market outside it takes the panel's mean);
* distribution_cost — national fuel price change over 1 and 3 months;
* season_holidays — month of year, Ramadan days in the period and distance to Idul Fitri (dates
  from the ``holidays`` package);
* supply — harvested-area change and anomaly (rice panel only), and days of stock cover and late
  shipments from gold.supply_region_daily when it exists;
* national_demand — the same period's mean change of the other locations (co-movement) and the
  previous period's;
* macro — food inflation (year on year) and its change, headline inflation (month on month);
* news — net direction and intensity of the headlines in gold.news_signal when it exists.

A family with no data for a commodity (its gold table is absent, or has no rows for it) is listed
in the answer's ``unavailable_factors`` with the reason, and weighs 0.

Each explanation is the model's SHAP contributions (``pred_contribs=True``) summed per family.
``factors_with_weights`` are the families' shares of the absolute contributions, in whole
percent summing to exactly 100. ``impact_score`` (0..100) = 100 × share × magnitude, where
*move* is the period's change minus the model's average change (its bias), *share* is how much
of the move the factors explain (Σ contributions / move, clipped to 0..1; 0 if they point the
other way) and *magnitude* is ``1 − exp(−|move| / σ)`` with σ the standard deviation of the
commodity's period changes: a large move the factors account for scores high, a small move or
one they do not account for scores low.

Every answer carries its commodity's hold-out fit (``ImpactResult.fit``: R² of the change and
the price MAPE beside naive's, measured when the model was fitted) and a verdict: below
``impact.min_explained_r2``, or with a MAPE not below naive's, the move is "mostly unexplained"
— no dominant factor is named, and the weights stay as the model's attribution only.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date as Date
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.metrics import r2_score
from tqdm import tqdm

from lakehouse.catalog.conf import Conf, conf_of
from lakehouse.catalog.reference import Market
from lakehouse.config.errors import InputError
from lakehouse.config.settings import ImpactSettings, Settings
from ml.daily import file_daily_closes
from ml.impact_design import (
    FAMILIES,
    FAMILY_SPECS,
    FEATURES,
    MONTHLY,
    RESOLUTION_NAMES,
    ImpactInputs,
    build_design,
    period_label,
    resolution,
)
from ml.impact_result import ImpactFit, ImpactResult, NoImpactModel, model_path, verdict_message

log = logging.getLogger(__name__)

MODEL_NAME = "impact-xgboost"
FORMAT = 2  # the saved model's layout; a model of another layout is fitted again at start
INPUT_FILES = {
    "panel": "panel_monthly_jabar_jakarta.csv",
    "fuel": "indonesia_gasoline_prices_5y.csv",
    "food_inflation": "indonesia_food_inflation.csv",
    "inflation_mom": "indonesia_inflation_rate_mom.csv",
}
DAILY_FILE = "prices_pihps_daily_2024_2025.csv"  # real daily closes: shallot, garlic, red chili


@dataclass
class CommodityModel:
    """The fitted model of one commodity: a least-squares co-movement term plus XGBoost on what
    it leaves. Trees cannot extrapolate, and co-movement is close to linear: when every other
    market rises by more than the training data ever saw, this one is expected to rise too."""

    intercept: float
    slope: float  # change per point of national_change
    national_mean: float  # mean national_change in training (its SHAP reference)
    booster: xgb.XGBRegressor  # fitted on change − linear term
    sigma: float  # standard deviation of the period change, %
    #: family → why it had no data for this commodity (it weighs 0 in every explanation)
    unavailable: dict[str, str] = field(default_factory=dict)

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
    def fit(
        cls, rows: pd.DataFrame, s: ImpactSettings, unavailable: dict[str, str] | None = None
    ) -> CommodityModel:
        known = rows["national_change"].notna()
        x, y = rows.loc[known, "national_change"], rows.loc[known, "change"]
        slope, intercept = np.polyfit(x, y, 1) if known.sum() >= 2 and x.std() > 0 else (0, 0)
        mean = float(x.mean()) if known.any() else 0.0
        freq = rows["resolution"].iloc[0]
        linear = cls(
            float(intercept), float(slope), mean, _regressor(s, freq), 0.0, unavailable or {}
        )
        residual = rows["change"] - linear._bias - linear._linear(rows)
        linear.booster.fit(rows.loc[:, list(FEATURES)], residual)
        linear.sigma = float(rows["change"].std())
        return linear


@dataclass
class ImpactModel:
    """One model per commodity plus the design table (rows per period) it explains from."""

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
        if model.params.get("format") != FORMAT:
            raise InputError(f"{path} holds an impact model of an older layout: retrain it")
        return model


def describe(model: ImpactModel, path: Path) -> str:
    """One line about a saved model: its commodities and hold-out fit."""
    overall = model.metrics.get("overall", {})
    fit = ", ".join(f"{k} {v:.3f}" for k, v in overall.items())
    return f"impact model: {len(model.models)} commodities ({fit}) saved to {path}"


def fit_if_missing(settings: Settings) -> str | None:
    """On a first start: fit the model on the shipped data of ``impact.data_dir`` alone and save
    it where the API loads it, so ``/api/v1/impact`` answers before the first retrain. Returns
    what was done, or None when a usable model is already saved (one that cannot be loaded, or
    of an older layout, is replaced)."""
    path = model_path(settings)
    if path.exists():
        try:
            ImpactModel.load(path)
        except InputError as exc:
            log.warning("impact model refitted", extra={"reason": str(exc)})
        else:
            return None
    model = fit_impact_model(load_inputs(settings.impact.data_dir, conf_of(settings)), settings)
    model.save(path)
    return f"{describe(model, path)} (none yet: fitted from {settings.impact.data_dir})"


def read_input(data_dir: Path, name: str) -> pd.DataFrame:
    """One monthly file of ``INPUT_FILES`` (e.g. ``panel``: the rice panel with its weather)."""
    file = data_dir / INPUT_FILES[name]
    try:
        return pd.read_csv(file)
    except (OSError, pd.errors.ParserError) as exc:
        raise InputError(f"cannot read {file}: {exc}") from None


def load_inputs(
    data_dir: Path,
    conf: Conf,
    daily: pd.DataFrame | None = None,
    gold: dict[str, pd.DataFrame] | None = None,
    absent: dict[str, str] | None = None,
) -> ImpactInputs:
    """Read the real data files of ``data_dir`` (``impact.data_dir``): the monthly files and the
    shipped daily closes, to which ``daily`` (gold.price_daily) is added — its close wins where
    both have a market × commodity × day. ``gold``/``absent``: the optional gold tables of the
    families (``ml.impact_design.SOURCES``) read, and why the others were not."""
    frames = {name: read_input(data_dir, name) for name in INPUT_FILES}
    shipped = file_daily_closes(data_dir / DAILY_FILE, conf)
    if daily is not None and not daily.empty:
        both = [shipped, daily.assign(date=pd.to_datetime(daily["date"]))]
        shipped = pd.concat(both, ignore_index=True).drop_duplicates(
            ["market_id", "commodity", "date"], keep="last"
        )
    return ImpactInputs(daily=shipped, gold=gold or {}, absent=absent or {}, **frames)


def model_params(settings: Settings) -> dict[str, Any]:
    """The model's parameters, for MLflow."""
    s = settings.impact
    return {
        "format": FORMAT,
        "features": ",".join(FEATURES),
        "holdout_months": s.holdout_months,
        "holdout_weeks": s.holdout_weeks,
        "daily_resolution": s.daily_resolution,
        "min_rows": s.min_rows,
        "n_estimators": s.n_estimators,
        "max_depth": s.max_depth,
        "learning_rate": s.learning_rate,
        "subsample": s.subsample,
        "min_child_weight": s.min_child_weight,
        "min_child_weight_weekly": s.min_child_weight_weekly,
        "reg_lambda": s.reg_lambda,
        "random_state": s.random_state,
        "ramadan_days": s.ramadan_days,
    }


# --- fitting ----------------------------------------------------------------------------------


def _regressor(s: ImpactSettings, freq: str) -> xgb.XGBRegressor:
    return xgb.XGBRegressor(
        n_estimators=s.n_estimators,
        max_depth=s.max_depth,
        learning_rate=s.learning_rate,
        subsample=s.subsample,
        min_child_weight=s.min_child_weight if freq == MONTHLY else s.min_child_weight_weekly,
        reg_lambda=s.reg_lambda,
        random_state=s.random_state,
        n_jobs=1,
    )


def holdout_periods(freq: str, s: ImpactSettings) -> int:
    """How many of a commodity's last periods are held out to measure its model."""
    return s.holdout_months if freq == MONTHLY else s.holdout_weeks


def holdout_metrics(rows: pd.DataFrame, held: pd.Series, s: ImpactSettings) -> dict[str, float]:
    """Fit on the earlier periods, score the held-out ones: R² of the change, its mean absolute
    error beside that of "no change" (predicting 0), and the MAPE of the price it implies
    (previous price × predicted change) beside the naive (no change) MAPE."""
    test = rows[held]
    predicted = CommodityModel.fit(rows[~held], s).predict(test)
    implied = test["previous_price"] * np.exp(predicted / 100)
    return {
        "r2": float(r2_score(test["change"], predicted)),
        "mae": float(np.mean(np.abs(test["change"] - predicted))),
        "naive_mae": float(np.mean(np.abs(test["change"]))),
        "mape": float(np.mean(np.abs(implied / test["price"] - 1)) * 100),
        "naive_mape": float(np.mean(np.abs(test["previous_price"] / test["price"] - 1)) * 100),
        "test_rows": float(len(test)),
        "train_rows": float((~held).sum()),
    }


def _unavailable(
    rows: pd.DataFrame, commodity: str, inputs: ImpactInputs, without: set[str]
) -> dict[str, str]:
    """The families with no value for any of ``rows``, with the reason."""
    out = {}
    for family in FAMILY_SPECS:
        if rows.loc[:, list(family.features)].notna().to_numpy().any():
            continue
        if family.name in without:
            out[family.name] = "left out of this fit"
        elif family.source in inputs.gold:
            out[family.name] = f"{family.source} has no rows for {commodity}"
        elif family.source:
            out[family.name] = inputs.absent.get(
                family.source, f"{family.source} is read by ./run.sh retrain, not at first start"
            )
        else:
            out[family.name] = f"no {family.name} data for {commodity}"
    return out


def _holdout_split(rows: pd.DataFrame, commodity: str, s: ImpactSettings) -> tuple[pd.Series, str]:
    """Which rows are held out (those of the last periods), and why the commodity gets no model
    (empty when it has enough rows before them)."""
    freq = resolution(commodity, s)
    unit, n = RESOLUTION_NAMES[freq], holdout_periods(freq, s)
    held = rows["start"].isin(sorted(rows["start"].unique())[-n:])
    train = int((~held).sum())
    if train >= s.min_rows:
        return held, ""
    return held, (
        f"it has {len(rows)} {unit}ly price changes, {train} of them before the {n} held-out "
        f"{unit}s, and needs {s.min_rows} there (impact.min_rows)"
    )


def fit_impact_model(
    inputs: ImpactInputs, settings: Settings, without: Iterable[str] = ()
) -> ImpactModel:
    """Fit one model per commodity with enough history; measure it on the held-out last periods
    (``impact.holdout_months`` / ``holdout_weeks``: ``ImpactModel.metrics``), then refit on every
    period for serving. ``without``: families left out (to measure what one adds). Deterministic
    for the same inputs and settings."""
    s = settings.impact
    left_out = set(without)
    design = build_design(inputs, s, conf_of(settings).markets, left_out)
    models, metrics, skipped = {}, {}, {}
    pooled = []
    commodities = sorted(design["commodity"].unique())
    for commodity in tqdm(commodities, desc="impact models", unit="commodity", disable=None):
        rows = design[(design["commodity"] == commodity) & design["change"].notna()]
        held, why_not = _holdout_split(rows, commodity, s)
        if why_not:
            skipped[commodity] = why_not
            continue
        unavailable = _unavailable(rows, commodity, inputs, left_out)
        metrics[commodity] = holdout_metrics(rows, held, s)
        pooled.append(metrics[commodity])
        models[commodity] = CommodityModel.fit(rows, s, unavailable)
        log.info("impact model fitted", extra={"commodity": commodity, **metrics[commodity]})
    if pooled:
        weights = np.array([m["test_rows"] for m in pooled])
        metrics["overall"] = {
            k: float(np.average([m[k] for m in pooled], weights=weights))
            for k in ("r2", "mape", "naive_mape")
        } | {"test_rows": float(weights.sum())}
    return ImpactModel(models, design, metrics, model_params(settings), skipped)


def family_gain(
    inputs: ImpactInputs, settings: Settings, family: str, full: ImpactModel | None = None
) -> dict[str, dict[str, float]]:
    """What one family adds, per commodity where it has data: the hold-out R² and MAE of the
    model with every family (``full``, fitted here when not given) and of the same model
    without ``family``, on the same held-out periods."""
    full = full or fit_impact_model(inputs, settings)
    without = fit_impact_model(inputs, settings, without=[family])
    return {
        commodity: {
            "r2": full.metrics[commodity]["r2"],
            "r2_without": without.metrics[commodity]["r2"],
            "mae": full.metrics[commodity]["mae"],
            "mae_without": without.metrics[commodity]["mae"],
        }
        for commodity, fitted in full.models.items()
        if family not in fitted.unavailable and commodity in without.metrics
    }


# --- explaining -------------------------------------------------------------------------------


def _locations(
    model: ImpactModel,
    commodity: str,
    markets: dict[str, Market],
    market_id: str | None,
    region: str | None,
) -> list[str]:
    known = set(model.design.loc[model.design["commodity"] == commodity, "location"])
    if (market_id is None) == (region is None):
        raise InputError("give either a market id or a region")
    if market_id is not None:
        if market_id in known:
            return [market_id]
        market = markets.get(market_id)
        if market is None:
            raise InputError(f"unknown market {market_id!r} (see markets.csv)")
        place = next((n for n in (market.city, market.province) if n in known), None)
        if place is None:
            raise InputError(
                f"no {commodity} data for market {market_id} ({market.city}, {market.province})"
            )
        return [place]
    if region in known:
        return [region]
    in_region = sorted(m for m in known if m in markets and markets[m].province == region)
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


def _no_model(model: ImpactModel, commodity: str, conf: Conf) -> NoImpactModel:
    """Why ``commodity`` has no model: how much history it has and needs, when ``conf``'s
    catalogue knows it."""
    why = model.skipped.get(commodity)
    if why is None and commodity in conf.commodities:
        s = model.params
        why = (
            f"it has 0 price changes in the data the model was fitted on, and needs "
            f"{s['min_rows']} besides the held-out periods (impact.min_rows)"
        )
    known = ", ".join(sorted(model.models))
    return NoImpactModel(
        f"no impact model for commodity {commodity!r}"
        + (f": {why}" if why else "")
        + f"; known: {known}"
    )


def holdout_fit(model: ImpactModel, commodity: str, min_explained_r2: float) -> ImpactFit:
    """``commodity``'s hold-out fit (``ImpactModel.metrics``), judged against
    ``min_explained_r2``."""
    m = model.metrics[commodity]
    return ImpactFit(
        r2=round(m["r2"], 4),
        mape=round(m["mape"], 4),
        naive_mape=round(m["naive_mape"], 4),
        held_out_rows=int(m["test_rows"]),
        min_r2=min_explained_r2,
    )


def explain(
    model: ImpactModel,
    commodity: str,
    date: Date | str,
    conf: Conf,
    *,
    market_id: str | None = None,
    region: str | None = None,
    min_explained_r2: float,
) -> ImpactResult:
    """Explain the change of the period (month, or week for commodities known from daily closes)
    containing ``date`` vs the period before, for one market of ``conf`` (or the panel
    city/province it lies in) or one region; raises ``NoImpactModel`` for a commodity without a
    model and ``InputError`` with a readable message for an unknown market or region, or a date
    outside the data. ``min_explained_r2`` (``impact.min_explained_r2``): the hold-out R² the
    commodity's model needs for the answer to name a dominant factor."""
    if commodity not in model.models:
        raise _no_model(model, commodity, conf)
    d = model.design
    series = d[d["commodity"] == commodity]
    freq = series["resolution"].iloc[0]
    try:
        start = pd.Period(pd.Timestamp(date), freq=freq).start_time
    except ValueError:
        raise InputError(f"not a date: {date!r}") from None
    locations = _locations(model, commodity, conf.markets, market_id, region)
    series = series[series["location"].isin(locations)]
    rows = series[(series["start"] == start) & series["change"].notna()]
    if rows.empty:
        with_change = series.loc[series["change"].notna(), "start"]
        raise InputError(
            f"{period_label(start, freq)} is outside the {commodity} data of "
            f"{', '.join(locations)} ({period_label(with_change.min(), freq)} … "
            f"{period_label(with_change.max(), freq)})"
        )
    fitted = model.models[commodity]
    per_feature, bias = fitted.contributions(rows)
    by_feature = dict(zip(FEATURES, per_feature.mean(axis=0), strict=True))
    families = {f: float(sum(by_feature[x] for x in names)) for f, names in FAMILIES.items()}
    available = {f: abs(v) for f, v in families.items() if f not in fitted.unavailable}
    weights = dict.fromkeys(FAMILIES, 0) | _whole_percent(available)
    fit = holdout_fit(model, commodity, min_explained_r2)
    dominant = None
    if fit.verdict == "explained":
        dominant = max(available, key=lambda f: (weights[f], abs(families[f])))

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
        month=str(pd.Period(start, freq="M")),
        resolution=RESOLUTION_NAMES[freq],
        period=period_label(start, freq),
        price=round(price, 2),
        previous_price=round(previous, 2),
        price_change=round(price - previous, 2),
        price_change_pct=round(100 * (price / previous - 1), 3),
        explained_change_pct=round(explained, 3),
        impact_score=round(100 * share * magnitude, 1),
        status=fit.verdict,
        dominant_factor=dominant,
        fit=fit,
        message=verdict_message(fit, dominant, "id"),
        factors_with_weights=weights,
        contributions={f: round(v, 4) for f, v in families.items()},
        unavailable_factors=dict(fitted.unavailable),
    )
