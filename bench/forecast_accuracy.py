"""Forecast accuracy on the real sample PIHPS file: each model's 7-day MAPE (and sMAPE, MASE,
interval coverage) from the rolling-origin backtest, next to the baselines measured in the same
run — naive, seasonal naive and Prophet with library defaults — and ``selected`` (the
per-series choice made on earlier origins only), with the ratio to naive's MAPE.

    ./run.sh bench forecast_accuracy [FILE] [--origins N]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from lakehouse.settings import SAMPLE_PRICES, load_settings
from ml.backtest import METRICS, SELECTED, run_backtests, summary
from ml.models import BASELINES, MODELS
from ml.series import csv_series


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", nargs="?", type=Path, default=SAMPLE_PRICES)
    parser.add_argument("--origins", type=int, help="default: ml.origins")
    args = parser.parse_args()
    settings = load_settings()
    ml = settings.ml.model_copy(update={"origins": args.origins} if args.origins else {})
    series, _ = csv_series(args.file, settings.tz)
    models = list(MODELS)
    candidates = [m for m in models if m != "prophet_default"]
    began = time.monotonic()
    doc = summary(list(run_backtests(series, models, ml, candidates)), ml.horizon)
    seconds = time.monotonic() - began

    scored = ml.origins - ml.selection_origins
    print(
        f"{args.file.name}: {len(doc['series'])} series, {ml.horizon}-day horizon, "
        f"{ml.origins} origins ({ml.selection_origins} select, {scored} scored), {seconds:.0f}s"
    )
    naive = doc["overall"]["naive"]["mape"]
    header = f"{'model':<18}" + "".join(f"{m:>12}" for m in METRICS) + f"{'MAPE/naive':>12}"
    print(header + "\n" + "-" * len(header))
    for model in [*BASELINES, *(m for m in models if m not in BASELINES), SELECTED]:
        values = doc["overall"][model]
        cells = "".join(f"{values[m]:>12.3f}" for m in METRICS)
        print(f"{model:<18}{cells}{values['mape'] / naive:>12.3f}")
    print(
        "\nserved per series: " + ", ".join(f"{s['series']}={s['selected']}" for s in doc["series"])
    )


if __name__ == "__main__":
    main()
