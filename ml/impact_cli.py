"""``./run.sh impact``: why the price of a commodity moved in a month, at a market or region."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from lakehouse.settings import Settings
from producers.reports import InputError

if TYPE_CHECKING:
    import pandas as pd

    from scripts.cli import CommandFactory


def daily_closes(path: Path, settings: Settings) -> pd.DataFrame:
    """The last valid price of each market × commodity × local day of a long-format price CSV
    (rows the report parser rejects are left out)."""
    import pandas as pd

    from producers.reports import open_report, parse_rows

    report = open_report(path)
    if report.kind != "price":
        raise InputError(f"{path}: --daily needs a price file, not a sensor file")
    events = [row.event for row in parse_rows(report, settings.tz) if row.event is not None]
    frame = pd.DataFrame(
        {
            "market_id": [e.market_id for e in events],
            "region": [e.region for e in events],
            "commodity": [e.commodity for e in events],
            "observed_at": [e.observed_at.astimezone(settings.tz) for e in events],
            "price": [e.price for e in events],
        }
    )
    if frame.empty:
        raise InputError(f"{path}: no valid price rows")
    frame["date"] = frame["observed_at"].map(lambda t: t.date())
    frame = frame.sort_values("observed_at")
    return frame.groupby(["market_id", "commodity", "date"], as_index=False).last()


def cmd_impact(settings: Settings, args: argparse.Namespace) -> int:
    from ml.impact import ImpactModel, explain, fit_impact_model, load_inputs

    if args.model and args.model.exists() and not args.daily:
        model = ImpactModel.load(args.model)
    else:
        daily = daily_closes(args.daily, settings) if args.daily else None
        model = fit_impact_model(load_inputs(settings.impact.data_dir, daily), settings)
        if args.model:
            model.save(args.model)
    result = explain(model, args.commodity, args.date, market_id=args.market_id, region=args.region)
    if args.json:
        print(json.dumps(result.model_dump(), ensure_ascii=False, indent=2))
        return 0
    where = ", ".join(result.locations)
    print(
        f"{result.commodity} at {where}, {result.month}: {result.previous_price:,.0f} → "
        f"{result.price:,.0f} IDR ({result.price_change_pct:+.1f} %)\n"
        f"impact score {result.impact_score:.0f}/100, dominant factor {result.dominant_factor}"
    )
    for family, weight in sorted(result.factors_with_weights.items(), key=lambda kv: -kv[1]):
        contribution = result.contributions[family]
        print(f"  {family:<18} {weight:3d} %  ({contribution:+.2f} points of log change)")
    return 0


def register(command: CommandFactory) -> None:
    cmd = command("impact", cmd_impact, "explain which factors drove a monthly price change")
    cmd.add_argument("--commodity", required=True, help="e.g. beras, cabai_merah")
    where = cmd.add_mutually_exclusive_group(required=True)
    where.add_argument("--market-id", help="a market of conf/markets.csv, e.g. IP-001")
    where.add_argument("--region", help="a panel city/province or a province, e.g. Bandung")
    cmd.add_argument("--date", required=True, help="any day of the month to explain")
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
