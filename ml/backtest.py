"""Rolling-origin backtest with per-series model selection.

For each series: origins every ``horizon`` days, the last one ``horizon`` days before the last
observation (expanding window: each model is fitted on everything up to the origin, then
forecasts 1..horizon days). Forecasts are scored only on days that were really observed.
The first ``selection_origins`` origins only select; every model is scored on the later ones,
next to the pseudo-model ``selected``, which at each scored origin uses the model with the
lowest MAPE on the origins before it (whose targets all lie at or before that origin).
The model served for a series is the one with the lowest MAPE over all origins.

Series too short for ``min_history_days`` get the naive fallback (backtested if at least
``2 × horizon`` days, so their numbers still show) and a note saying so.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from tqdm import tqdm

from lakehouse.settings import MlSettings
from ml.models import FALLBACK, INTERVAL_COLUMNS, conformal_bands, make_model
from ml.series import regular

SELECTED = "selected"
COVERAGES = (0.8, 0.95)  # of the bands, in INTERVAL_COLUMNS order
CONFORMAL_MIN_ORIGINS = 3  # earlier origins' errors needed before a model's bands are conformal
T = TypeVar("T")
METRICS = ("mape", "smape", "mase", "coverage80", "coverage95")


@dataclass
class SeriesBacktest:
    """The backtest of one series: every forecast made at every origin, and the choice."""

    series_id: str
    forecasts: pd.DataFrame  # model, origin, target_date, horizon, y, yhat, bands, scale, scored
    selected: str
    note: str = ""
    seconds: dict[str, float] = field(default_factory=dict)  # fit+predict CPU s per model

    def metrics(self) -> dict[str, dict[str, float]]:
        return metrics_by_model(self.forecasts[self.forecasts["scored"]])


def origins_for(days: pd.DatetimeIndex, ml: MlSettings, min_history: int) -> pd.DatetimeIndex:
    """Up to ``ml.origins`` origins, one every ``ml.horizon`` days, ending ``ml.horizon`` days
    before the last day, each with at least ``min_history`` days up to it."""
    last = days[-1] - pd.Timedelta(days=ml.horizon)
    wanted = pd.DatetimeIndex(
        [last - pd.Timedelta(days=ml.horizon * k) for k in reversed(range(ml.origins))]
    )
    earliest = days[0] + pd.Timedelta(days=min_history - 1)
    return wanted[wanted >= earliest]


def metrics_by_model(forecasts: pd.DataFrame) -> dict[str, dict[str, float]]:
    """MAPE and sMAPE (%), MASE (error over the origin's in-sample one-day naive error) and the
    share of actuals inside the 80 %/95 % intervals, per model."""
    out = {}
    for model, f in forecasts.groupby("model", sort=False):
        error = (f["y"] - f["yhat"]).abs()
        out[str(model)] = {
            "mape": float((error / f["y"].abs()).mean() * 100),
            "smape": float((2 * error / (f["y"].abs() + f["yhat"].abs())).mean() * 100),
            "mase": float((error / f["scale"]).mean()),
            "coverage80": float(f["y"].between(f["yhat_lower_80"], f["yhat_upper_80"]).mean()),
            "coverage95": float(f["y"].between(f["yhat_lower_95"], f["yhat_upper_95"]).mean()),
        }
    return out


def residual_quantiles(forecasts: pd.DataFrame, horizon: int) -> np.ndarray | None:
    """The conformal band of earlier backtest forecasts (rows with horizon, y, yhat), in
    ``QUANTILES`` order: ±s₈₀ and ±s₉₅ around log yhat, per √horizon. Split conformal with the
    absolute scaled log error |log(y / yhat)| / √horizon as the score, pooled over horizons, and
    its finite-sample rank: s_c is the ⌈(n + 1)·c⌉-th smallest of the n scores (the largest when
    n is small). None when there are fewer than ``CONFORMAL_MIN_ORIGINS`` origins' worth.

    Symmetric on purpose: a tail quantile of its own from ~20–300 signed errors follows the last
    few surges; one scale for both tails is what the coverage guarantee is about."""
    if len(forecasts) < CONFORMAL_MIN_ORIGINS * horizon:
        return None
    scores = np.abs(np.log(forecasts["y"] / forecasts["yhat"]) / np.sqrt(forecasts["horizon"]))
    ordered = np.sort(scores.to_numpy(dtype=float))
    n = len(ordered)
    ranks = np.minimum(np.ceil((n + 1) * np.array(COVERAGES)).astype(int), n) - 1
    s80, s95 = ordered[ranks]
    return np.array([-s80, s80, -s95, s95])


def with_conformal_bands(frame: pd.DataFrame, quantiles: np.ndarray) -> pd.DataFrame:
    """``frame`` (horizon, yhat, …) with its 80 %/95 % bands replaced by yhat · exp(q · √h)
    for the scaled-error quantiles of ``residual_quantiles``."""
    bands = conformal_bands(frame["yhat"].to_numpy(), frame["horizon"].to_numpy(), quantiles)
    return frame.assign(**dict(zip(INTERVAL_COLUMNS, bands.T, strict=True)))


def _conformal(forecasts: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Every model's bands at each origin recalibrated on its own errors at earlier origins
    (targets at or before the origin: what was known then); native bands until enough."""
    parts = []
    for (_, origin), now in forecasts.groupby(["model", "origin"], sort=False):
        model = now["model"].iloc[0]
        known = forecasts[
            (forecasts["model"] == model)
            & (forecasts["origin"] < origin)
            & (forecasts["target_date"] <= origin)
        ]
        quantiles = residual_quantiles(known, horizon)
        parts.append(now if quantiles is None else with_conformal_bands(now, quantiles))
    return pd.concat(parts).loc[forecasts.index] if parts else forecasts


def _mape(f: pd.DataFrame) -> float:
    return float(((f["y"] - f["yhat"]).abs() / f["y"]).mean())


@dataclass(frozen=True)
class Preference:
    """The model kept unless another candidate's MAPE is lower by more than ``margin`` (a
    share): the choice leaves the default only on clear evidence, not on noise."""

    model: str = FALLBACK
    margin: float = 0.0


def preference(ml: MlSettings, candidates: list[str]) -> Preference:
    """``ml.preferred_model`` with ``ml.selection_margin`` when it is a candidate, else naive."""
    if ml.preferred_model in candidates:
        return Preference(ml.preferred_model, ml.selection_margin)
    return Preference()


def _best(forecasts: pd.DataFrame, candidates: list[str], prefer: Preference) -> str:
    """The candidate with the lowest MAPE in ``forecasts`` unless the preferred model is within
    its margin (naive when there is no data)."""
    scores = {m: _mape(forecasts[forecasts["model"] == m]) for m in candidates}
    scores = {m: s for m, s in scores.items() if np.isfinite(s)}
    if not scores:
        return FALLBACK
    best = min(scores, key=lambda m: (scores[m], m != prefer.model, m != FALLBACK))
    if prefer.model in scores and scores[best] >= scores[prefer.model] * (1 - prefer.margin):
        return prefer.model
    return best


def _selected_rows(
    forecasts: pd.DataFrame,
    candidates: list[str],
    warm_up: int,
    prefer: Preference | None = None,
) -> pd.DataFrame:
    prefer = prefer or Preference()
    origins = sorted(forecasts["origin"].unique())
    rows = []
    for origin in origins[warm_up:]:
        earlier = forecasts[(forecasts["origin"] < origin) & (forecasts["target_date"] <= origin)]
        choice = _best(earlier, candidates, prefer)
        now = forecasts[(forecasts["origin"] == origin) & (forecasts["model"] == choice)]
        rows.append(now.assign(model=SELECTED, chosen=choice))
    return pd.concat(rows, ignore_index=True) if rows else forecasts.iloc[:0]


def backtest_series(
    series_id: str,
    y: pd.Series,
    models: list[str],
    ml: MlSettings,
    candidates: list[str] | None = None,
) -> SeriesBacktest:
    """Backtest ``models`` on one series (values indexed by date; gaps and duplicate days are
    fine); ``candidates`` (default: all of ``models``) are those that may be selected — the
    naive fallback always runs and may be. Pure apart from the model fits."""
    models = list(dict.fromkeys([FALLBACK, *models]))
    candidates = list(dict.fromkeys([FALLBACK, *(candidates or models)]))
    filled, observed = regular(y)
    days = filled.index
    note = ""
    origins = origins_for(days, ml, ml.min_history_days)
    if len(origins) == 0:
        models = candidates = [FALLBACK]
        origins = origins_for(days, ml, 2 * ml.horizon)
        note = f"too short to model ({len(days)} days < {ml.min_history_days}): naive fallback"
        if len(origins) == 0:
            note += ", too short to backtest"
    elif len(origins) <= ml.selection_origins:
        note = f"only {len(origins)} origins: scored as naive, served model chosen on all"
    parts, seconds = [], dict.fromkeys(models, 0.0)
    for origin in origins:
        history = filled.loc[:origin]
        scale = history.diff().abs().mean()
        actual = filled.where(observed)
        for name in models:
            began = time.process_time()
            forecast = make_model(name, ml.horizon, ml.seed, ml.calibration_days).fit(history)
            frame = forecast.predict()
            seconds[name] += time.process_time() - began
            frame = frame.reset_index().assign(
                model=name,
                origin=origin,
                y=actual.reindex(frame.index).to_numpy(),
                scale=scale if scale > 0 else np.nan,
            )
            parts.append(frame)
    columns = ["model", "origin", "target_date", "horizon", "y", "yhat", *INTERVAL_COLUMNS]
    forecasts = (
        pd.concat(parts, ignore_index=True).dropna(subset=["y"])
        if parts
        else pd.DataFrame(columns=[*columns, "scale"])
    )
    forecasts = _conformal(forecasts, ml.horizon)
    warm_up = ml.selection_origins if len(origins) > ml.selection_origins else 0
    scored_origins = sorted(forecasts["origin"].unique())[warm_up:]
    forecasts["scored"] = forecasts["origin"].isin(scored_origins)
    prefer = preference(ml, candidates)
    if warm_up:
        chosen = _selected_rows(forecasts, candidates, warm_up, prefer)
    else:  # nothing earlier to choose on: the fallback is what would be served
        chosen = forecasts[forecasts["model"] == FALLBACK].assign(model=SELECTED, chosen=FALLBACK)
    forecasts = pd.concat([forecasts, chosen.assign(scored=True)], ignore_index=True)
    selected = _best(forecasts[forecasts["model"] != SELECTED], candidates, prefer)
    return SeriesBacktest(series_id, forecasts, selected, note, seconds)


def per_series(
    fn: Callable[..., T], series: pd.DataFrame, n_jobs: int, desc: str, *args: Any
) -> Iterator[T]:
    """``fn(series_id, y, *args)`` for every series of a ``SERIES_COLUMNS`` frame, in series
    order, across ``n_jobs`` worker processes with a progress bar. Processes, not threads:
    Prophet (CmdStan) and the pandas feature code are single-threaded per series, so one series
    per core is what uses a small box fully (XGBoost runs with ``n_jobs=1`` inside)."""
    groups = [(sid, g.set_index("date")["y"]) for sid, g in series.groupby("series_id", sort=True)]
    tasks = (delayed(fn)(sid, y, *args) for sid, y in groups)
    runner = Parallel(n_jobs=max(1, min(n_jobs, len(groups))), return_as="generator")
    yield from tqdm(runner(tasks), total=len(groups), desc=desc, unit="series", disable=None)


def run_backtests(
    series: pd.DataFrame, models: list[str], ml: MlSettings, candidates: list[str] | None = None
) -> Iterator[SeriesBacktest]:
    """Backtest every series of a ``SERIES_COLUMNS`` frame (see ``per_series``)."""
    yield from per_series(backtest_series, series, ml.n_jobs, "backtest", models, ml, candidates)


def summary(results: list[SeriesBacktest], horizon: int) -> dict:
    """The backtest as the JSON document of ``./run.sh backtest --json``: overall metrics per
    model (pooled over every scored forecast of every series), per-series metrics, choices."""
    scored = [f for r in results if len(f := r.forecasts[r.forecasts["scored"]])]
    pooled = pd.concat(scored, ignore_index=True) if scored else pd.DataFrame()
    series = []
    for r in results:
        entry: dict = {"series": r.series_id, "models": r.metrics(), "selected": r.selected}
        if r.note:
            entry["note"] = r.note
        series.append(entry)
    overall = metrics_by_model(pooled) if len(pooled) else {}
    return {"overall": overall, "series": series, "horizon": horizon}


def table(doc: dict) -> str:
    """The summary as a plain-text table: one block per series, then overall."""
    header = f"{'series':<44} {'model':<16} " + " ".join(f"{m:>10}" for m in METRICS)
    lines = [header, "-" * len(header)]

    def block(name: str, models: dict, suffix: str = "") -> None:
        for model, values in models.items():
            cells = " ".join(f"{values[m]:>10.3f}" for m in METRICS)
            lines.append(f"{name:<44} {model:<16} {cells}")
            name = ""
        if suffix:
            lines.append(f"{'':<44} {suffix}")

    for entry in doc["series"]:
        suffix = f"served: {entry['selected']}" + (f" — {entry['note']}" if "note" in entry else "")
        block(entry["series"], entry["models"], suffix)
    block("OVERALL", doc["overall"])
    return "\n".join(lines)
