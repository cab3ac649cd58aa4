"""``./run.sh backtest`` and ``./run.sh retrain`` (registered through scripts/cli.py)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.catalog.conf import conf_of
from lakehouse.config.errors import CommandFactory, InputError
from lakehouse.config.settings import Settings

if TYPE_CHECKING:
    import pandas as pd

MODEL_HELP = "comma-separated models (default: the baselines and ml.models)"


def _models(text: str) -> list[str]:
    from ml.models import check_model_names

    try:
        return check_model_names([m.strip() for m in text.split(",") if m.strip()])
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be ≥ 1")
    return value


def _track_backtest(
    settings: Settings, params: dict, doc: dict, text: str, series: pd.DataFrame, results: list
) -> None:
    """Log the backtest as an MLflow run when the server answers; say so when it does not."""
    import pandas as pd

    from ml import tracking

    if problem := tracking.reachable(settings):
        print(f"note: {problem}; backtest not tracked", file=sys.stderr)
        return
    tracking.connect(settings)
    with tracking.tracked_run("backtest", params, {}) as run:
        tracking.log_backtest(doc, text)
        last = [  # the served model's forecast at the last origin, per series
            f[(f["model"] == r.selected) & (f["origin"] == f["origin"].max())].assign(
                series_id=r.series_id
            )
            for r in results
            if len(f := r.forecasts)
        ]
        if last:
            tracking.log_plots(series, pd.concat(last), "backtest, last origin")
    print(f"MLflow run {run.info.run_id}", file=sys.stderr)


def cmd_backtest(settings: Settings, args: argparse.Namespace) -> int:
    from ml.backtest import run_backtests, summary, table
    from ml.models import BASELINES, GLOBAL_MODELS, configured_models
    from ml.retrain import exog_sources
    from ml.series import price_series
    from ml.surge_model import province_centroids

    update = {"horizon": args.horizon} if args.horizon else {}
    if args.origins:
        update["origins"] = args.origins
    if args.jobs:
        update["n_jobs"] = args.jobs
    ml = settings.ml.model_copy(update=update)
    if ml.selection_origins >= ml.origins:
        ml = ml.model_copy(update={"selection_origins": max(1, ml.origins // 3)})
    models = args.models or list(dict.fromkeys([*BASELINES, *configured_models(settings.ml)]))
    # the served pool: the models asked for (less the Prophet baseline), else ml.models
    candidates = (
        [m for m in models if m != "prophet_default"]
        if args.models
        else configured_models(settings.ml)
    )
    series, skipped = price_series(args.file, settings.tz, conf_of(settings))
    if skipped:
        print(
            f"warning: skipped {len(skipped)} unreadable row(s) (first: {skipped[0]})",
            file=sys.stderr,
        )
    # the global model's features read the same sources as retrain (gold of the lakehouse)
    sources, absent = exog_sources(settings) if set(models) & set(GLOBAL_MODELS) else (None, {})
    for why in absent.values():
        print(f"note: the global model does not use it: {why}", file=sys.stderr)
    centroids = province_centroids(conf_of(settings))
    results = list(run_backtests(series, models, ml, candidates, sources, centroids))
    doc = summary(results, ml)
    text = table(doc)
    print(text)
    if args.json:
        try:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(doc, indent=2), encoding="utf-8")
        except OSError as exc:
            raise InputError(f"--json {args.json}: cannot write ({exc.strerror or exc})") from exc
    params = {
        "file": args.file,
        "horizon": ml.horizon,
        "models": ",".join(models),
        "origins": ml.origins,
        "selection_origins": ml.selection_origins,
        "min_history_days": ml.min_history_days,
        "global_exogenous": ",".join(ml.global_exogenous),
        "series": len(results),
    }
    _track_backtest(settings, params, doc, text, series, results)
    return 0


def cmd_retrain(settings: Settings, args: argparse.Namespace) -> int:
    from ml import tracking
    from ml.retrain import fit_impact, retrain, score_anomalies, should_retrain

    tracking.connect(settings)
    if args.anomalies_only:
        written = score_anomalies(settings)
        print(f"gold.anomalies: {written['inserted']} inserted, {written['replaced']} replaced")
        return 0
    if args.if_changed:
        go, why = should_retrain(settings)
        print(f"{'retraining' if go else 'no retrain'}: {why}")
        if not go:
            return 0
    print(retrain(settings))
    written = score_anomalies(settings)
    print(f"gold.anomalies: {written['inserted']} inserted, {written['replaced']} replaced")
    if not args.keep_impact:
        print(fit_impact(settings))
    return 0


def register(command: CommandFactory) -> None:
    backtest = command(
        "backtest",
        cmd_backtest,
        "rolling-origin backtest of the forecasting models on a long-format price CSV",
    )
    backtest.add_argument("file", type=Path, metavar="FILE")
    backtest.add_argument("--horizon", type=_positive, help="days ahead (default: ml.horizon)")
    backtest.add_argument("--models", type=_models, help=MODEL_HELP)
    backtest.add_argument("--origins", type=_positive, help="backtest origins (default ml.origins)")
    backtest.add_argument("--jobs", type=_positive, help="worker processes (default ml.n_jobs)")
    backtest.add_argument("--json", type=Path, metavar="PATH", help="also write the JSON here")

    retrain = command(
        "retrain",
        cmd_retrain,
        "backtest, select and fit a model per series from gold; write gold.forecasts (MLflow)",
    )
    retrain.add_argument(
        "--if-changed",
        action="store_true",
        help="only if silver.prices grew by ml.retrain_min_new_rows since the last retrain",
    )
    retrain.add_argument(
        "--anomalies-only",
        action="store_true",
        help="only rescore gold.anomalies (the hourly pass): no forecasting, no impact model",
    )
    retrain.add_argument(
        "--keep-impact",
        action="store_true",
        help="forecasts and anomalies only: the saved impact model stays (a first start's, fitted "
        "on the shipped data, is not refitted on a few days of gold)",
    )
