"""Forecast accuracy on a real daily price file (default: the PIHPS file in ``datasets/``):
each model's 7-day MAPE (and sMAPE, MASE, interval coverage) from the rolling-origin
backtest, next to the baselines measured in the same run — naive, seasonal naive and Prophet
with library defaults — and ``selected`` (the per-series choice among ``ml.models`` made on
earlier origins only, i.e. what is served), with the ratio to naive's MAPE and the surge
warnings' recall and precision at ``surge_prob`` ≥ 0.5. Then, per series, how often
``selected`` beat naive: over the scored origins, and over the whole series. Last,
other ways to choose or combine (pooled per commodity, median/mean of the best k, shrinkage
towards naive), each scored at the same origins on the same forecasts, from earlier ones only.

    ./run.sh bench forecast_accuracy [FILE] [--origins N] [--models a,b]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from lakehouse.catalog.conf import conf_of
from lakehouse.config.settings import SAMPLE_PRICES, load_settings
from ml.backtest import METRICS, SELECTED, SeriesBacktest, run_backtests, summary
from ml.models import BASELINES, MODELS, check_model_names, configured_models
from ml.retrain import exog_sources
from ml.series import price_series


def wins_over_naive(result: SeriesBacktest) -> tuple[int, int, float]:
    """(scored origins where ``selected`` had a lower MAPE than naive, scored origins, the
    series' selected MAPE over naive's)."""
    f = result.forecasts[result.forecasts["scored"]]
    f = f.assign(ape=(f["y"] - f["yhat"]).abs() / f["y"])
    by_origin = f.pivot_table(index="origin", columns="model", values="ape", aggfunc="mean")
    if SELECTED not in by_origin or by_origin.empty:
        return 0, 0, float("nan")
    won = int((by_origin[SELECTED] < by_origin["naive"]).sum())
    ratio = float(
        f.loc[f["model"] == SELECTED, "ape"].mean() / f.loc[f["model"] == "naive", "ape"].mean()
    )
    return won, len(by_origin), ratio


def _log_forecasts(results: list[SeriesBacktest]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(log yhat: one row per series × origin × target day, one column per model; per-origin
    MAPE: one row per series × origin, one column per model) of every model but ``selected``."""
    f = pd.concat([r.forecasts.assign(series=r.series_id) for r in results], ignore_index=True)
    f = f[f["model"] != SELECTED].assign(
        log=lambda d: np.log(d["yhat"]), ape=lambda d: (d["y"] - d["yhat"]).abs() / d["y"]
    )
    keys = ["series", "origin", "target_date", "y", "scored"]
    logs = f.pivot_table(index=keys, columns="model", values="log").reset_index()
    by_origin = f.pivot_table(index=["series", "origin"], columns="model", values="ape")
    return logs, by_origin.reset_index()


def _strategy(
    logs: pd.DataFrame, by_origin: pd.DataFrame, pool: list[str], choose: Callable, pooled: bool
) -> float:
    """MAPE over the scored origins of forecasts made by ``choose(log forecasts at one origin,
    per-origin MAPE of the earlier origins)`` per series, or per commodity when ``pooled``."""
    logs = logs.assign(commodity=logs["series"].str.rsplit(":", n=1).str[-1])
    by_origin = by_origin.assign(commodity=by_origin["series"].str.rsplit(":", n=1).str[-1])
    group = "commodity" if pooled else "series"
    errors = []
    for (key, origin), now in logs[logs["scored"]].groupby([group, "origin"]):
        # origins are one horizon apart: an earlier origin's targets are all known by this one
        earlier = by_origin[(by_origin[group] == key) & (by_origin["origin"] < origin)]
        log_yhat = choose(now[pool], earlier[pool]) if len(earlier) else now["naive"]
        errors.append((np.exp(log_yhat) - now["y"]).abs() / now["y"])
    return float(pd.concat(errors).mean() * 100)


def _best_k(k: int, how: str) -> Callable:
    def choose(now: pd.DataFrame, earlier: pd.DataFrame) -> pd.Series:
        best = earlier.mean().nsmallest(k).index
        return getattr(now[best], how)(axis=1)

    return choose


def _shrunk_best(now: pd.DataFrame, earlier: pd.DataFrame) -> pd.Series:
    """The best model's change from naive, kept in the share of earlier origins it beat naive."""
    best = earlier.mean().idxmin()
    trust = float((earlier[best] < earlier["naive"]).mean())
    return now["naive"] + trust * (now[best] - now["naive"])


def strategies(results: list[SeriesBacktest], naive_mape: float) -> None:
    """Print the MAPE (and × naive) of other selection and combination rules."""
    logs, by_origin = _log_forecasts(results)
    pool = [m for m in by_origin.columns if m not in ("series", "origin")]
    rules: list[tuple[str, Callable, bool]] = [
        ("best, per series", _best_k(1, "mean"), False),
        ("best, per commodity", _best_k(1, "mean"), True),
        ("median of best 3, per series", _best_k(3, "median"), False),
        ("median of best 3, per commodity", _best_k(3, "median"), True),
        ("mean of best 3, per commodity", _best_k(3, "mean"), True),
        ("best shrunk to naive by its wins", _shrunk_best, False),
    ]
    print(f"\nselection and combination rules over {', '.join(pool)}")
    print(f"{'rule':<36}{'MAPE':>8}{'× naive':>9}")
    for name, choose, pooled in rules:
        mape = _strategy(logs, by_origin, pool, choose, pooled)
        print(f"{name:<36}{mape:>8.3f}{mape / naive_mape:>9.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", type=Path, default=SAMPLE_PRICES)
    parser.add_argument("--origins", type=int, help="default: ml.origins")
    parser.add_argument(
        "--models", help="comma-separated models beside naive and ml.models (default: all)"
    )
    args = parser.parse_args()
    settings = load_settings()
    ml = settings.ml.model_copy(update={"origins": args.origins} if args.origins else {})
    series, _ = price_series(args.file, settings.tz, conf_of(settings))
    candidates = configured_models(ml)
    others = check_model_names(args.models.split(",")) if args.models else [*BASELINES, *MODELS]
    models = list(dict.fromkeys(["naive", *candidates, *others]))
    began = time.monotonic()
    sources, _ = exog_sources(settings)
    results = run_backtests(series, models, ml, candidates, sources)
    doc = summary(results, ml)
    seconds = time.monotonic() - began

    scored = ml.origins - ml.selection_origins
    print(
        f"{args.file.name}: {len(doc['series'])} series, {ml.horizon}-day horizon, "
        f"{ml.origins} origins ({ml.selection_origins} select, {scored} scored), {seconds:.0f}s; "
        f"candidates {', '.join(candidates)} (naive unless a rival beats it by "
        f"{ml.selection.margin:.0%}, p < {ml.selection.significance}, per {ml.selection.level})"
    )
    naive = doc["overall"]["naive"]["mape"]
    surge = ("surge_recall", "surge_precision")
    header = f"{'model':<18}" + "".join(f"{m:>12}" for m in METRICS) + f"{'MAPE/naive':>12}"
    header += "".join(f"{m.replace('surge_', 'surge '):>16}" for m in surge)
    print(header + "\n" + "-" * len(header))
    for model in [*models, SELECTED]:
        values = doc["overall"][model]
        cells = "".join(f"{values[m]:>12.3f}" for m in METRICS)
        warned = "".join(f"{'–' if values[m] is None else f'{values[m]:.3f}':>16}" for m in surge)
        print(f"{model:<18}{cells}{values['mape'] / naive:>12.3f}{warned}")
    first = doc["overall"][SELECTED]
    print(
        f"surges (≥ +{ml.surge_rise:.0%} within {ml.horizon} days) at {first['surges']} "
        "scored series-origins"
    )

    print(f"\n{'series':<40}{'served':>16}{'won/origins':>13}{'selected/naive':>16}")
    rows = []
    for result in results:
        won, origins, ratio = wins_over_naive(result)
        rows.append((won, origins, ratio))
        print(f"{result.series_id:<40}{result.selected:>16}{f'{won}/{origins}':>13}{ratio:>16.3f}")
    table = pd.DataFrame(rows, columns=["won", "origins", "ratio"])
    print(
        f"selected beat naive at {table['won'].sum()} of {table['origins'].sum()} scored "
        f"series-origins; on {(table['ratio'] < 1).sum()} of {len(table)} series over the "
        "whole scored period"
    )
    strategies(results, naive)


if __name__ == "__main__":
    main()
