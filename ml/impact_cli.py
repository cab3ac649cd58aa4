"""``./run.sh impact``: why the price of a commodity moved in a month, at a market or region."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.config.settings import Settings

if TYPE_CHECKING:
    from lakehouse.config.errors import CommandFactory


def cmd_impact(settings: Settings, args: argparse.Namespace) -> int:
    from lakehouse.catalog.conf import conf_of
    from ml.daily import file_daily_closes
    from ml.impact import ImpactModel, explain, fit_impact_model, load_inputs

    if args.model and args.model.exists() and not args.daily:
        model = ImpactModel.load(args.model)
    else:
        conf = conf_of(settings)
        daily = file_daily_closes(args.daily, conf, settings.tz) if args.daily else None
        model = fit_impact_model(load_inputs(settings.impact.data_dir, conf, daily), settings)
        if args.model:
            model.save(args.model)
    result = explain(
        model,
        args.commodity,
        args.date,
        conf_of(settings),
        market_id=args.market_id,
        region=args.region,
        min_explained_r2=settings.impact.min_explained_r2,
    )
    if args.json:
        print(json.dumps(result.model_dump(), ensure_ascii=False, indent=2))
        return 0
    where = ", ".join(result.locations)
    print(
        f"{result.commodity} at {where}, {result.resolution} {result.period}: "
        f"{result.previous_price:,.0f} → {result.price:,.0f} IDR "
        f"({result.price_change_pct:+.1f} %)\n"
        f"impact score {result.impact_score:.0f}/100. {result.in_language('en').message}"
    )
    for family, weight in sorted(result.factors_with_weights.items(), key=lambda kv: -kv[1]):
        contribution = result.contributions[family]
        print(f"  {family:<18} {weight:3d} %  ({contribution:+.2f} points of log change)")
    return 0


def register(command: CommandFactory) -> None:
    cmd = command("impact", cmd_impact, "explain which factors drove a price change")
    cmd.add_argument("--commodity", required=True, help="e.g. beras, cabai_merah")
    where = cmd.add_mutually_exclusive_group(required=True)
    where.add_argument("--market-id", help="a market of conf/markets.csv, e.g. IP-001")
    where.add_argument(
        "--region", help="a panel city/province or a province, e.g. Bandung; Indonesia: national"
    )
    cmd.add_argument("--date", required=True, help="any day of the month (or week) to explain")
    cmd.add_argument(
        "--daily",
        type=Path,
        metavar="FILE",
        help="also fit on the daily prices of this long-format CSV (other commodities/markets)",
    )
    cmd.add_argument(
        "--model",
        type=Path,
        metavar="FILE",
        help="load the model saved in FILE (unless --daily is given), else fit and save it there",
    )
    cmd.add_argument("--json", action="store_true", help="print the result as JSON")
