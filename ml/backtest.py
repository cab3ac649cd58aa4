"""Rolling-origin backtest with per-series model selection.

For each series: origins every ``horizon`` days, the last one ``horizon`` days before the last
observation (expanding window: each model is fitted on everything up to the origin, then
forecasts 1..horizon days). Forecasts are scored only on days that were really observed.
The first ``selection_origins`` origins only select; every model is scored on the later ones,
next to the pseudo-model ``selected``, which at each scored origin uses the model that
``ml.selection``'s rule (naive unless a rival beats it significantly) chose on the origins
before it (whose targets all lie at or before that origin). The model served for a series is
the one the same rule chooses on all origins (``select``), per series or pooled per commodity.

Series too short for ``min_history_days`` get the naive fallback (backtested if at least
``2 × horizon`` days, so their numbers still show) and a note saying so.

The global models (``ml.global_model``) are fitted once per origin across all series before
the per-series loop (``global_points_for``); every forecast carries the surge probability of
its model at its origin (``ml.models.surge_probability``), scored by ``surge_scores``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from tqdm import tqdm

from lakehouse.config.settings import MlSettings, SelectionSettings
from ml.models import (
    FALLBACK,
    GLOBAL_MODELS,
    INTERVAL_COLUMNS,
    StatsForecastModel,
    configured_model,
    conformal_bands,
    recent_volatility,
    surge_probabilities,
)
from ml.selection import (
    NO_RIVAL,
    Choice,
    choices_by_origin,
    choose,
    groups_of,
    origin_losses,
)
from ml.series import regular
from ml.surge_model import backtest_warnings, surge_frame

if TYPE_CHECKING:
    from ml.exogenous import ExogSources

SELECTED = "selected"
BAND_KEYS = dict(zip(("lo80", "hi80", "lo95", "hi95"), INTERVAL_COLUMNS, strict=True))
COVERAGES = (0.8, 0.95)  # of the bands, in INTERVAL_COLUMNS order
CONFORMAL_MIN_ORIGINS = 3  # earlier origins' errors needed before a model's bands are conformal
T = TypeVar("T")
METRICS = ("mape", "smape", "mase", "coverage80", "coverage95")
WARN_AT = 0.5  # surge_prob at or above which a surge counts as warned (recall/precision)
GlobalPoints = Mapping[pd.Timestamp, np.ndarray]  # origin → the global model's points


@dataclass
class SeriesBacktest:
    """The backtest of one series: every forecast made at every origin, and the choice."""

    series_id: str
    # model, origin, target_date, horizon, y, yhat, bands, scale, last (the price at the
    # origin), vol (recent volatility there), surge_prob (of the model at the origin), scored
    forecasts: pd.DataFrame
    selected: str
    note: str = ""
    seconds: dict[str, float] = field(default_factory=dict)  # fit+predict CPU s per model
    surge_rise: float = 0.1  # ml.surge_rise of the run
    reason: str = ""  # why ``selected`` serves (``ml.selection``): served_because

    def metrics(self) -> dict[str, dict[str, Any]]:
        return metrics_by_model(self.forecasts[self.forecasts["scored"]], self.surge_rise)


def served_origins(forecasts: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    """Per series (``series`` column) of backtest rows, the served (``selected``) forecast at
    every scored origin, as lists over horizons 1..H (null where the target day was not
    observed): what ``summary`` writes per series, from which MAPE, coverage and surge
    recall/precision can be recomputed. All series at once: one reshape, not a loop."""
    f = forecasts[forecasts["model"] == SELECTED]
    if f.empty:
        return {}
    f = f.assign(warn_at=f.get("warn_at", np.nan))
    columns = ["y", "yhat", *BAND_KEYS.values()]
    every = pd.MultiIndex.from_product([columns, range(1, int(f["horizon"].max()) + 1)])
    wide = f.set_index(["series", "origin", "horizon"])[columns].unstack("horizon")
    wide = wide.reindex(columns=every).sort_index()
    first = f.groupby(["series", "origin"]).agg(
        last=("last", "first"),
        surge_prob=("surge_prob", "first"),
        warn_at=("warn_at", "first"),
        h=("horizon", "max"),
    )
    series_h = first.groupby(level="series")["h"].transform("max").to_numpy()
    lists = {  # column → per origin the values over horizons 1..H of its series
        column: [
            [None if np.isnan(v) else float(v) for v in row[:h]]
            for row, h in zip(wide[column].to_numpy(dtype=float), series_h, strict=True)
        ]
        for column in columns
    }
    out: dict[str, list[dict[str, Any]]] = {}
    for i, ((sid, origin), at) in enumerate(first.iterrows()):
        out.setdefault(str(sid), []).append(
            {
                "origin": pd.Timestamp(origin).date().isoformat(),
                "last": float(at["last"]),
                "actual": lists["y"][i],
                "point": lists["yhat"][i],
                **{key: lists[column][i] for key, column in BAND_KEYS.items()},
                "surge_prob": float(at["surge_prob"]),
                "warn_at": _warn_at(at["warn_at"]),
            }
        )
    return out


def _warn_at(at: float) -> float | None:
    """The threshold an origin's ``surge_prob`` was warned at (``surge_scores``) from its
    ``warn_at``: the surge classifier's, None when none was reached (inf: never warned),
    ``WARN_AT`` where no classifier gave it (NaN)."""
    if pd.isna(at):
        return WARN_AT
    return None if np.isinf(at) else float(at)


def origins_for(days: pd.DatetimeIndex, ml: MlSettings, min_history: int) -> pd.DatetimeIndex:
    """Up to ``ml.origins`` origins, one every ``ml.horizon`` days, ending ``ml.horizon`` days
    before the last day, each with at least ``min_history`` days up to it."""
    last = days[-1] - pd.Timedelta(days=ml.horizon)
    wanted = pd.DatetimeIndex(
        [last - pd.Timedelta(days=ml.horizon * k) for k in reversed(range(ml.origins))]
    )
    earliest = days[0] + pd.Timedelta(days=min_history - 1)
    return wanted[wanted >= earliest]


def metrics_table(
    forecasts: pd.DataFrame, by: list[str], rise: float | None = None
) -> pd.DataFrame:
    """Per group of the ``by`` columns (in order of first appearance), at once: MAPE and sMAPE
    (%), MASE (error over the origin's in-sample one-day naive error) and the share of actuals
    inside the 80 %/95 % intervals; given the surge ``rise``, also the surge warnings' counts,
    recall and precision (``surge_scores``)."""
    y, yhat = forecasts["y"].astype(float), forecasts["yhat"].astype(float)
    error = (y - yhat).abs()
    lo80, hi80, lo95, hi95 = (forecasts[c] for c in INTERVAL_COLUMNS)
    table = (
        pd.DataFrame(
            {
                "mape": error / y.abs() * 100,
                "smape": 2 * error / (y.abs() + yhat.abs()) * 100,
                "mase": error / forecasts["scale"].astype(float),
                "coverage80": y.between(lo80, hi80).astype(float),
                "coverage95": y.between(lo95, hi95).astype(float),
            }
        )
        .groupby([forecasts[k] for k in by], sort=False)
        .mean()
    )
    return table if rise is None else table.join(_surge_counts(forecasts, by, rise))


def _surge_counts(forecasts: pd.DataFrame, by: list[str], rise: float) -> pd.DataFrame:
    """``surge_scores`` per group of the ``by`` columns (one row when ``by`` is empty)."""
    keys = list(dict.fromkeys([*by, *(k for k in ("series", "origin") if k in forecasts)]))
    per_origin = (
        forecasts.assign(warn_at=forecasts.get("warn_at", np.nan))
        .groupby(keys, sort=False)
        .agg(
            peak=("y", "max"),
            last=("last", "first"),
            prob=("surge_prob", "first"),
            warn_at=("warn_at", "first"),
        )
    )
    came = per_origin["peak"] >= (1 + rise) * per_origin["last"]
    warned = per_origin["prob"] >= per_origin["warn_at"].fillna(WARN_AT)
    flags = pd.DataFrame({"surges": came, "warnings": warned, "hits": came & warned})
    counts = flags.groupby(level=by, sort=False).sum() if by else flags.sum().to_frame().T
    return counts.assign(
        surge_recall=counts["hits"] / counts["surges"].where(counts["surges"] > 0),
        surge_precision=counts["hits"] / counts["warnings"].where(counts["warnings"] > 0),
    ).drop(columns="hits")


def metrics_by_model(
    forecasts: pd.DataFrame, rise: float | None = None
) -> dict[str, dict[str, Any]]:
    """``metrics_table`` per model, as plain values (``_metric_values``)."""
    table = metrics_table(forecasts, ["model"], rise)
    return {str(model): _metric_values(row) for model, row in table.iterrows()}


def metrics_by_series(results: list[SeriesBacktest]) -> dict[str, dict[str, dict[str, Any]]]:
    """``SeriesBacktest.metrics`` of every series at once (series without a scored forecast
    left out)."""
    return _per_series_metrics(scored_rows(results), results[0].surge_rise if results else None)


def scored_rows(results: list[SeriesBacktest]) -> pd.DataFrame:
    """The scored forecasts of every backtest, each with its ``series``."""
    scored = [
        f.assign(series=r.series_id)
        for r in results
        if len(f := r.forecasts[r.forecasts["scored"]])
    ]
    return pd.concat(scored, ignore_index=True) if scored else pd.DataFrame()


def _per_series_metrics(
    rows: pd.DataFrame, rise: float | None
) -> dict[str, dict[str, dict[str, Any]]]:
    """``metrics_table`` per series and model of ``scored_rows``, as plain values."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    if rows.empty:
        return out
    for (sid, model), row in metrics_table(rows, ["series", "model"], rise).iterrows():
        out.setdefault(str(sid), {})[str(model)] = _metric_values(row)
    return out


def _metric_values(row: pd.Series) -> dict[str, Any]:
    """A ``metrics_table`` row as plain values: the ``METRICS`` as float (NaN where
    undefined), the surge counts as int, their recall and precision None where undefined."""
    return {
        k: float(v) if k in METRICS else int(v) if k in ("surges", "warnings") else _ratio(v)
        for k, v in row.items()
    }


def _ratio(value: float) -> float | None:
    """A recall or precision: None where undefined (NaN)."""
    return None if pd.isna(value) else float(value)


def surge_scores(forecasts: pd.DataFrame, rise: float) -> dict[str, float | int | None]:
    """Per forecast origin (of a series: ``series`` and ``origin`` columns), whether a surge
    came — an observed price within the horizon ≥ (1 + ``rise``) × the price at the origin —
    and whether it was warned (``surge_prob`` ≥ the row's ``warn_at``, the surge classifier's
    threshold where it gave the probability — ``ml.surge_model`` — else ``WARN_AT``): the
    counts, recall and precision (None when undefined: no surge, no warning)."""
    return _metric_values(_surge_counts(forecasts, [], rise).iloc[0])


def residual_quantiles(forecasts: pd.DataFrame, horizon: int) -> np.ndarray | None:
    """The conformal band of earlier backtest forecasts (rows with horizon, y, yhat), in
    ``QUANTILES`` order: ±s₈₀ and ±s₉₅ around log yhat, per √horizon. Split conformal with the
    absolute scaled log error |log(y / yhat)| / √horizon as the score, pooled over horizons, and
    its finite-sample rank: s_c is the ⌈(n + 1)·c⌉-th smallest of the n scores (the largest when
    n is small). None when there are fewer than ``CONFORMAL_MIN_ORIGINS`` origins' worth.

    Locally adaptive: each error is divided by the recent volatility at its origin (``vol``,
    ``ml.models.recent_volatility``), and the band is multiplied by the volatility at the
    origin it is used for — so the band widens as soon as a surge makes prices jumpy, instead
    of waiting for the surge's errors to dominate the score sample.

    Symmetric on purpose: a tail quantile of its own from ~20–300 signed errors follows the last
    few surges; one scale for both tails is what the coverage guarantee is about."""
    return _score_quantiles(_scores(forecasts), horizon)


def _scores(forecasts: pd.DataFrame) -> np.ndarray:
    """Each forecast row's conformal score (``residual_quantiles``)."""
    scale = forecasts["vol"].to_numpy(dtype=float) * np.sqrt(forecasts["horizon"].to_numpy())
    y, yhat = forecasts["y"].to_numpy(dtype=float), forecasts["yhat"].to_numpy(dtype=float)
    return np.abs(np.log(y / yhat) / scale)


def _score_quantiles(scores: np.ndarray, horizon: int) -> np.ndarray | None:
    """``residual_quantiles`` of these ``_scores``."""
    if len(scores) < CONFORMAL_MIN_ORIGINS * horizon:
        return None
    ordered = np.sort(scores)
    n = len(ordered)
    ranks = np.minimum(np.ceil((n + 1) * np.array(COVERAGES)).astype(int), n) - 1
    s80, s95 = ordered[ranks]
    return np.array([-s80, s80, -s95, s95])


def _conformal(forecasts: pd.DataFrame, horizon: int) -> pd.DataFrame:
    """Every model's bands at each origin recalibrated on its own errors at earlier origins
    (targets at or before the origin: what was known then); native bands until enough."""
    if forecasts.empty:
        return forecasts
    scores = _scores(forecasts)
    model = forecasts["model"].to_numpy()
    origin = forecasts["origin"].to_numpy()
    target = forecasts["target_date"].to_numpy()
    yhat = forecasts["yhat"].to_numpy(dtype=float)
    steps = forecasts["horizon"].to_numpy()
    vol = forecasts["vol"].to_numpy(dtype=float)
    bands = forecasts[INTERVAL_COLUMNS].to_numpy(dtype=float)
    for m, o in dict.fromkeys(zip(model, origin, strict=True)):
        known = (model == m) & (origin < o) & (target <= o)
        quantiles = _score_quantiles(scores[known], horizon)
        if quantiles is not None:
            now = np.flatnonzero((model == m) & (origin == o))
            bands[now] = conformal_bands(yhat[now], steps[now], quantiles * vol[now[0]])
    return forecasts.assign(**dict(zip(INTERVAL_COLUMNS, bands.T, strict=True)))


def _selected_rows(result: SeriesBacktest, per_origin: Mapping[Any, Choice]) -> pd.DataFrame:
    """The ``selected`` rows of a series: at each scored origin the forecast of the model
    chosen there (naive where that model did not forecast this series at that origin)."""
    f = result.forecasts
    f = f[(f["model"] != SELECTED) & f["scored"]]
    made = set(zip(f["origin"], f["model"], strict=True))
    chosen = {o: (c.model if (o, c.model) in made else FALLBACK) for o, c in per_origin.items()}
    choice = f["origin"].map(chosen).astype(object)
    rows = f[f["model"] == choice].sort_values("origin", kind="stable")
    return rows.assign(model=SELECTED, chosen=choice[rows.index]).reset_index(drop=True)


def select(
    results: list[SeriesBacktest],
    candidates: list[str],
    sel: SelectionSettings,
    groups: Mapping[str, str] | None = None,
) -> list[SeriesBacktest]:
    """Choose the served model of every series by ``ml.selection`` (the rule of
    ``ml.selection``), the series of a group (``groups``: series id → group; default: each
    series alone) pooled; set each result's ``selected``, ``reason`` and its ``selected`` rows
    (at each scored origin, the choice made on the group's earlier origins). Returns
    ``results``."""
    members: dict[str, list[SeriesBacktest]] = {}
    for r in results:
        members.setdefault(groups[r.series_id] if groups else r.series_id, []).append(r)
    for group in members.values():
        f = pd.concat([r.forecasts for r in group], ignore_index=True)
        scored = sorted(f.loc[f["scored"], "origin"].unique())
        if set(f["model"]) & set(candidates) - {FALLBACK}:
            losses = origin_losses(f[f["model"].isin(candidates)])
            served = choose(losses, candidates, sel)
            per_origin = choices_by_origin(losses, candidates, sel, scored)
        else:  # naive alone (a series too short to model): nothing to test
            served = Choice(FALLBACK, NO_RIVAL)
            per_origin = dict.fromkeys(scored, served)
        for r in group:
            own = r.forecasts[r.forecasts["model"] != SELECTED]
            r.forecasts = pd.concat(
                [own, _selected_rows(r, per_origin).assign(scored=True)], ignore_index=True
            )
            if r.note:  # too short to model: the naive fallback
                r.selected, r.reason = FALLBACK, f"naive: {r.note}"
            elif served.model == FALLBACK or (own["model"] == served.model).any():
                r.selected, r.reason = served.model, served.reason
            else:
                r.selected, r.reason = FALLBACK, f"naive: no {served.model} forecast of it"
    return results


@dataclass(frozen=True)
class SeriesPlan:
    """What a series' backtest runs: the models, the candidates, the origins and a note."""

    models: list[str]
    candidates: list[str]
    origins: pd.DatetimeIndex
    note: str = ""


def plan_series(
    y: pd.Series, models: list[str], ml: MlSettings, candidates: list[str] | None = None
) -> SeriesPlan:
    """The plan of ``backtest_series`` for ``y``: series too short for ``ml.min_history_days``
    get the naive fallback only (backtested from ``2 × horizon`` days)."""
    models = list(dict.fromkeys([FALLBACK, *models]))
    candidates = list(dict.fromkeys([FALLBACK, *(candidates or models)]))
    days = regular(y)[0].index
    origins = origins_for(days, ml, ml.min_history_days)
    if len(origins) == 0:
        origins = origins_for(days, ml, 2 * ml.horizon)
        note = f"too short to model ({len(days)} days < {ml.min_history_days}): naive fallback"
        if len(origins) == 0:
            note += ", too short to backtest"
        return SeriesPlan([FALLBACK], [FALLBACK], origins, note)
    return SeriesPlan(models, candidates, origins)


def _surge_probs(forecasts: pd.DataFrame, rise: float) -> np.ndarray:
    """``surge_prob`` of every row: that of its model's forecast at its origin (the rows of
    each in horizon order; ``surge_probabilities``)."""
    if forecasts.empty:
        return np.full(0, np.nan)
    of = forecasts.groupby(["model", "origin"], sort=False).ngroup().to_numpy()
    rows = pd.Series(np.arange(len(forecasts))).groupby(of)
    first, end = rows.min().to_numpy(), rows.max().to_numpy()
    yhat = forecasts["yhat"].to_numpy(dtype=float)
    peak = pd.Series(yhat).groupby(of).max().to_numpy()
    band = [forecasts[c].to_numpy(dtype=float)[end] for c in INTERVAL_COLUMNS[:2]]
    last = forecasts["last"].to_numpy(dtype=float)[first]
    return surge_probabilities(last, yhat[end], *band, peak, rise)[of]


def backtest_series(
    series_id: str,
    y: pd.Series,
    models: list[str],
    ml: MlSettings,
    candidates: list[str] | None = None,
    global_points: GlobalPoints | None = None,
) -> SeriesBacktest:
    """Backtest ``models`` on one series (values indexed by date; gaps and duplicate days are
    fine); ``candidates`` (default: all of ``models``) are those that may be selected — the
    naive fallback always runs and may be. The global models (``GLOBAL_MODELS``) take their
    points from ``global_points`` (``ml.global_model.global_backtest``) and are left out at an
    origin without. Pure apart from the model fits."""
    plan = plan_series(y, models, ml, candidates)
    models, candidates, origins = plan.models, plan.candidates, plan.origins
    filled, observed = regular(y)
    actual = filled.where(observed)
    parts, seconds = [], dict.fromkeys(models, 0.0)
    made: dict[str, list] = {"model": [], "origin": [], "last": [], "vol": [], "scale": []}
    kept: dict[str, StatsForecastModel] = {}  # fitted at an earlier origin, advanced since
    for i, origin in enumerate(origins):
        history = filled.loc[:origin]
        scale = history.diff().abs().mean()
        at_origin = {
            "origin": origin,
            "last": history.iloc[-1],
            "vol": recent_volatility(history),
            "scale": scale if scale > 0 else np.nan,
        }
        for name in models:
            began = time.process_time()
            if name in kept and i % ml.fit_every_origins:
                forecast = kept[name].advance(history)
            else:
                forecast = configured_model(name, ml)
                if name in GLOBAL_MODELS:
                    forecast.global_points = (global_points or {}).get(origin)
                    if forecast.global_points is None:
                        continue
                forecast.fit(history)
                if isinstance(forecast, StatsForecastModel):
                    kept[name] = forecast
            parts.append(forecast.predict())
            seconds[name] += time.process_time() - began
            for key, value in {"model": name, **at_origin}.items():
                made[key] += [value] * len(parts[-1])
    columns = ["model", "origin", "target_date", "horizon", "y", "yhat", *INTERVAL_COLUMNS]
    if parts:  # each forecast with its model, origin and the actual prices it is scored on
        forecasts = pd.concat(parts).reset_index()
        targets = pd.DatetimeIndex(forecasts["target_date"])
        y = actual.reindex(targets).to_numpy()
        forecasts = forecasts.assign(model=made.pop("model"), y=y, **made).dropna(subset=["y"])
    else:
        forecasts = pd.DataFrame(columns=[*columns, "scale", "last", "vol"])
    forecasts = _conformal(forecasts, ml.horizon)
    forecasts["surge_prob"] = _surge_probs(forecasts, ml.surge_rise)
    warm_up = ml.selection_origins if len(origins) > ml.selection_origins else 0
    scored_origins = sorted(forecasts["origin"].unique())[warm_up:]
    forecasts["scored"] = forecasts["origin"].isin(scored_origins)
    forecasts["series"] = series_id
    result = SeriesBacktest(series_id, forecasts, FALLBACK, plan.note, seconds, ml.surge_rise)
    return select([result], candidates, ml.selection)[0]


def global_points_for(
    series: pd.DataFrame,
    models: list[str],
    ml: MlSettings,
    candidates: list[str] | None = None,
    sources: ExogSources | None = None,
) -> dict[str, dict[pd.Timestamp, np.ndarray]] | None:
    """The global model's backtest points of every series at its origins (``plan_series``),
    or None when no global model is among ``models`` or no series is long enough for one (the
    first start's seeded weeks: every series naive, nothing to fit). ``sources``: of its
    exogenous features (``ml.exogenous``; None: none)."""
    if not set(models) & set(GLOBAL_MODELS):
        return None
    from ml.global_model import global_backtest

    origins = {
        sid: plan.origins
        for sid, g in series.groupby("series_id", sort=True)
        if set((plan := plan_series(g.set_index("date")["y"], models, ml, candidates)).models)
        & set(GLOBAL_MODELS)
    }
    return global_backtest(series, origins, ml, sources) if origins else None


def per_series(
    fn: Callable[..., T],
    series: pd.DataFrame,
    n_jobs: int,
    desc: str,
    *args: Any,
    per_id: Mapping[str, Any] | None = None,
) -> Iterator[T]:
    """``fn(series_id, y, *args)`` for every series of a ``SERIES_COLUMNS`` frame, in series
    order, across ``n_jobs`` worker processes with a progress bar — with ``per_id``, also
    ``per_id.get(series_id)`` as the last argument. Processes, not threads: Prophet (CmdStan)
    and the pandas feature code are single-threaded per series, so one series per core is what
    uses a small box fully (XGBoost runs with ``n_jobs=1`` inside)."""
    groups = [(sid, g.set_index("date")["y"]) for sid, g in series.groupby("series_id", sort=True)]
    extra = (lambda sid: (per_id.get(sid),)) if per_id is not None else (lambda sid: ())
    tasks = (delayed(fn)(sid, y, *args, *extra(sid)) for sid, y in groups)
    runner = Parallel(n_jobs=max(1, min(n_jobs, len(groups))), return_as="generator")
    yield from tqdm(runner(tasks), total=len(groups), desc=desc, unit="series", disable=None)


def run_backtests(
    series: pd.DataFrame,
    models: list[str],
    ml: MlSettings,
    candidates: list[str] | None = None,
    sources: ExogSources | None = None,
    centroids: Mapping[str, tuple[float, float]] | None = None,
) -> list[SeriesBacktest]:
    """Backtest every series of a ``SERIES_COLUMNS`` frame (see ``per_series``) and choose
    their served models (``select``, pooled per ``ml.selection.level``); the global models
    are fitted first, across all series, at every origin (with the exogenous features of
    ``sources``). The served rows' ``surge_prob`` is then the surge classifier's where it is
    trained (``apply_surge_model``; ``centroids``: of the provinces, for the
    neighbours' moves)."""
    results = _backtests(series, models, ml, candidates, sources)
    apply_surge_model(results, series, ml, centroids)
    return results


def _backtests(
    series: pd.DataFrame,
    models: list[str],
    ml: MlSettings,
    candidates: list[str] | None,
    sources: ExogSources | None,
) -> list[SeriesBacktest]:
    """``run_backtests`` before the surge classifier."""
    points = global_points_for(series, models, ml, candidates, sources)
    results = list(
        per_series(
            backtest_series, series, ml.n_jobs, "backtest", models, ml, candidates, per_id=points
        )
    )
    if ml.selection.level == "series":  # backtest_series chose already
        return results
    pool = list(dict.fromkeys([FALLBACK, *(candidates or models)]))
    return select(results, pool, ml.selection, groups_of(series, ml.selection))


def apply_surge_model(
    results: list[SeriesBacktest],
    series: pd.DataFrame,
    ml: MlSettings,
    centroids: Mapping[str, tuple[float, float]] | None = None,
) -> None:
    """Give the served (``selected``) rows of every backtest the classifier's warning at each
    scored origin where one was fitted: ``surge_prob`` (calibrated), ``warn_at`` and
    ``surge_because``; the first-passage probability stays in ``surge_prob_raw``. Rows without
    a classifier keep the raw probability (``warn_at`` NaN: ``ml.backtest.WARN_AT``)."""
    if not ml.surge_model.enabled or not results:
        return
    origins = {
        o
        for r in results
        for o in r.forecasts.loc[r.forecasts["model"] == SELECTED, "origin"].unique()
    }
    warnings = (
        backtest_warnings(surge_frame(series, ml, centroids), sorted(origins), ml)
        if origins
        else {}
    )
    for r in results:
        f = r.forecasts.assign(
            surge_prob_raw=r.forecasts["surge_prob"], warn_at=np.nan, surge_because=""
        )
        served = f.index[f["model"] == SELECTED]
        for i in served:
            w = warnings.get((r.series_id, f.at[i, "origin"]))
            if w is not None:
                f.at[i, "surge_prob"] = w.prob
                f.at[i, "warn_at"] = np.inf if w.warn_at is None else w.warn_at
                f.at[i, "surge_because"] = w.because
        r.forecasts = f


def summary(results: list[SeriesBacktest], ml: MlSettings) -> dict:
    """The backtest as the JSON document of ``./run.sh backtest --json``: overall metrics per
    model (pooled over every scored forecast of every series, with surge recall/precision at
    ``WARN_AT``), per series its metrics, choice and the served forecast at every scored
    origin (``served_origins``)."""
    pooled = scored_rows(results)
    metrics = _per_series_metrics(pooled, ml.surge_rise)
    origins = served_origins(pooled) if len(pooled) else {}
    series = []
    for r in results:
        entry: dict = {
            "series": r.series_id,
            "models": metrics.get(r.series_id, {}),
            "selected": r.selected,
            "served_because": r.reason,
        }
        if r.note:
            entry["note"] = r.note
        entry["origins"] = origins.get(r.series_id, [])
        series.append(entry)
    overall = metrics_by_model(pooled, ml.surge_rise) if len(pooled) else {}
    return {
        "overall": overall,
        "series": series,
        "horizon": ml.horizon,
        # warn_at: of the raw probability; each origin carries the one it was warned at
        "surge": {"rise": ml.surge_rise, "warn_at": WARN_AT},
    }


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
        suffix = f"served: {entry['served_because']}"
        block(entry["series"], entry["models"], suffix)
    block("OVERALL", doc["overall"])
    return "\n".join(lines)
