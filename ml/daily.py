"""Daily closes, the input of the anomaly and impact models: one validated shape for both."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pandas as pd

from lakehouse.catalog.conf import Conf
from lakehouse.config.errors import InputError

MODEL_COLUMNS = ("market_id", "region", "commodity", "date", "price")


def validated_daily(daily: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``daily`` (one close per market × commodity × date, as in ``gold.price_daily``
    with ``close`` renamed ``price``) with datetime dates and float prices, sorted by market,
    commodity and date; ``InputError`` says what is wrong otherwise."""
    missing = [c for c in MODEL_COLUMNS if c not in daily.columns]
    if missing:
        raise InputError(f"daily prices lack the column(s) {', '.join(missing)}")
    frame = daily.loc[:, list(MODEL_COLUMNS)].copy()
    frame["date"] = pd.to_datetime(frame["date"], errors="coerce").dt.normalize()
    if frame["date"].isna().any():
        bad = int(frame["date"].isna().sum())
        raise InputError(f"daily prices need a date on every row; {bad} row(s) have none")
    frame["price"] = pd.to_numeric(frame["price"], errors="coerce")
    if not (frame["price"] > 0).all():
        bad = int((~(frame["price"] > 0)).sum())
        raise InputError(f"daily prices must be positive numbers; {bad} row(s) are not")
    keys = ["market_id", "commodity", "date"]
    if frame.duplicated(keys).any():
        raise InputError("daily prices hold more than one close per market × commodity × date")
    return frame.sort_values(keys, ignore_index=True)


def file_daily_closes(path: Path, conf: Conf, tz: ZoneInfo | None = None) -> pd.DataFrame:
    """The daily closes (``lakehouse.domain.metrics``) of a long-format price CSV, as the backtest
    reads
    them, in the shape of ``validated_daily`` (``tz``: of naive times; default UTC)."""
    from lakehouse.domain.metrics import daily_closes
    from ml.series import read_price_csv

    prices = read_price_csv(path, tz or ZoneInfo("UTC"), conf).prices
    return validated_daily(daily_closes(prices).rename(columns={"close": "price"}))
