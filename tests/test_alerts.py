"""Alert rules on small frames (chispa): each rule fires on a crafted series and stays quiet on
a calm one; the lifecycle (one alert per episode, resolution, cool-down) is exact."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest
from chispa import assert_df_equality
from deltalake import DeltaTable
from pyspark.sql import functions as F

from lakehouse.catalog.conf import Conf
from lakehouse.catalog.reference import successor_markets
from lakehouse.catalog.tables import GOLD_ALERTS
from lakehouse.config.settings import PROJECT_ROOT, SAMPLE_PRICES, ConfigError
from lakehouse.domain.metrics import REFERENCE_DAYS
from lakehouse.io.delta_io import SparkLake
from lakehouse.io.spark import literal_map, local_frame
from streaming_jobs.alerts.episodes import episodes
from streaming_jobs.alerts.held import (
    HELD_RULES,
    held_alert_days,
    held_move_alerts,
    held_news,
    held_prices,
)
from streaming_jobs.alerts.messages import alert_rows
from streaming_jobs.alerts.prices import (
    anomaly_signals,
    forecast_signals,
    price_changes,
    price_move_signals,
    region_move_signals,
    surge_signals,
    without_copies,
)
from streaming_jobs.alerts.sensors import (
    quality_signals,
    sensor_alarm,
    sensor_alarms,
    sensor_signals,
)
from streaming_jobs.alerts.signals import SIGNAL_COLUMNS
from streaming_jobs.alerts.step import PRICE_RULES, news_since, upsert_alerts
from streaming_jobs.alerts.supply import entity_places, shared_provinces, stock_cover_signals
from streaming_jobs.row_kinds import KindCounts, RowKind
from tests.shipped import SHIPPED

TZ = "Asia/Jakarta"
RULES = SHIPPED.alerts
DAY0 = date(2025, 3, 1)
T0 = datetime(2025, 3, 1, tzinfo=UTC)
DAILY = "market_id string, commodity string, region string, date date, close double"
SIGNALS = (
    "rule string, alert_key string, at timestamp, severity string, value double, "
    "reference double, market_id string, region string, commodity string, metric string, "
    "details string, fields map<string,string>"
)


def day_at(day: date) -> datetime:
    """Local midnight of ``day`` (WIB, UTC+7) in UTC: the evaluation time of a daily point."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(hours=7)


def daily(spark, closes: dict[tuple[str, str], list[float]], region: str = "DKI Jakarta"):
    rows = [
        (market, commodity, region, DAY0 + timedelta(days=i), close)
        for (market, commodity), series in closes.items()
        for i, close in enumerate(series)
    ]
    return local_frame(spark, rows, DAILY)


def opened(df) -> list[tuple]:
    """(rule, key, severity, status, opened_at, resolved_at) of each alert, sorted."""
    out = episodes(df, RULES.cooldown_hours()).select(
        "rule", "alert_key", "severity", "status", "opened_at", "resolved_at"
    )
    return sorted(tuple(r) for r in out.collect())


def naive(at: datetime | None) -> datetime | None:
    return at.astimezone(UTC).replace(tzinfo=None) if at else None


CALM = [100.0, 101.0, 99.0, 100.0, 102.0, 100.0, 99.0, 101.0, 100.0, 100.0, 98.0, 101.0]


# ---- price moves ------------------------------------------------------------------------------


def test_the_rule_table_is_the_one_list_of_rules():
    """Messages, families and cool-downs are all derived from one table of rules; each rule
    has a message in both languages, and every rule but a held move's has a cool-down."""
    ids = [rule.id for rule in RULES.table()]
    assert len(ids) == len(set(ids))
    assert list(RULES.messages()) == ids
    assert all(m.id and m.en for m in RULES.messages().values())
    assert [r for family in RULES.families().values() for r in family] == ids
    assert set(ids) - set(RULES.cooldown_hours()) == set(HELD_RULES)
    assert set(PRICE_RULES) | set(HELD_RULES) == set(RULES.families()["prices"])


def test_the_rule_table_of_the_docs_names_each_rule_and_what_it_reads():
    """docs/alerts.md's table of rules: every rule in its first column, and in its last every
    table the rule's signals are computed from (``Rule.reads``)."""
    doc = (PROJECT_ROOT / "docs" / "alerts.md").read_text(encoding="utf-8")
    rows = [line.split(" | ") for line in doc.splitlines() if line.startswith("| `")]
    for rule in RULES.table():
        row = next((r for r in rows if f"`{rule.id}`" in r[0]), None)
        assert row is not None, f"{rule.id} is not in docs/alerts.md's table of rules"
        for table in rule.reads:
            assert f"`{table.qualified_name}`" in row[-1], (rule.id, table.qualified_name)


def test_price_changes_compare_with_the_median_of_the_previous_days(spark):
    r = RULES.price_move
    closes = [100.0, 300.0, 100.0, 100.0, 130.0]
    out = price_changes(daily(spark, {("IP-001", "beras"): closes}), RULES).orderBy("date")
    refs = [row.reference for row in out.collect()]
    # fewer than min_reference_points earlier closes: no reference
    assert refs[: r.min_reference_points] == [None] * r.min_reference_points
    assert refs[3] == 100.0  # median of 100, 300, 100
    assert refs[4] == 100.0  # median of 100, 300, 100, 100


def test_price_spike_fires_and_resolves_calm_series_stays_quiet(spark):
    w, c = RULES.price_move.warning, RULES.price_move.critical
    spiky = [*CALM[:8], 100 * (1 + w + 0.01), 100 * (1 + c + 0.05), 100.0, 100.0]
    drop = [*CALM[:8], 100 * (1 - w - 0.02), 100.0, 100.0, 100.0]
    changes = price_changes(
        daily(
            spark,
            {("IP-001", "beras"): spiky, ("IP-003", "beras"): CALM, ("IP-004", "cabai"): drop},
        ),
        RULES,
    )
    alerts = opened(price_move_signals(changes, RULES, TZ))
    assert alerts == [
        (
            "price_drop",
            "IP-004|cabai",
            "warning",
            "resolved",
            naive(day_at(DAY0 + timedelta(days=8))),
            naive(day_at(DAY0 + timedelta(days=9))),
        ),
        (
            "price_spike",
            "IP-001|beras",
            "critical",  # escalated on day 9: the alert keeps the highest severity
            "resolved",
            naive(day_at(DAY0 + timedelta(days=8))),
            naive(day_at(DAY0 + timedelta(days=10))),
        ),
    ]


def test_a_sustained_spike_is_one_open_alert(spark):
    w = RULES.price_move.warning
    high = 100 * (1 + w + 0.02)
    # three high days: the 7-day median stays low enough for all of them to fire
    closes = [*CALM[:8], high, high, high]
    changes = price_changes(daily(spark, {("IP-001", "beras"): closes}), RULES)
    alerts = opened(price_move_signals(changes, RULES, TZ))
    assert alerts == [
        (
            "price_spike",
            "IP-001|beras",
            "warning",
            "open",
            naive(day_at(DAY0 + timedelta(days=8))),
            None,
        )
    ]


def test_price_messages_name_market_commodity_and_province_ids_stay_in_fields(spark):
    """A market's move names the market and its province; a province average's, the average
    alone, in each language ("Rata-rata Provinsi Bali", not "…Provinsi Bali, Bali")."""
    w = RULES.price_move.warning
    closes = [400 * c for c in [*CALM[:8], 100 * (1 + w + 0.02)]]
    series = {("IP-004", "cabai_merah"): closes, ("PROV-51", "cabai_merah"): closes}
    changes = price_changes(daily(spark, series), RULES)
    out = episodes(price_move_signals(changes, RULES, TZ), RULES.cooldown_hours())
    rows = {r.market_id: r for r in alert_rows(out, RULES.messages(), SHIPPED, F.lit(T0)).collect()}
    average = rows["PROV-51"]
    assert average.message_id.startswith("Harga Cabai Merah Besar di Rata-rata Provinsi Bali naik")
    assert average.message_en.startswith("Big red chili price at Bali province average up")
    row = rows["IP-004"]
    # one language per message, each with its own number format (rupiah grouped the
    # Indonesian way in both)
    assert row.message_id == (
        "Harga Cabai Merah Besar di Pasar Jembatan Merah, DKI Jakarta naik 17,0 % menjadi "
        "Rp 46.800 (median 7 hari Rp 40.000)"
    )
    assert row.message_en == (
        "Big red chili price at Pasar Jembatan Merah, DKI Jakarta up 17.0% to Rp 46.800 "
        "(7-day median Rp 40.000)"
    )
    assert (row.market_id, row.commodity) == ("IP-004", "cabai_merah")
    fields = out.where(F.col("market_id") == "IP-004").first().fields
    assert (fields["market"], fields["commodity"]) == ("IP-004", "cabai_merah")


def test_a_move_of_a_series_a_new_province_takes_from_its_parent_alerts_once(spark):
    """Papua Selatan, Tengah and Pegunungan (formed from Papua in 2022) publish Papua's
    average where no source has their own: Papua's chili drop alerts for Papua alone; a new
    province whose own series moves otherwise alerts for itself."""
    w = RULES.price_move.warning
    papua = [*CALM[:8], 100 * (1 - w - 0.03)]
    own = [*CALM[:8], 100 * (1 - w - 0.05)]
    closes = {
        ("PROV-91", "cabai_merah"): papua,
        ("PROV-93", "cabai_merah"): papua,  # the copy
        ("PROV-95", "cabai_merah"): papua,  # the copy
        ("PROV-94", "cabai_merah"): own,  # a series of its own
        ("PROV-94", "beras"): papua,  # Papua has no rice series: its own
    }
    assert successor_markets(SHIPPED.provinces)["PROV-93"] == "PROV-91"
    copied_from = literal_map(successor_markets(SHIPPED.provinces))
    changes = without_copies(price_changes(daily(spark, closes, "Papua"), RULES), copied_from)
    keys = {a[1] for a in opened(price_move_signals(changes, RULES, TZ))}
    assert keys == {"PROV-91|cabai_merah", "PROV-94|cabai_merah", "PROV-94|beras"}


def test_supply_messages_name_the_entities_and_a_lone_holder_s_province_alerts_once(spark):
    """A warehouse short of rice: one alert, naming it and its province, with the days of
    cover in each language's numbers; its province alerts of its own only where more than one
    entity holds the commodity (Jawa Barat's sugar: two holders, both short)."""
    rows = [
        ("WH-1271-BULOG", "beras", "Sumatera Utara", 2.5),
        ("WH-3212-BULOG", "gula_pasir", "Jawa Barat", 2.0),
        ("DS-3273-BDG", "gula_pasir", "Jawa Barat", 2.6),
    ]
    stock = local_frame(
        spark,
        [(e, c, p, DAY0, cover) for e, c, p, cover in rows],
        "entity_id string, commodity string, province string, date date, days_of_cover double",
    )
    regions = local_frame(
        spark,
        [("Sumatera Utara", "beras", DAY0, 2.5), ("Jawa Barat", "gula_pasir", DAY0, 2.3)],
        "province string, commodity string, date date, days_of_cover double",
    )
    names = literal_map({"WH-1271-BULOG": "Gudang Bulog Medan"})  # the others: by their id
    supply = RULES.supply
    signals = stock_cover_signals(entity_places(stock, names), supply, TZ, "entity").unionByName(
        stock_cover_signals(shared_provinces(regions, stock), supply, TZ, "province")
    )
    out = alert_rows(
        episodes(signals, RULES.cooldown_hours()), RULES.messages(), SHIPPED, F.lit(T0)
    )
    messages = {r.alert_key: (r.message_id, r.message_en) for r in out.collect()}
    assert set(messages) == {
        "entity:WH-1271-BULOG|beras",
        "entity:WH-3212-BULOG|gula_pasir",
        "entity:DS-3273-BDG|gula_pasir",
        "province:Jawa Barat|gula_pasir",
    }
    assert messages["entity:WH-1271-BULOG|beras"] == (
        "Stok Beras Medium di Gudang Bulog Medan (Sumatera Utara) cukup untuk 2,5 hari "
        "(batas 3,0 hari)",
        "Medium rice stock at Gudang Bulog Medan (Sumatera Utara) covers 2.5 days "
        "(threshold 3.0 days)",
    )
    assert "di Jawa Barat cukup untuk 2,3 hari" in messages["province:Jawa Barat|gula_pasir"][0]


def test_region_move_fires_when_most_markets_rise_together(spark):
    rise = RULES.moves.default  # beras: the default threshold of a move that matters
    up = [*CALM[:8], 100 * (1 + rise + 0.02)]
    flat = CALM[:9]
    markets = ["IP-001", "IP-003", "IP-004", "IP-005"]
    together = {(m, "beras"): up for m in markets}
    alone = {(m, "beras"): (up if m == "IP-001" else flat) for m in markets}
    both = daily(spark, together).unionByName(daily(spark, alone, region="Jawa Barat"))
    alerts = opened(region_move_signals(price_changes(both, RULES), RULES, TZ))
    at = naive(day_at(DAY0 + timedelta(days=8)))
    assert alerts == [("region_move", "DKI Jakarta|beras", "critical", "open", at, None)]


# ---- held price moves (price_unconfirmed / price_confirmed) ----------------------------------

HELD = (
    "event_id string, market_id string, region string, commodity string, price double, "
    "move double, hold_reasons array<string>, observed_at timestamp, held_at timestamp"
)
DECIDED = f"{HELD}, decision string, decided_by string, supports bigint, note string, " + (
    "decided_at timestamp"
)
STORED = (
    "alert_id string, market_id string, region string, commodity string, value double, "
    "opened_at timestamp, details string"
)
#: the province of the markets of these tests that are not in DKI Jakarta
PROVINCES = {"IP-059": "Jawa Barat"}
#: the shipped rules with every held move alerting while held: the lifecycle tests' moves are
#: below ``price_move.critical``, where the shipped rules wait for a confirmation
AT_ONCE = RULES.model_copy(
    update={"held_move": RULES.held_move.model_copy(update={"unconfirmed_severity": "warning"})}
)


def held_alerts(spark, closes, holds, decisions=(), earlier=None, rules=AT_ONCE):
    """The gold.alerts rows of ``holds`` (market, commodity, price, observed at) and
    ``decisions`` (the same and the decision, decided_by, supports) against the daily
    ``closes`` ((market, commodity) → {date: close}); ``earlier``: stored alert rows."""
    rows = [
        (m, c, PROVINCES.get(m, "DKI Jakarta"), day, close)
        for (m, c), by_day in closes.items()
        for day, close in by_day.items()
    ]

    def held(m, c, price, at):
        province = PROVINCES.get(m, "DKI Jakarta")
        return (f"{m}|{c}|{at:%Y%m%dT%H%M}", m, province, c, price, 0.0, ["iqr"], at, at)

    fresh = local_frame(spark, [held(*h) for h in holds], HELD)
    ended = local_frame(
        spark,
        [
            (*held(m, c, p, at), d, by, n, "", at + timedelta(hours=1))
            for m, c, p, at, d, by, n in decisions
        ],
        DECIDED,
    )
    stored = earlier if earlier is not None else local_frame(spark, [], STORED)
    out = held_move_alerts(
        held_prices(fresh, ended, TZ),
        local_frame(spark, rows, DAILY),
        held_alert_days(stored),
        rules,
    )
    return alert_rows(out, rules.messages(), SHIPPED, F.lit(T0))


def stored_row(alert) -> tuple:
    """An alert as ``gold.alerts`` stores the columns ``held_alert_days`` reads."""
    return (
        alert.alert_id,
        alert.market_id,
        alert.region,
        alert.commodity,
        alert.value,
        alert.opened_at,
        alert.details,
    )


def week_of(level: float, day: date) -> dict[date, float]:
    """The closes of the ``REFERENCE_DAYS`` before ``day``, all at ``level``."""
    return {day - timedelta(days=d): level for d in range(1, REFERENCE_DAYS + 1)}


def test_a_held_move_alerts_once_per_series_and_day_and_again_only_after_another_move(spark):
    day = DAY0 + timedelta(days=10)
    at = datetime(day.year, day.month, day.day, 3, tzinfo=UTC)  # 10:00 WIB
    beras, calm = ("IP-001", "beras"), ("IP-003", "beras")
    closes = {beras: week_of(40_000.0, day), calm: week_of(40_000.0, day)}
    threshold = RULES.moves.default
    assert threshold == 0.10  # the shipped default: a move of 10 % or more matters
    holds = [
        (*beras, 44_400.0, at),  # +11 % from the 7-day median: alerts
        (*beras, 44_800.0, at + timedelta(hours=1)),  # +12 %, but < 10 % from 44.400: no
        (*beras, 49_000.0, at + timedelta(hours=2)),  # +10.4 % from 44.400: alerts again
        (*beras, 49_400.0, at + timedelta(hours=3)),  # < 10 % from 49.000: no
        (*calm, 42_800.0, at),  # +7 %: ordinary noise, no alert
        (*calm, 38_000.0, at + timedelta(hours=1)),  # -5 %: no alert
    ]
    rows = held_alerts(spark, closes, holds).orderBy("value").collect()
    assert [(r.rule, r.market_id, r.value, r.reference) for r in rows] == [
        ("price_unconfirmed", "IP-001", 44_400.0, 40_000.0),
        ("price_unconfirmed", "IP-001", 49_000.0, 40_000.0),
    ]
    assert {r.severity for r in rows} == {"warning"}  # below price_move.critical

    # a later batch: the stored alerts count; the first one confirmed stays (now confirmed),
    # a new report of the day near the level last alerted does not alert again
    stored = local_frame(
        spark,
        [stored_row(r) for r in rows],
        STORED,
    )
    later = held_alerts(
        spark,
        closes,
        [(*beras, 50_000.0, at + timedelta(hours=5))],
        decisions=[(*beras, 44_400.0, at, "released", "rule:confirmation", 2)],
        earlier=stored,
    ).collect()
    assert [(r.rule, r.status, r.value) for r in later] == [("price_confirmed", "open", 44_400.0)]
    assert later[0].alert_id == rows[0].alert_id  # the same alert, one row for its life

    # the next day is a new day: a price still 10 % above its 7-day median alerts once more
    next_day = day + timedelta(days=1)
    next_at = at + timedelta(days=1)
    next_closes = {beras: {**week_of(40_000.0, next_day)}}
    again = held_alerts(spark, next_closes, [(*beras, 44_400.0, next_at)], earlier=stored).collect()
    assert [(r.rule, r.value) for r in again] == [("price_unconfirmed", 44_400.0)]


def test_a_held_move_below_critical_alerts_only_once_confirmed(spark):
    """The shipped rules: a move of price_move.critical or more alerts while held; a smaller
    one only once confirmed, and never when the evidence does not confirm it."""
    assert RULES.held_move.unconfirmed_severity == "critical"
    day = DAY0 + timedelta(days=10)
    at = datetime(day.year, day.month, day.day, 3, tzinfo=UTC)
    rice, chili = ("IP-001", "beras"), ("IP-003", "cabai_merah")
    closes = {rice: week_of(40_000.0, day), chili: week_of(40_000.0, day)}
    holds = [(*rice, 46_000.0, at), (*chili, 56_000.0, at)]  # +15 %: warning; +40 %: critical
    rows = held_alerts(spark, closes, holds, rules=RULES).collect()
    assert [(r.rule, r.market_id, r.severity, r.status) for r in rows] == [
        ("price_unconfirmed", "IP-003", "critical", "open")
    ]

    confirmed = [(*rice, 46_000.0, at, "released", "rule:confirmation", 2)]
    rows = held_alerts(spark, closes, [], decisions=confirmed, rules=RULES).collect()
    assert [(r.rule, r.severity, r.status) for r in rows] == [
        ("price_confirmed", "warning", "open")
    ]
    back = [(*rice, 46_000.0, at, "not_confirmed", "rule:confirmation", 0)]
    assert held_alerts(spark, closes, [], decisions=back, rules=RULES).collect() == []


def test_a_move_every_market_of_a_province_follows_is_one_alert(spark):
    """The day's real move, followed by the markets of a province, is one alert there (the
    first price's, with how many markets moved); a market of another province alerts on its
    own, and so does a price that moved another 10 % from the one that opened the move. The
    alert is confirmed once any of its prices is, resolved once all were decided against."""
    day = DAY0 + timedelta(days=10)
    at = datetime(day.year, day.month, day.day, 3, tzinfo=UTC)  # 10:00 WIB
    jakarta, bogor = ("IP-001", "IP-003", "IP-004"), "IP-059"
    closes = {(m, "beras"): week_of(40_000.0, day) for m in (*jakarta, bogor, "IP-005")}
    holds = [
        (m, "beras", 44_400.0 + 100 * n, at + timedelta(minutes=n)) for n, m in enumerate(jakarta)
    ]
    holds += [
        (bogor, "beras", 44_600.0, at),
        ("IP-005", "beras", 49_200.0, at + timedelta(hours=1)),
    ]
    rows = held_alerts(spark, closes, holds).orderBy("value").collect()
    assert [(r.region, r.market_id, r.value, r.rule, r.status) for r in rows] == [
        ("DKI Jakarta", "IP-001", 44_400.0, "price_unconfirmed", "open"),
        ("Jawa Barat", bogor, 44_600.0, "price_unconfirmed", "open"),
        ("DKI Jakarta", "IP-005", 49_200.0, "price_unconfirmed", "open"),  # +10.8 % from 44.400
    ]
    assert [json.loads(r.details)["markets"] for r in rows] == [3, 1, 1]

    # a later batch: the opening price is not confirmed, another market's is released — the
    # province's move is confirmed, under the same alert
    stored = local_frame(spark, [stored_row(r) for r in rows], STORED)
    first, second = jakarta[0], jakarta[1]
    decided = [
        (first, "beras", 44_400.0, at, "not_confirmed", "rule:confirmation", 0),
        (second, "beras", 44_500.0, at + timedelta(minutes=1), "released", "rule:confirmation", 2),
    ]
    pending = [(jakarta[2], "beras", 44_600.0, at + timedelta(minutes=2))]
    later = held_alerts(spark, closes, pending, decisions=decided, earlier=stored).collect()
    assert [(r.alert_id, r.rule, r.status) for r in later] == [
        (rows[0].alert_id, "price_confirmed", "open")
    ]
    assert "(dikonfirmasi 2 laporan di level baru)" in later[0].message_id

    # every price of the move decided against: resolved, when the last decision came
    against = [
        (first, "beras", 44_400.0, at, "not_confirmed", "rule:confirmation", 0),
        (jakarta[2], "beras", 44_600.0, at + timedelta(minutes=2), "rejected", "operator:a", 0),
    ]
    ended = held_alerts(spark, closes, [], decisions=against, earlier=stored).collect()
    assert [(r.alert_id, r.rule, r.status) for r in ended] == [
        (rows[0].alert_id, "price_unconfirmed", "resolved")
    ]
    assert ended[0].resolved_at.replace(tzinfo=UTC) == at + timedelta(minutes=2, hours=1)


def test_held_move_messages_in_indonesian_and_english_with_rupiah(spark):
    day = DAY0 + timedelta(days=10)
    at = datetime(day.year, day.month, day.day, 3, tzinfo=UTC)
    chili = ("IP-004", "cabai_merah")
    closes = {chili: week_of(41_661.0, day)}
    decided = [(*chili, 48_216.0, at, "released", "rule:confirmation", 10)]
    row = held_alerts(spark, closes, [], decisions=decided).first()
    assert row.message_id == (
        "Perubahan harga Cabai Merah Besar di Pasar Jembatan Merah, DKI Jakarta terkonfirmasi: "
        "Rp 48.216, +15,7 % dari median 7 hari Rp 41.661 (dikonfirmasi 10 laporan di level baru)"
    )
    assert row.message_en == (
        "Confirmed Big red chili price move at Pasar Jembatan Merah, DKI Jakarta: Rp 48.216, "
        "+15.7% from the 7-day median Rp 41.661 (confirmed by 10 reports at the new level)"
    )
    dropped = [(*chili, 35_000.0, at, "not_confirmed", "rule:confirmation", 0)]
    row = held_alerts(spark, closes, [], decisions=dropped).first()
    assert (row.rule, row.status) == ("price_unconfirmed", "resolved")
    assert "(tidak terkonfirmasi): Rp 35.000, -16,0 % dari median 7 hari Rp 41.661" in (
        row.message_id
    )
    assert "(not confirmed): Rp 35.000, -16.0% from the 7-day median Rp 41.661" in row.message_en


def test_a_replay_of_real_daily_prices_raises_few_confirmed_move_alerts(spark):
    """The shipped real series (Bank Indonesia's PIHPS, 2024-2025), each day whose price moved
    3 % or more from the day before held and confirmed — as the default stack holds them. The
    code before issue 53 alerted every one of them (one price_confirmed per held price); now only
    moves of the commodity's threshold from the 7-day median do."""
    real = pd.read_csv(SAMPLE_PRICES)
    real["date"] = pd.to_datetime(real["observed_at"]).dt.date
    real = real.sort_values(["commodity", "date"])
    closes = {
        ("IP-001", c): dict(zip(g["date"], g["price"], strict=True))
        for c, g in real.groupby("commodity")
    }
    day_move = real["price"] / real.groupby("commodity")["price"].shift() - 1
    moved = real[day_move.abs() >= 0.03]
    decided = [
        (
            "IP-001",
            c,
            p,
            datetime(d.year, d.month, d.day, 3, tzinfo=UTC),
            "released",
            "rule:confirmation",
            2,
        )
        for c, p, d in zip(moved["commodity"], moved["price"], moved["date"], strict=True)
    ]
    alerts = held_alerts(spark, closes, [], decisions=decided).collect()
    before, after = len(decided), len(alerts)
    assert before > 150  # the old code: one confirmed-move alert per held price
    assert after <= 25  # now: the moves of 10 % (chilies: 15 %) from the 7-day median (19)
    assert {a.rule for a in alerts} == {"price_confirmed"}
    for a in alerts:
        threshold = RULES.moves.commodities.get(a.commodity, RULES.moves.default)
        assert abs(a.value / a.reference - 1) >= threshold


# ---- forecasts and anomalies ------------------------------------------------------------------


def test_forecast_risk_fires_when_the_week_ahead_is_well_above_today(spark):
    w = RULES.forecast_risk.warning
    today = daily(spark, {("IP-001", "beras"): [100.0], ("IP-003", "beras"): [100.0]})
    rows = [
        (market, "beras", DAY0, h, 100.0 + (h * (w * 100 + 1) / 7 if market == "IP-001" else h))
        for market in ("IP-001", "IP-003")
        for h in range(1, 8)
    ]
    forecasts = local_frame(
        spark,
        rows,
        "market_id string, commodity string, origin_date date, horizon int, yhat double",
    )
    alerts = opened(forecast_signals(forecasts, today, RULES, TZ))
    assert alerts == [
        ("forecast_risk", "IP-001|beras", "warning", "open", naive(day_at(DAY0)), None)
    ]


def test_anomaly_score_above_threshold(spark):
    c = RULES.anomaly_score.critical
    rows = [
        ("IP-001", "beras", DAY0, "temporal", c + 0.01, 100.0, "far from its trend"),
        ("IP-001", "beras", DAY0 + timedelta(days=1), "temporal", 0.1, 100.0, ""),
        ("IP-003", "beras", DAY0, "geographic", 0.2, 100.0, ""),
    ]
    anomalies = local_frame(
        spark,
        rows,
        "market_id string, commodity string, date date, kind string, score double, "
        "price double, explanation string",
    )
    alerts = opened(anomaly_signals(anomalies, RULES, TZ))
    assert alerts == [
        (
            "anomaly_score",
            "IP-001|beras|temporal",
            "critical",
            "resolved",
            naive(day_at(DAY0)),
            naive(day_at(DAY0 + timedelta(days=1))),
        )
    ]


def test_surge_risk_fires_once_while_a_surge_is_likely(spark):
    w = RULES.surge_risk.warning
    probs = {  # per market, the surge_prob of the forecasts made on DAY0, DAY0 + 1, DAY0 + 2,
        # and the threshold its classifier reached its precision at (None: the rule's)
        "IP-001": ([w + 0.1, w + 0.2, w - 0.3], None),  # likely twice, then calm: one alert
        "IP-003": ([0.1, 0.2, 0.1], None),  # never likely: quiet
        "IP-004": ([None, None, None], None),  # not computed (an older model): no verdict
        "IP-005": ([0.3, 0.1, 0.1], 0.25),  # below the rule's, above its own: warned
        "IP-006": ([w + 0.1, w + 0.2, w + 0.1], 0.9),  # above the rule's, below its own: quiet
    }
    rows = [
        (market, "cabai_merah", DAY0 + timedelta(days=d), h, 50_000.0, p, warn_at)
        for market, (by_day, warn_at) in probs.items()
        for d, p in enumerate(by_day)
        for h in range(1, 8)
    ]
    forecasts = local_frame(
        spark,
        rows,
        "market_id string, commodity string, origin_date date, horizon int, yhat double, "
        "surge_prob double, surge_warn_at double",
    )
    signals = surge_signals(forecasts, RULES, 0.1, TZ)
    first, second = day_at(DAY0), day_at(DAY0 + timedelta(days=1))
    assert opened(signals) == [
        (
            "surge_risk",
            "IP-001|cabai_merah",
            "warning",
            "resolved",
            naive(first),
            naive(day_at(DAY0 + timedelta(days=2))),
        ),
        ("surge_risk", "IP-005|cabai_merah", "warning", "resolved", naive(first), naive(second)),
    ]
    fields = signals.where("severity IS NOT NULL").orderBy("at", "alert_key").first()["fields"]
    assert float(fields["value"]) == pytest.approx(w + 0.1) and float(fields["rise"]) == 0.1
    assert float(fields["warn_at"]) == w
    # forecasts written before the column: the rule's threshold
    older = surge_signals(forecasts.drop("surge_warn_at"), RULES, 0.1, TZ)
    assert [a[1] for a in opened(older)] == ["IP-001|cabai_merah", "IP-006|cabai_merah"]


# ---- sensors and data quality -----------------------------------------------------------------


def hourly(spark, market: str, metric: str, values: list[float]):
    rows = [
        (
            market,
            metric,
            datetime(2025, 3, 1, 8) + timedelta(hours=i),
            float(v),
            v - 1.0,
            v + 1.0,
            6,
        )
        for i, v in enumerate(values)
    ]
    return local_frame(
        spark,
        rows,
        "market_id string, metric string, hour timestamp, mean double, min double, max double, "
        "count long",
    )


def test_sensor_rules_fire_on_heat_humidity_and_crowds_and_not_on_a_normal_day(spark):
    temp, hum, crowd = (RULES.sensors.rules[n] for n in ("temperature", "humidity", "crowding"))
    capacity = RULES.capacity.markets.get("IP-003", RULES.capacity.default)
    frames = [
        hourly(spark, "IP-001", "temperature_c", [28, 29, 28]),  # a normal day
        hourly(spark, "IP-001", "humidity_pct", [80, 85, 82]),
        hourly(spark, "IP-001", "crowd_count", [300, 800, 400]),
        hourly(spark, "IP-003", "temperature_c", [28, temp.critical + 1, 28]),
        hourly(spark, "IP-003", "humidity_pct", [80, hum.warning + 0.5, hum.warning + 1]),
        # the hour's peak (mean + 1) over the market's capacity
        hourly(spark, "IP-003", "crowd_count", [300, capacity * crowd.warning, 400]),
    ]
    signals = sensor_signals(frames[0].unionByName(frames[1]).unionByName(frames[2])
                             .unionByName(frames[3]).unionByName(frames[4])
                             .unionByName(frames[5]), RULES, TZ)  # fmt: skip
    local = [datetime(2025, 3, 1, 1 + i) for i in range(3)]  # 08:00 WIB = 01:00 UTC
    assert opened(signals) == [
        ("crowding", "IP-003|crowd_count", "warning", "resolved", local[1], local[2]),
        ("humidity", "IP-003|humidity_pct", "warning", "open", local[1], None),
        ("temperature", "IP-003|temperature_c", "critical", "resolved", local[1], local[2]),
    ]


def test_readings_that_alone_reach_a_warning_level_are_counted(spark):
    """``sensor_alarm``: a reading that alone reaches a rule's warning level (a crowd against its
    market's capacity) — a silver batch without one has no alarm (``sensor_alarms``)."""
    temp, crowd = RULES.sensors.rules["temperature"], RULES.sensors.rules["crowding"]
    hub = max(RULES.capacity.markets, key=RULES.capacity.markets.get)  # IP-001: 3 000 people
    crowded = RULES.capacity.default * crowd.warning
    calm = [
        ("record", None, None, None, None),  # a batch's Kafka records carry no reading
        ("event", "sensor", "IP-003", "temperature_c", temp.warning - 0.1),
        ("event", "sensor", hub, "crowd_count", crowded),  # under the hub's own capacity
        ("event", "price", "IP-003", None, None),
    ]
    alarming = [
        ("event", "sensor", "IP-003", "temperature_c", temp.warning),
        ("event", "sensor", "IP-003", "crowd_count", crowded),
    ]
    schema = "kind string, event_type string, market_id string, metric string, value double"

    def counted(rows: list[tuple]) -> KindCounts:
        batch = local_frame(spark, rows, schema).withColumn("reasons", F.array())
        return KindCounts.of(batch, sensor_alarm(RULES))

    assert counted(calm).alarms == 0 and not counted(calm).urgent
    assert counted(calm + alarming).alarms == 2 and not counted(calm + alarming).urgent
    assert counted(calm).count(RowKind.EVENT, "sensor", True) == 2


def test_a_batch_s_readings_of_an_hour_at_a_rule_s_level_are_an_alarm(spark):
    """``sensor_alarms``: where a batch's own readings of a market's hour reach a rule's level
    (the hour's mean temperature, its peak crowd against the market's capacity) — the only
    batches after which an hour's alert can newly open or escalate."""
    temp, crowd = RULES.sensors.rules["temperature"], RULES.sensors.rules["crowding"]
    hub = max(RULES.capacity.markets, key=RULES.capacity.markets.get)  # IP-001: 3 000 people
    crowded = RULES.capacity.default * crowd.warning
    at = datetime(2026, 11, 30, 19, 40, tzinfo=UTC)  # 02:40 WIB, on 1 December
    calm = [
        ("IP-003", "temperature_c", temp.warning + 3, at),  # a mean below the warning
        ("IP-003", "temperature_c", temp.warning - 4, at),
        ("IP-003", "humidity_pct", 60.0, at),
        (hub, "crowd_count", crowded, at),  # under the hub's own capacity
    ]
    alarming = [
        ("IP-002", "temperature_c", temp.critical, at),
        ("IP-002", "temperature_c", temp.warning, at),  # the mean: a warning
        ("IP-003", "crowd_count", crowded - 1, at + timedelta(minutes=20)),  # 03:00 WIB
        ("IP-003", "crowd_count", crowded * crowd.critical, at + timedelta(minutes=25)),
    ]
    schema = "market_id string, metric string, value double, observed_at timestamp"

    def alarms(rows: list[tuple]) -> set[str]:
        found = sensor_alarms(local_frame(spark, rows, schema), RULES, TZ).collect()
        return {row["alarm"] for row in found}

    assert alarms(calm) == set()
    assert alarms(calm + alarming) == {
        "2026-11-30 19:00:00|temperature|IP-002|temperature_c|warning",
        "2026-11-30 20:00:00|crowding|IP-003|crowd_count|critical",
    }


def test_held_prices_decisions_and_quarantines_are_urgent_accepted_rows_are_not():
    accepted = {
        ("record", None, True): 5,
        ("event", "price", True): 3,
        ("event", "sensor", True): 2,
    }
    assert not KindCounts(accepted).urgent
    for more in (("hold", "price", True), ("decision", None, True), ("event", "price", False)):
        assert KindCounts({**accepted, more: 1}).urgent, more


def test_data_quality_fires_on_a_suspect_device_within_its_window(spark):
    r = RULES.data_quality
    n = r.min_received
    bad = int(n * (r.critical + 0.05)) + 1
    step = timedelta(minutes=r.window_minutes / 2)
    rows = [
        (0, T0, "dev", "good-1", n, 0),
        (1, T0 + step, "dev", "good-1", n, 1),
        (0, T0, "dev", "bad-1", n, 0),
        (1, T0 + step, "dev", "bad-1", n, 2 * bad),  # window: 2n received, 2·bad quarantined
        (2, T0 + 3 * step, "dev", "bad-1", n, 0),  # the bad batch left the window: calm
    ]
    quality = local_frame(
        spark,
        rows,
        "batch_id long, batch_time timestamp, source string, device_id string, received long, "
        "quarantined long",
    )
    assert opened(quality_signals(quality, RULES)) == [
        (
            "data_quality",
            "dev|bad-1",
            "critical",
            "resolved",
            naive(T0 + step),
            naive(T0 + 3 * step),
        )
    ]


# ---- lifecycle --------------------------------------------------------------------------------


def signals(spark, points: list[tuple[datetime, str | None]], rule: str = "temperature"):
    rows = [
        (rule, "IP-001|temperature_c", at, severity, 1.0 + i, 35.0, "IP-001", None, None,
         "temperature_c", "{}", {"market": "IP-001", "value": str(1.0 + i), "reference": "35"})
        for i, (at, severity) in enumerate(points)
    ]  # fmt: skip
    return local_frame(spark, rows, SIGNALS)


def test_cool_down_reopens_the_same_alert_and_later_opens_a_new_one(spark):
    cooldown = timedelta(hours=RULES.sensors.cooldown_hours)
    h = timedelta(hours=1)
    fire, calm = "warning", None
    points = [
        (T0, calm),
        (T0 + h, fire),  # opens alert A
        (T0 + 2 * h, calm),  # resolves A
        (T0 + 2 * h + cooldown, fire),  # within the cool-down: A again (same id), critical
        (T0 + 3 * h + cooldown, calm),  # resolves A
        (T0 + 4 * h + 2 * cooldown, fire),  # after the cool-down: alert B, still open
    ]
    out = episodes(signals(spark, points), RULES.cooldown_hours())
    rows = alert_rows(out, RULES.messages(), SHIPPED, F.lit(T0)).orderBy("opened_at")
    expected = local_frame(
        spark,
        [
            ("warning", "resolved", T0 + h, T0 + 3 * h + cooldown, T0 + 2 * h + cooldown, 4.0),
            ("warning", "open", T0 + 4 * h + 2 * cooldown, None, T0 + 4 * h + 2 * cooldown, 6.0),
        ],
        "severity string, status string, opened_at timestamp, resolved_at timestamp, "
        "last_firing_at timestamp, value double",
    )
    assert_df_equality(rows.select(*expected.columns), expected, ignore_nullable=True)
    ids = [r.alert_id for r in rows.collect()]
    assert len(set(ids)) == 2
    # the same signals always give the same ids (exactly-once MERGEs rely on it)
    again = episodes(signals(spark, points), RULES.cooldown_hours()).orderBy("opened_at")
    assert [r.alert_id for r in again.collect()] == ids


def test_severity_is_the_highest_and_value_the_latest_firing_point(spark):
    h = timedelta(hours=1)
    points = [(T0, "warning"), (T0 + h, "critical"), (T0 + 2 * h, "warning")]
    row = alert_rows(
        episodes(signals(spark, points), RULES.cooldown_hours()),
        RULES.messages(),
        SHIPPED,
        F.lit(T0),
    ).first()
    assert (row.severity, row.status, row.value) == ("critical", "open", 3.0)
    where = "Pasar Induk Kramat Jati, DKI Jakarta"  # IP-001's name and province
    assert row.message_en == f"Temperature at {where} 3.0 °C (limit 35.0 °C): cold-chain risk"
    assert row.message_id == f"Suhu di {where} 3,0 °C (batas 35,0 °C): risiko rantai dingin"
    assert row.market_id == "IP-001" and row.alert_key == "IP-001|temperature_c"  # ids kept


def test_signal_frames_share_one_schema(spark):
    """The rules' signals are unioned by position: same columns, in order, of the same types."""
    changes = price_changes(daily(spark, {("IP-001", "beras"): CALM}), RULES)
    price, region = price_move_signals(changes, RULES, TZ), region_move_signals(changes, RULES, TZ)
    assert tuple(price.columns) == SIGNAL_COLUMNS
    assert price.dtypes == region.dtypes


def test_invalid_rules_file_is_a_config_error(tmp_path):
    (tmp_path / "alerts.yaml").write_text("price_move: {warning: 0.5, critical: 0.1}\n")
    with pytest.raises(ConfigError, match="invalid alert rules file"):
        _ = Conf(tmp_path).alerts


# ---- news, not history --------------------------------------------------------------------------


def test_only_news_raises_an_alert_and_a_stored_one_follows_its_rule(spark, settings, tmp_path):
    """``upsert_alerts`` with the default ``alerts.max_age_hours``: an alert whose last firing
    point is older is not stored (history loaded or replayed); a younger one is; an alert
    already stored takes its changes whatever their age."""
    own = settings.model_copy(
        update={"paths": settings.paths.model_copy(update={"lakehouse_root": tmp_path})}
    )
    now = datetime.now(UTC).replace(microsecond=0)
    since = news_since(own, now)
    assert since == now - timedelta(hours=48)  # the shipped default

    def row(alert_id: str, last: datetime, status: str = "open") -> dict:
        return {c: None for c in GOLD_ALERTS.columns} | {
            "alert_id": alert_id,
            "rule": "price_spike",
            "severity": "warning",
            "status": status,
            "opened_at": last,
            "last_firing_at": last,
            "updated_at": now,
        }

    def write(rows: list[dict]) -> None:
        upsert_alerts(SparkLake(spark, own), local_frame(spark, rows, GOLD_ALERTS.schema), now)

    def stored() -> dict[str, str]:
        table = DeltaTable(str(GOLD_ALERTS.path(own))).to_pandas()
        return dict(zip(table["alert_id"], table["status"], strict=True))

    write([row("news", now - timedelta(hours=1)), row("kept", since + timedelta(minutes=1))])
    write([row("history", since - timedelta(days=30))])
    assert stored() == {"news": "open", "kept": "open"}
    write([row("kept", since - timedelta(days=1), status="resolved")])  # a stored one changes
    assert stored() == {"news": "open", "kept": "resolved"}


def test_a_held_price_of_history_alerts_only_once_stored(spark):
    """``held_news``: a held move observed before the news horizon raises no new alert, but an
    alert stored while it was news follows its price's decision."""
    since = T0 + timedelta(days=3)
    details = '{{"observed_at": "{}"}}'
    rows = local_frame(
        spark,
        [
            ("old", details.format((since - timedelta(days=2)).isoformat())),
            ("old-stored", details.format((since - timedelta(days=2)).isoformat())),
            ("new", details.format((since + timedelta(hours=1)).isoformat())),
        ],
        "alert_id string, details string",
    )
    stored = local_frame(spark, [("old-stored",)], "alert_id string")
    kept = held_news(rows, stored, since).select("alert_id").collect()
    assert sorted(r.alert_id for r in kept) == ["new", "old-stored"]
