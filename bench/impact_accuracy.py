"""Impact model accuracy per commodity on its held-out last periods (6 months for rice, 12
weeks for the daily series): R² of the period's price change, its mean absolute error beside
that of "no change", the implied price's MAPE beside the naive one, and the verdict answers
give at ``impact.min_explained_r2`` (explained, or mostly unexplained); then what each factor
family adds — the same model refitted without the family, scored on the same held-out periods.

By default on the shipped files of ``impact.data_dir`` (what a first start fits). ``--news``
and ``--supply`` add a daily signal frame in the shape of ``gold.news_signal`` /
``gold.supply_region_daily`` (CSV); ``--gold`` reads gold.price_daily and those tables from the
configured lakehouse instead, as ``./run.sh retrain`` does.

    ./run.sh bench impact_accuracy [--news FILE] [--supply FILE] [--gold]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import pandas as pd

from lakehouse.catalog.conf import conf_of
from lakehouse.config.settings import load_settings
from ml.impact import family_gain, fit_impact_model, holdout_fit, load_inputs
from ml.impact_design import FAMILIES, NEWS_SIGNAL, SUPPLY_REGION_DAILY


def _read(path: Path | None) -> pd.DataFrame | None:
    return None if path is None else pd.read_csv(path, parse_dates=["date"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--news", type=Path, help="a daily news signal CSV (gold.news_signal)")
    parser.add_argument("--supply", type=Path, help="a daily supply CSV (supply_region_daily)")
    parser.add_argument("--gold", action="store_true", help="read the lakehouse's gold tables")
    args = parser.parse_args(argv)
    settings = load_settings()
    gold = {
        name: frame
        for name, frame in (
            (NEWS_SIGNAL, _read(args.news)),
            (SUPPLY_REGION_DAILY, _read(args.supply)),
        )
        if frame is not None
    }
    daily, absent = None, {}
    if args.gold:
        from lakehouse.io.lake import Lakehouse
        from ml.retrain import gold_daily_closes, optional_gold

        lake = Lakehouse(settings)
        daily, _ = gold_daily_closes(lake)
        gold, absent = optional_gold([NEWS_SIGNAL, SUPPLY_REGION_DAILY], lake)
    inputs = load_inputs(settings.impact.data_dir, conf_of(settings), daily, gold, absent)
    full = fit_impact_model(inputs, settings)
    overall = full.metrics.get("overall", {})
    print(
        "overall (weighted by held-out rows): "
        + ", ".join(f"{k} {v:.3f}" for k, v in overall.items())
    )

    least = settings.impact.min_explained_r2
    print(
        "| commodity | period | train / held-out | R² | MAE of change | price MAPE | "
        f"verdict (R² ≥ {least}, MAPE < naive) |"
    )
    print("|---|---|---|---|---|---|---|")
    for commodity, m in sorted(full.metrics.items()):
        if commodity == "overall":
            continue
        unit = full.design.loc[full.design["commodity"] == commodity, "resolution"].iloc[0]
        verdict = holdout_fit(full, commodity, least).verdict.replace("_", " ")
        print(
            f"| {commodity} | {'month' if unit == 'M' else 'week'} | "
            f"{m['train_rows']:.0f} / {m['test_rows']:.0f} | {m['r2']:.3f} | "
            f"{m['mae']:.2f} % (no change {m['naive_mae']:.2f} %) | "
            f"{m['mape']:.2f} % (no change {m['naive_mape']:.2f} %) | {verdict} |"
        )
    for commodity, why in sorted(full.skipped.items()):
        print(f"| {commodity} | no model: {why} | | | | | |")

    print("\n| family | commodity | R² with | R² without | gain | MAE with | MAE without |")
    print("|---|---|---|---|---|---|---|")
    for family in FAMILIES:
        gains = family_gain(inputs, settings, family, full)
        for commodity, g in sorted(gains.items()):
            print(
                f"| {family} | {commodity} | {g['r2']:.3f} | {g['r2_without']:.3f} | "
                f"{g['r2'] - g['r2_without']:+.3f} | {g['mae']:.2f} % | {g['mae_without']:.2f} % |"
            )
        missing = {
            c: m.unavailable[family] for c, m in full.models.items() if family in m.unavailable
        }
        for commodity, why in sorted(missing.items()):
            print(f"| {family} | {commodity} | not available: {why} | | | | |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
