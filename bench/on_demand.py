"""Answers on demand (issue #56): the price check and the weekly brief, each next to a cheap
endpoint of the same API measured in the same run.

    ./run.sh bench on_demand [--requests 2000] [--rate 50] [--briefs 3] [--provinces P ...]
                             [--days 730] [--reports-per-day 1]

Builds a lakehouse as ``bench api`` does — its random walks (every physical market of conf/ ×
every commodity, ``--days`` days), here ending today, written as gold.price_daily,
price_latest and region_daily — plus what the two routes read that ``bench api`` does not write,
with the registry's columns (``lakehouse.catalog.tables``):

- silver.prices: ``--reports-per-day`` reports of every series a day (1: one report per
  market × commodity, as the PIHPS series and the seeded history have; the stack's price
  simulator sends ~350 a day of each of its three commodities), each the day's close ± 0.75 %,
  at its market's report time between 07:00 and 16:00 local, until now; those before the
  nightly ``./run.sh maintain`` (03:30 local, scripts/crontab) in one commit, a file a day as
  its OPTIMIZE leaves them, the later ones in a commit per market report (the silver query's
  micro-batches since; a checkpoint every 10 commits, as Spark writes them);
- silver.holds and silver.quarantine: 1 % of the reports held as +60 % spikes, 0.5 %
  quarantined by a hard rule (an impossible price) — left out of silver.prices;
- gold.forecasts (every market and province series, an origin a day for the last 90 days, 7
  horizons, a surge probability), gold.supply_region_daily (the days of cover of every
  province × commodity a day) and silver.news (40 headlines a day naming 1–3 commodities).
  gold.alerts and the other tables are not read by either route and are not written.

It then starts the API as the `api` service does (``bench.api.server``), with an API key of role
``ingest`` (what the check requires), and measures from this process (aiohttp):

- **the price check** ``POST /api/v1/validation/price/check``: ``--requests`` requests of a
  partner's mix — single prices near their series' level, single prices moved ±10–40 %, prices
  of an unknown market or commodity (a 200, quarantined: not a 4xx), malformed prices (a 422)
  and lists of 10 (a market's report) — sent by one connection in a closed loop, then at
  ``--rate`` requests/s offered (open loop, latency from the scheduled time: no coordinated
  omission); ``GET /api/v1/commodities`` measured the same way, in interleaved rounds. p50, p95,
  p99 next to the target p99 ≤ 50 ms, what the check answered, and how much history it judged
  each price against;
- **the weekly brief** ``GET /api/v1/reports/brief`` of the last whole week, on a freshly started
  API: seconds per brief for each of ``--provinces`` and format, fetched ``--briefs`` times,
  interleaved (the first cold: the renderers load with the API's first brief), next to
  ``GET /api/v1/prices/live?region=`` of the same province (its first builds the live view),
  against the target PDF + XLSX ≤ 5 s; then the figures the brief gives one commodity — in the
  CSV, the spreadsheet and the PDF's text — against the same figures computed here from the
  tables read with delta-rs (``tests/test_briefs.py`` checks them on a few planted rows, with
  expected values from how they were planted).
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import io
import json
import os
import statistics
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import aiohttp
import httpx
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
from deltalake import DeltaTable
from openpyxl import load_workbook

from bench.api import API, DAYS, Result, daily_walks, server, throwaway, write_gold
from lakehouse.catalog.conf import Conf, conf_of
from lakehouse.catalog.tables import (
    GOLD_FORECASTS,
    GOLD_PRICE_DAILY,
    GOLD_SUPPLY_REGION_DAILY,
    SILVER_HOLDS,
    SILVER_NEWS,
    SILVER_PRICES,
    SILVER_QUARANTINE,
    Table,
    Typed,
    arrow_schema,
)
from lakehouse.config.settings import Settings
from lakehouse.domain.briefs.brief import HEADLINES, MOVERS, Week
from lakehouse.domain.briefs.brief_files import COLUMNS, decimal, percent, rupiah, word
from lakehouse.io.lake import Lakehouse
from scripts.services.api_server import Api
from serving_api.auth import HEADER, mint_key

CHECK = f"{API}/validation/price/check"
BASELINE = f"{API}/commodities"
#: what a partner sends the check, and how often
MIX = {"usual": 0.70, "moved": 0.20, "unknown": 0.05, "malformed": 0.02, "list of 10": 0.03}
LIST_SIZE = 10
TARGET_P99_MS = 50.0
TARGET_BRIEF_S = 5.0  # PDF + XLSX of one province
ROUNDS = 4  # interleaved rounds of the check and its baseline
WARM_UP = 20  # requests of each before they are measured
CONNECTIONS = 16  # of the open loop: enough for --rate at 300 ms a request
PROVINCES = ["DKI Jakarta", "Jawa Barat", "Bali"]  # 48, 10 and 1 markets
FIGURES = ("Jawa Barat", "beras")  # the brief line whose figures are checked
FORMATS = ("pdf", "xlsx", "csv")
NOISE = 0.0075  # a report is the day's close ± this (the price simulator's noise_pct)
REPORT_HOURS = (7.0, 16.0)  # local hours the markets report between
MAINTAINED = pd.Timedelta(hours=3, minutes=30)  # the nightly maintain (scripts/crontab), local
HELD, HARD = 0.01, 0.005  # shares of the reports held by the statistical rules, by a hard rule
SPIKE = 1.6  # a held report's price against the day's close
FORECAST_ORIGINS = 90  # days with a forecast origin (the nightly retrain)
HORIZON = 7
NEWS_PER_DAY = 40
NEWS_SOURCES = ("Antara", "Kompas", "Detik", "CNN Indonesia", "Bisnis")
DIRECTIONS = {"up": "naik", "down": "turun", "stable": "stabil"}
#: the Spark types of the columns the registry describes but does not type (silver's frames)
SPARK_TYPES = {
    "event_id": "string",
    "event_type": "string",
    "market_id": "string",
    "region": "string",
    "source": "string",
    "observed_at": "timestamp",
    "schema_version": "int",
    "price": "double",
    "unit": "string",
    "reported_unit": "string",
    "device_id": "string",
    "attributes": "map<string,string>",
    "flags": "array<string>",
    "details": "map<string,double>",
    "observed_date": "date",
    "hold_reasons": "array<string>",
    "baseline": "double",
    "move": "double",
    "held_at": "timestamp",
    "held_batch_id": "bigint",
    "status": "string",
    "previous_status": "string",
    "decided_batch_id": "bigint",
    "raw": "string",
    "subject": "string",
    "reasons": "array<string>",
    "error": "string",
    "quarantined_at": "timestamp",
    "quarantine_date": "date",
}
HELD_REASONS = ["zscore", "iqr", "median_deviation"]


# ---- data -----------------------------------------------------------------------------------


def schema_of(table: Table) -> pa.Schema:
    """``table``'s columns in the registry's order as Arrow, those it does not type with
    ``SPARK_TYPES``."""
    columns = {
        name: column if isinstance(column, Typed) else Typed(SPARK_TYPES[name], column)
        for name, column in table.columns.items()
    }
    return arrow_schema(replace(table, columns=columns))


def as_table(frame: pd.DataFrame, schema: pa.Schema, **arrays: pa.Array) -> pa.Table:
    """``frame``'s columns and ``arrays`` in ``schema``, every other column null."""

    def column(field: pa.Field) -> pa.Array:
        if field.name in arrays:
            return arrays[field.name]
        if field.name in frame:
            return pa.array(frame[field.name], field.type, from_pandas=True)
        return pa.nulls(len(frame), field.type)

    return pa.Table.from_arrays([column(f) for f in schema], schema=schema)


def number_map(values: Mapping[str, np.ndarray]) -> pa.MapArray:
    """A ``map<string,double>`` a row: ``values``' names to each row's numbers."""
    rows, names = len(next(iter(values.values()))), list(values)
    offsets = pa.array(np.arange(0, (rows + 1) * len(names), len(names)), pa.int32())
    items = np.column_stack([values[n] for n in names]).ravel()
    keys = pa.array(names).take(pa.array(np.tile(np.arange(len(names)), rows)))
    return pa.MapArray.from_arrays(offsets, keys, pa.array(items))


def strings(count: int, value: list[str]) -> pa.Array:
    """The list ``value`` on each of ``count`` rows."""
    return pa.array([value] * count, pa.list_(pa.string()))


def reports(
    daily: pd.DataFrame,
    conf: Conf,
    per_day: int,
    tz: ZoneInfo,
    now: datetime,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """``per_day`` reports of each series of ``daily`` a day, each at the day's close ± NOISE,
    at its market's report times between REPORT_HOURS (local), those observed by ``now``, in
    time order; ``kind`` says what silver made of it: ``accepted``, ``held`` (a spike) or
    ``hard`` (an impossible price)."""
    series = daily.loc[daily.index.repeat(per_day)].reset_index(drop=True)
    markets = series["market_id"].unique()
    offset = series["market_id"].map(
        dict(zip(markets, rng.uniform(0, 1, len(markets)), strict=True))
    )
    slot = np.tile(np.arange(per_day), len(daily)) + offset.to_numpy()
    hours = REPORT_HOURS[0] + slot / per_day * (REPORT_HOURS[1] - REPORT_HOURS[0])
    local = pd.to_datetime(series["date"]) + pd.to_timedelta(hours.round(3), unit="h")
    observed = local.dt.tz_localize(tz).dt.tz_convert(UTC).astype("datetime64[us, UTC]")
    kind = rng.choice(["accepted", "held", "hard"], len(series), p=[1 - HELD - HARD, HELD, HARD])
    price = series["close"].to_numpy() * rng.uniform(1 - NOISE, 1 + NOISE, len(series))
    price = np.where(kind == "held", price * SPIKE, np.where(kind == "hard", 1.0, price))
    unit = series["commodity"].map({c.id: c.unit for c in conf.commodities.values()})
    rows = pd.DataFrame(
        {
            "event_id": [f"10000000-0000-4000-8000-{i:012d}" for i in range(len(series))],
            "market_id": series["market_id"],
            "commodity": series["commodity"],
            "region": series["region"],
            "price": price,
            "close": series["close"],
            "unit": unit,
            "reported_unit": unit,
            "observed_at": observed,
            "observed_date": series["date"],
            "source": "bench-reports",
            "schema_version": 1,
            "kind": kind,
        }
    )
    rows = rows[rows["observed_at"] <= pd.Timestamp(now)]
    return rows.sort_values("observed_at", kind="stable").reset_index(drop=True)


def lineage(rows: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """``rows`` with the Kafka coordinates and the ingest time silver records."""
    return rows.assign(
        topic="market.prices",
        partition=rng.integers(0, 3, len(rows)).astype(np.int32),
        offset=np.arange(len(rows)),
        kafka_timestamp=rows["observed_at"] + pd.Timedelta(seconds=2),
        ingest_time=rows["observed_at"] + pd.Timedelta(seconds=3),
    )


@dataclass(frozen=True)
class Written:
    """What the lakehouse holds, for the record."""

    daily: pd.DataFrame  # the random walks (gold.price_daily)
    counts: dict[str, int]  # rows written per table (and commits since the maintain)

    def describe(self) -> str:
        first, last = self.daily["date"].min(), self.daily["date"].max()
        rows = ", ".join(f"{name} {count:,}" for name, count in self.counts.items())
        return f"{first} to {last}: {rows}"


def write_silver(
    settings: Settings,
    rows: pd.DataFrame,
    maintained: pd.Timestamp,
    history_n: float,
    rng: np.random.Generator,
) -> dict[str, int]:
    """silver.prices (the rows observed before ``maintained`` in one commit, the later ones in
    a commit per market report), silver.holds and silver.quarantine of ``rows`` (``reports``);
    ``history_n``: the earlier prices each was judged against (a detail of its silver row)."""
    rows = lineage(rows, rng)
    accepted = rows[rows["kind"] == "accepted"]
    prices = schema_of(SILVER_PRICES)
    past = accepted[accepted["observed_at"] < maintained]
    since = list(
        accepted[accepted["observed_at"] >= maintained].groupby(
            ["observed_at", "market_id"], sort=True
        )
    )
    for batch, (_, part) in enumerate([(None, past), *since]):
        count = len(part)
        details = number_map(
            {
                "history_n": np.full(count, history_n),
                "change": part["price"].to_numpy() / part["close"].to_numpy() - 1,
                "rolling_median": part["close"].to_numpy(),
                "previous_median": part["close"].to_numpy(),
            }
        )
        table = as_table(
            part.assign(silver_batch_id=batch),
            prices,
            flags=strings(count, []),
            details=details,
        )
        Lakehouse(settings)[SILVER_PRICES].append(table)
    held = rows[rows["kind"] == "held"]
    Lakehouse(settings)[SILVER_HOLDS].append(
        as_table(
            held.assign(
                baseline=held["close"],
                move=held["price"] / held["close"] - 1,
                held_at=held["ingest_time"],
                held_batch_id=0,
                status="held",
            ),
            schema_of(SILVER_HOLDS),
            flags=strings(len(held), HELD_REASONS),
            hold_reasons=strings(len(held), HELD_REASONS),
        ),
    )
    refused = rows[rows["kind"] != "accepted"]
    reasons = [HELD_REASONS if k == "held" else ["price_out_of_range"] for k in refused["kind"]]
    Lakehouse(settings)[SILVER_QUARANTINE].append(
        as_table(
            refused.assign(
                raw=[f'{{"event_id": "{i}"}}' for i in refused["event_id"]],
                event_type="price",
                subject=refused["commodity"],
                reasons=reasons,
                quarantined_at=refused["ingest_time"],
                quarantine_date=refused["ingest_time"].dt.date,
                silver_batch_id=0,
            ),
            schema_of(SILVER_QUARANTINE),
        ),
    )
    return {
        "silver.prices": len(accepted),
        "commits since the maintain": len(since),
        "silver.holds": len(held),
        "silver.quarantine": len(refused),
    }


def write_forecasts(settings: Settings, daily: pd.DataFrame, rng: np.random.Generator) -> int:
    """gold.forecasts of every market and province series, an origin a day for the last
    FORECAST_ORIGINS days, from the series' close at the origin."""
    recent = daily[daily["date"] > daily["date"].max() - timedelta(days=FORECAST_ORIGINS)]
    markets = recent.assign(
        series_id=recent["market_id"] + "|" + recent["commodity"], series_kind="market"
    )
    provinces = recent.groupby(["region", "commodity", "date"], as_index=False)["close"].mean()
    provinces = provinces.assign(
        series_id=provinces["region"] + "|" + provinces["commodity"],
        series_kind="region",
        market_id=None,
    )
    origins = pd.concat([markets, provinces], ignore_index=True)
    origins["surge_prob"] = rng.beta(1, 6, len(origins))
    rows = origins.loc[origins.index.repeat(HORIZON)].reset_index(drop=True)
    horizon = np.tile(np.arange(1, HORIZON + 1), len(origins))
    yhat = rows["close"].to_numpy() * (1 + 0.002 * horizon)
    band = yhat * 0.03 * np.sqrt(horizon)
    origin = pd.to_datetime(rows["date"])
    rows = rows.assign(
        origin_date=rows["date"],
        target_date=(origin + pd.to_timedelta(horizon, unit="D")).dt.date,
        horizon=horizon.astype(np.int32),
        yhat=yhat,
        yhat_lower_80=yhat - band,
        yhat_upper_80=yhat + band,
        yhat_lower_95=yhat - 1.5 * band,
        yhat_upper_95=yhat + 1.5 * band,
        served_because="bench",
        model_name="price_global_lightgbm",
        model_version="1",
        run_id="bench",
        data_version=1,
        created_at=(origin + pd.Timedelta(hours=19, minutes=30)).dt.tz_localize(UTC),
    )
    Lakehouse(settings)[GOLD_FORECASTS].append(as_table(rows, arrow_schema(GOLD_FORECASTS)))
    return len(rows)


def write_supply(settings: Settings, daily: pd.DataFrame, rng: np.random.Generator) -> int:
    """gold.supply_region_daily: every province × commodity × day, 5 % without a cover."""
    rows = (
        daily[["region", "commodity", "date"]]
        .drop_duplicates()
        .rename(columns={"region": "province"})
    )
    cover = rng.gamma(4.0, 3.0, len(rows))
    rows = rows.assign(
        stock=rng.uniform(5e3, 5e5, len(rows)),
        days_of_cover=np.where(rng.random(len(rows)) < 0.05, np.nan, cover),
        shipments_in_transit=rng.integers(0, 12, len(rows)),
        shipments_late=rng.integers(0, 3, len(rows)),
    )
    table = as_table(rows, arrow_schema(GOLD_SUPPLY_REGION_DAILY))
    Lakehouse(settings)[GOLD_SUPPLY_REGION_DAILY].append(table)
    return len(rows)


def write_news(
    settings: Settings, conf: Conf, daily: pd.DataFrame, now: datetime, rng: np.random.Generator
) -> int:
    """silver.news: NEWS_PER_DAY headlines a day, each naming 1–3 commodities and a direction,
    of a province with markets (70 %) or of none."""
    first = datetime.combine(daily["date"].min(), datetime.min.time(), UTC)
    count = NEWS_PER_DAY * daily["date"].nunique()
    published = [
        first + timedelta(seconds=float(s))
        for s in rng.uniform(0, count / NEWS_PER_DAY * 86400, count)
    ]
    goods = sorted(conf.commodities)
    provinces = sorted({m.province for m in conf.physical_markets})
    rows = []
    for i, at in enumerate(published):
        named = rng.choice(goods, rng.integers(1, 4), replace=False)
        direction = str(rng.choice(list(DIRECTIONS)))
        province = str(rng.choice(provinces)) if rng.random() < 0.7 else None
        name = conf.commodities[named[0]].label("id")
        rows.append(
            {
                "event_id": f"news-{i}",
                "published_at": at,
                "title": f"Harga {name} {DIRECTIONS[direction]} di {province or 'pasar'} ({i})",
                "source": str(rng.choice(NEWS_SOURCES)),
                "collected_from": "bench",
                "mentions": [{"commodity": str(c), "direction": direction} for c in named],
                "province": province,
                "topic": "price",
            }
        )
    news = pd.DataFrame([r for r in rows if r["published_at"] <= now])
    Lakehouse(settings)[SILVER_NEWS].append(as_table(news, arrow_schema(SILVER_NEWS)))
    return len(news)


def write_lakehouse(settings: Settings, days: int, per_day: int, now: datetime) -> Written:
    """The gold tables of ``bench api`` ending today, and what the check and the brief read
    besides."""
    conf = conf_of(settings)
    rng = np.random.default_rng(56)
    local = pd.Timestamp(now).tz_convert(settings.tz)
    today = local.normalize().tz_localize(None)
    maintained = local.normalize() + MAINTAINED
    if maintained > local:
        maintained -= pd.Timedelta(days=1)
    daily = daily_walks(conf, days, (today - pd.Timedelta(days=days - 1)).date())
    counts = {"gold.price_daily": write_gold(settings, days, daily)}
    rules = conf.quality.prices
    history_n = float(min(rules.history_days * per_day, rules.history_points))
    rows = reports(daily, conf, per_day, settings.tz, now, rng)
    counts |= write_silver(settings, rows, maintained.tz_convert(UTC), history_n, rng)
    counts["gold.forecasts"] = write_forecasts(settings, daily, rng)
    counts["gold.supply_region_daily"] = write_supply(settings, daily, rng)
    counts["silver.news"] = write_news(settings, conf, daily, now, rng)
    return Written(daily, counts)


# ---- the price check ------------------------------------------------------------------------


@dataclass(frozen=True)
class Call:
    kind: str  # what is asked (a MIX kind, or the baseline)
    method: str
    path: str
    body: bytes | None = None


@dataclass(frozen=True)
class Answer:
    kind: str
    status: int  # 0: none (the connection failed)
    seconds: float  # from when the request was due
    body: bytes


def check_calls(
    daily: pd.DataFrame,
    conf: Conf,
    count: int,
    now: datetime,
    tz: ZoneInfo,
    rng: np.random.Generator,
) -> list[Call]:
    """``count`` requests of the check in MIX's proportions: prices at today's level of their
    series (``daily``), observed in the last 15 minutes."""
    levels = daily[daily["date"] == daily["date"].max()].reset_index(drop=True)
    units = {c.id: c.unit for c in conf.commodities.values()}

    def event(row: pd.Series, factor: float, **change: object) -> dict[str, object]:
        at = now - timedelta(seconds=float(rng.uniform(0, 900)))
        return {
            "market_id": row["market_id"],
            "commodity": row["commodity"],
            "price": round(float(row["close"]) * factor, 2),
            "unit": units[row["commodity"]],
            "observed_at": at.astimezone(tz).isoformat(),
            "source": "bench-partner",
        } | change

    calls = []
    for kind in rng.choice(list(MIX), count, p=list(MIX.values())):
        row = levels.iloc[int(rng.integers(len(levels)))]
        body: object
        if kind == "usual":
            body = event(row, rng.lognormal(0, 0.01))
        elif kind == "moved":
            body = event(row, 1 + rng.choice([-1, 1]) * rng.uniform(0.10, 0.40))
        elif kind == "unknown":
            nowhere = {"market_id": "XX-404"} if rng.random() < 0.5 else {"commodity": "kopi_luwak"}
            body = event(row, 1.0, **nowhere)
        elif kind == "malformed":
            body = event(row, 1.0, price=0)
        else:  # a market's report of ten commodities
            market = levels[levels["market_id"] == row["market_id"]]
            picked = market.iloc[rng.choice(len(market), LIST_SIZE, replace=False)]
            body = [event(r, rng.lognormal(0, 0.01)) for _, r in picked.iterrows()]
        calls.append(Call(str(kind), "POST", CHECK, json.dumps(body).encode()))
    return calls


async def _send(
    url: str, calls: list[Call], rate: float | None, connections: int, headers: dict[str, str]
) -> tuple[list[Answer], float]:
    """``calls`` over ``connections``: each as soon as its connection is free (``rate`` None),
    or request n due at n / ``rate`` s whatever happened before (open loop); the answers and the
    seconds it took."""
    answers: list[Answer] = []
    connector = aiohttp.TCPConnector(limit=connections)
    timeout = aiohttp.ClientTimeout(total=300)
    async with aiohttp.ClientSession(
        connector=connector, headers=headers, timeout=timeout
    ) as session:
        began = time.perf_counter()

        async def connection(first: int) -> None:
            for n in range(first, len(calls), connections):
                due = time.perf_counter() if rate is None else began + n / rate
                if (wait := due - time.perf_counter()) > 0:
                    await asyncio.sleep(wait)
                call = calls[n]
                try:
                    async with session.request(call.method, url + call.path, data=call.body) as r:
                        status, body = r.status, await r.read()
                except (aiohttp.ClientError, TimeoutError):
                    status, body = 0, b""
                answers.append(Answer(call.kind, status, time.perf_counter() - due, body))

        await asyncio.gather(*(connection(i) for i in range(connections)))
        return answers, time.perf_counter() - began


def measure(
    url: str, targets: dict[str, tuple[list[Call], dict[str, str]]], rate: float
) -> dict[tuple[str, str], tuple[list[Answer], float]]:
    """Each target's calls (with its headers) in a closed loop over one connection, then at
    ``rate`` offered, in ROUNDS interleaved rounds (the other load of a shared machine weighs
    on each alike), after a warm-up (the API's first check is printed, not counted)."""
    calls, headers = targets["check"]
    (first,), _ = asyncio.run(_send(url, calls[:1], None, 1, headers))
    print(f"the API's first check: {first.seconds * 1000:.0f} ms, HTTP {first.status}")
    for calls, headers in targets.values():
        asyncio.run(_send(url, calls[:WARM_UP], None, 1, headers))
    modes = {"closed loop": (None, 1), f"{rate:g} req/s": (rate, CONNECTIONS)}
    measured: dict[tuple[str, str], tuple[list[Answer], float]] = {}
    for mode, (offered, connections) in modes.items():
        for i in range(ROUNDS):
            for name, (calls, headers) in targets.items():
                answers, seconds = asyncio.run(
                    _send(url, calls[i::ROUNDS], offered, connections, headers)
                )
                before, spent = measured.get((name, mode), ([], 0.0))
                measured[(name, mode)] = (before + answers, spent + seconds)
    return measured


def result(answers: list[Answer], seconds: float, every: bool = False) -> Result:
    """``answers`` as ``bench api`` counts them: errors (no answer, 5xx), and the latencies of
    the 2xx answers (of all: ``every``)."""
    failed = sum(a.status == 0 or a.status >= 500 for a in answers)
    latencies = [a.seconds for a in answers if every or 200 <= a.status < 300]
    return Result(len(answers), failed, seconds, latencies)


def report_check(
    measured: dict[tuple[str, str], tuple[list[Answer], float]], names: dict[str, str]
) -> None:
    print(
        f"\n{'endpoint':<30} {'mode':<12} {'requests':>8} {'req/s':>7} {'p50 ms':>7} "
        f"{'p95 ms':>7} {'p99 ms':>7} {'2xx':>5} {'4xx':>4} {'other':>5} {'p99/50ms':>8}"
    )
    for (name, mode), (answers, seconds) in measured.items():
        done = result(answers, seconds)
        status = Counter(a.status // 100 for a in answers)
        print(
            f"{names[name]:<30} {mode:<12} {done.requests:>8} {done.rate:>7.1f} "
            f"{done.percentile(50):>7.1f} {done.percentile(95):>7.1f} {done.percentile(99):>7.1f} "
            f"{status[2]:>5} {status[4]:>4} {done.requests - status[2] - status[4]:>5} "
            f"{done.percentile(99) / TARGET_P99_MS:>7.2f}x"
        )
    print("latencies of the 2xx answers; the 4xx (malformed prices) counted apart")
    print("\nthe check by kind of request (p50 / p99 ms, every answer):")
    for (name, mode), (answers, seconds) in measured.items():
        if name != "check":
            continue
        kinds = {
            kind: result([a for a in answers if a.kind == kind], seconds, every=True)
            for kind in MIX
        }
        print(
            f"  {mode:<12} "
            + ", ".join(
                f"{kind} {r.percentile(50):.0f} / {r.percentile(99):.0f}"
                for kind, r in kinds.items()
                if r.requests
            )
        )
    answers = measured[("check", "closed loop")][0]
    said: dict[str, Counter[str]] = {kind: Counter() for kind in MIX}
    history = []
    for a in answers:
        if a.status != 200:
            said[a.kind][f"HTTP {a.status}"] += 1
            continue
        for verdict in json.loads(a.body)["verdicts"]:
            why = "" if verdict["verdict"] == "accepted" else f" ({', '.join(verdict['reasons'])})"
            said[a.kind][verdict["verdict"] + (why if a.kind == "unknown" else "")] += 1
            if a.kind == "usual" and "history_n" in verdict["details"]:
                history.append(verdict["details"]["history_n"])
    print("what it answered (closed loop):")
    for kind, counts in said.items():
        if counts:
            print(f"  {kind:<11} " + ", ".join(f"{what} {n}" for what, n in counts.most_common()))
    if history:
        print(
            f"each usual price judged against a median of {statistics.median(history):.0f} "
            "earlier prices of its series (details.history_n)"
        )


# ---- the weekly brief -----------------------------------------------------------------------


def time_briefs(
    url: str, provinces: list[str], week: Week, fetches: int
) -> dict[tuple[str, str], list[tuple[float, int, int]]]:
    """(seconds, status, bytes) of each fetch of ``/prices/live`` and of each format of the
    brief, per province: every one once, then again, ``fetches`` times."""
    timed: dict[tuple[str, str], list[tuple[float, int, int]]] = {}
    with httpx.Client(base_url=url, timeout=600) as client:
        for _ in range(fetches):
            for province in provinces:
                for what in ("/prices/live", *FORMATS):
                    if what == "/prices/live":
                        path, params = f"{API}/prices/live", {"region": province}
                    else:
                        path = f"{API}/reports/brief"
                        params = {"province": province, "week": str(week), "format": what}
                    began = time.perf_counter()
                    answer = client.get(path, params=params)
                    seconds = time.perf_counter() - began
                    timed.setdefault((province, what), []).append(
                        (seconds, answer.status_code, len(answer.content))
                    )
    return timed


def report_briefs(
    timed: dict[tuple[str, str], list[tuple[float, int, int]]], conf: Conf, week: Week
) -> None:
    print(
        f"\nweekly brief of {week} ({week.start} – {week.end}) on a freshly started API; "
        "each fetch in turn, the first cold (the API's first brief loads its renderers)"
    )
    print(
        f"{'province':<14} {'markets':>7} {'what':<13} {'first s':>8} {'warm s':>8} "
        f"{'bytes':>9} {'status':>6}"
    )

    def seconds(province: str, what: str) -> tuple[float, float | None]:
        """The first fetch's seconds, and the median of the others' (None: no other)."""
        times = [t for t, _, _ in timed[(province, what)]]
        return times[0], statistics.median(times[1:]) if len(times) > 1 else None

    def shown(value: float | None) -> str:
        return f"{'–':>8}" if value is None else f"{value:>8.3f}"

    for province in dict.fromkeys(p for p, _ in timed):
        markets = sum(m.province == province for m in conf.physical_markets)
        for what in ("/prices/live", *FORMATS):
            first, warm = seconds(province, what)
            statuses = "/".join(sorted({str(s) for _, s, _ in timed[(province, what)]}))
            size = timed[(province, what)][-1][2]
            print(
                f"{province:<14} {markets:>7} {what:<13} {shown(first)} {shown(warm)} "
                f"{size:>9,} {statuses:>6}"
            )
        (pdf, pdf_warm), (xlsx, xlsx_warm) = seconds(province, "pdf"), seconds(province, "xlsx")
        live, live_warm = seconds(province, "/prices/live")
        both = [(pdf + xlsx, live, "cold")]
        if pdf_warm is not None and xlsx_warm is not None and live_warm is not None:
            both.append((pdf_warm + xlsx_warm, live_warm, "warm"))
        print(
            f"{'':<14} {'':>7} {'pdf + xlsx':<13} {shown(both[0][0])} "
            f"{shown(both[1][0] if len(both) > 1 else None)}  target {TARGET_BRIEF_S:.0f} s: "
            + ", ".join(f"{b / TARGET_BRIEF_S:.2f}x {how}" for b, _, how in both)
            + "; /prices/live: "
            + ", ".join(f"{b / v:,.0f}x {how}" for b, v, how in both)
        )


def read(
    settings: Settings, table: Table, columns: list[str], where: ds.Expression
) -> pd.DataFrame:
    """``columns`` of the rows of ``table`` where ``where`` holds, read with delta-rs."""
    dataset = DeltaTable(table.path(settings)).to_pyarrow_dataset()
    return dataset.to_table(columns=columns, filter=where).to_pandas()


def expected_figures(
    settings: Settings, conf: Conf, province: str, week: Week, commodity: str
) -> dict[str, object]:
    """What the brief of ``province`` and ``week`` should say of ``commodity``, from the tables
    (docs/briefs.md, "What it says"): COLUMNS' numbers, the movers as (market, change), the
    headlines."""
    markets = ds.field("market_id").isin(
        [m for m, v in conf.markets.items() if v.province == province]
    )
    start, end = (pa.scalar(at, pa.timestamp("us", tz="UTC")) for at in week.bounds(settings.tz))
    good = ds.field("commodity") == commodity
    daily = read(settings, GOLD_PRICE_DAILY, ["market_id", "date", "close"], good & markets)

    def closes(w: Week) -> pd.DataFrame:
        return daily[(daily["date"] >= w.start) & (daily["date"] <= w.end)]

    level = closes(week)["close"].mean()
    by_market = [closes(w).groupby("market_id")["close"].mean() for w in (week, week.before())]
    moved = (by_market[0] / by_market[1] - 1).dropna()
    movers = moved.reindex(moved.abs().sort_values(ascending=False).index[:MOVERS])

    def within(column: str, first: object, last: object) -> ds.Expression:
        return (ds.field(column) >= first) & (ds.field(column) <= last)

    forecasts = read(
        settings,
        GOLD_FORECASTS,
        ["series_id", "origin_date", "surge_prob"],
        (ds.field("region") == province) & good & within("origin_date", week.start, week.end),
    )
    newest = forecasts["origin_date"] == forecasts.groupby("series_id")["origin_date"].transform(
        "max"
    )
    cover = read(
        settings,
        GOLD_SUPPLY_REGION_DAILY,
        ["date", "days_of_cover"],
        (ds.field("province") == province)
        & good
        & within("date", week.start, week.end)
        & ds.field("days_of_cover").is_valid(),
    ).sort_values("date")
    in_week = (ds.field("observed_at") >= start) & (ds.field("observed_at") < end)
    accepted = read(
        settings,
        SILVER_PRICES,
        ["event_id"],
        markets & good & within("observed_date", week.start, week.end),
    )
    refused = read(
        settings,
        SILVER_QUARANTINE,
        ["event_id"],
        (ds.field("event_type") == "price")
        & markets
        & (ds.field("subject") == commodity)
        & in_week,
    )
    held = set(read(settings, SILVER_HOLDS, ["event_id"], markets & in_week)["event_id"])
    ids = set(accepted["event_id"]) | set(refused["event_id"])
    reports = len(ids)
    news = read(
        settings,
        SILVER_NEWS,
        ["published_at", "title", "source", "mentions"],
        (ds.field("published_at") >= start)
        & (ds.field("published_at") < end)
        & ((ds.field("province") == province) | ds.field("province").is_null()),
    )
    named = news[news["mentions"].map(lambda ms: any(m["commodity"] == commodity for m in ms))]
    headlines = named.sort_values(["published_at", "title"], ascending=[False, True])
    return {
        "level": level,
        "change_week": level / closes(week.before())["close"].mean() - 1,
        "change_year": level / closes(week.year_before())["close"].mean() - 1,
        "surge_prob": forecasts.loc[newest, "surge_prob"].max() if newest.any() else None,
        "days_of_cover": cover["days_of_cover"].iloc[-1] if len(cover) else None,
        "reports": reports,
        "held_share": len(ids & held) / reports if reports else None,
        "quarantined_share": len(ids & (set(refused["event_id"]) - held)) / reports
        if reports
        else None,
        "movers": [(conf.markets[m], float(c)) for m, c in movers.items()],
        "headlines": [f"{r.title} ({r.source})" for r in headlines.head(HEADLINES).itertuples()],
    }


def pdf_text(body: bytes) -> str | None:
    """The PDF's text, its white space made single spaces (None without pypdf, a package of the
    tests: ``./run.sh setup --dev``)."""
    try:
        from pypdf import PdfReader
    except ImportError:
        return None
    return " ".join(" ".join(p.extract_text() for p in PdfReader(io.BytesIO(body)).pages).split())


def check_figures(
    url: str, settings: Settings, conf: Conf, province: str, week: Week, commodity: str
) -> list[str]:
    """The figures of ``commodity`` in the brief (CSV, XLSX, PDF, in English) that differ from
    ``expected_figures``; prints how many were compared."""
    want = expected_figures(settings, conf, province, week, commodity)
    name = conf.commodities[commodity].label("en")
    files = {}
    with httpx.Client(base_url=url, timeout=600) as client:
        for fmt in FORMATS:
            params = {"province": province, "week": str(week), "format": fmt, "lang": "en"}
            files[fmt] = client.get(f"{API}/reports/brief", params=params).content
    movers = "; ".join(
        f"{m.name} ({m.city}) {percent(c, 'en', signed=True)}" for m, c in want["movers"]
    )
    numbers = [c for c in COLUMNS if c not in ("commodity", "unit")]
    problems: list[str] = []
    compared: Counter[str] = Counter()

    def same(fmt: str, figure: str, got: object, expected: object) -> None:
        compared[fmt] += 1
        if expected is None or isinstance(expected, str):
            ok = got in ("", None) if expected is None else got == expected
        else:
            ok = got not in ("", None) and bool(np.isclose(float(got), float(expected), rtol=1e-9))
        if not ok:
            problems.append(f"{fmt} {figure}: {got!r}, the tables say {expected!r}")

    rows = {
        r[word("commodity", "en")]: r for r in csv.DictReader(io.StringIO(files["csv"].decode()))
    }
    row = rows.get(name, {})
    for c in numbers:
        same("csv", c, row.get(word(c, "en")), want[c])
    same("csv", "movers", row.get(word("movers", "en")), movers)
    same("csv", "headlines", row.get(word("headlines", "en")), "; ".join(want["headlines"]))

    book = load_workbook(io.BytesIO(files["xlsx"]))
    table, notes = book.worksheets[0], book.worksheets[1]
    header = [cell.value for cell in table[2]]
    cells = {
        r[0]: dict(zip(header, r, strict=True))
        for r in table.iter_rows(min_row=3, values_only=True)
    }
    for c in numbers:
        same("xlsx", c, cells.get(name, {}).get(word(c, "en")), want[c])
    noted = {r[0]: r for r in notes.iter_rows(min_row=2, values_only=True)}
    same("xlsx", "movers", noted.get(name, (None, None, None))[1], movers)
    same("xlsx", "headlines", noted.get(name, (None, None, None))[2], "\n".join(want["headlines"]))

    text = pdf_text(files["pdf"])
    printed: dict[str, Callable[[object], str]] = {
        "level": rupiah,
        "change_week": lambda v: percent(v, "en", signed=True),
        "change_year": lambda v: percent(v, "en", signed=True),
        "days_of_cover": lambda v: decimal(v, "en"),
        "reports": str,
    }
    if text is not None:
        shown = [printed.get(c, lambda v: percent(v, "en"))(want[c]) for c in numbers]
        shown += [f"{m.name} ({m.city}) {percent(c, 'en', signed=True)}" for m, c in want["movers"]]
        for figure in [*shown, *want["headlines"]]:
            same("pdf", figure, figure if figure in text else "(not in its text)", figure)
    print(
        f"\nfigures of {name} in the brief of {province}, {week}, against the tables read with "
        f"delta-rs: {', '.join(f'{fmt} {n}' for fmt, n in compared.items())} compared, "
        f"{len(problems)} differ" + ("" if text is not None else " (PDF not read: no pypdf)")
    )
    return problems


# ---- main -----------------------------------------------------------------------------------


def main() -> int:
    p = argparse.ArgumentParser(
        prog="./run.sh bench on_demand", description=__doc__.splitlines()[0]
    )
    p.add_argument("--requests", type=int, default=2000, help="check requests per mode")
    p.add_argument("--rate", type=float, default=50.0, help="offered req/s of the open loop")
    p.add_argument("--briefs", type=int, default=3, help="fetches of each brief (first cold)")
    p.add_argument("--provinces", nargs="+", default=PROVINCES)
    p.add_argument("--days", type=int, default=DAYS, help="days of history (>= 380)")
    p.add_argument("--reports-per-day", type=int, default=1, help="of each series in silver")
    args = p.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-on-demand-") as tmp:
        key, entry = mint_key("bench-partner", "ingest")
        keys = json.dumps([entry.model_dump()])
        settings, env = throwaway(tmp, {"SMARTMARKET_API__KEYS": keys})
        conf = conf_of(settings)
        now = datetime.now(UTC)
        began = time.monotonic()
        written = write_lakehouse(settings, args.days, args.reports_per_day, now)
        print(f"lakehouse, {written.describe()} ({time.monotonic() - began:.0f} s)")
        print(f"server: {' '.join(Api(settings).command()[1:])}")
        print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")

        rng = np.random.default_rng(7)
        checks = check_calls(written.daily, conf, args.requests, now, settings.tz, rng)
        targets = {  # the catalogue is open to read; an ingest key may not read (403)
            "check": (checks, {HEADER: key, "Content-Type": "application/json"}),
            "baseline": ([Call("baseline", "GET", BASELINE)] * args.requests, {}),
        }
        with server(settings, env) as url:
            measured = measure(url, targets, args.rate)
        report_check(
            measured,
            {"check": f"POST {CHECK[len(API) :]}", "baseline": f"GET {BASELINE[len(API) :]}"},
        )

        week = Week.of(now.astimezone(settings.tz).date()).before()
        with server(settings, env) as url:  # a fresh API: its first brief is cold
            timed = time_briefs(url, args.provinces, week, args.briefs)
            report_briefs(timed, conf, week)
            problems = check_figures(url, settings, conf, FIGURES[0], week, FIGURES[1])
        for problem in problems:
            print(f"  DIFFERS {problem}")
    print(
        f"\ntargets: the check's p99 <= {TARGET_P99_MS:.0f} ms; a province's brief, PDF + XLSX, "
        f"<= {TARGET_BRIEF_S:.0f} s, every figure equal to the tables'"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
