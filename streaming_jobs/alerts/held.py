"""Alerts of held prices: a move silver holds for confirmation alerts at once where it is
critical, once confirmed otherwise — once per series and day, one alert where every market of
a province moved."""

from __future__ import annotations

from datetime import datetime

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from lakehouse.catalog.alert_rules import AlertRules, Message, rule_ids
from lakehouse.catalog.events import HoldStatus
from lakehouse.io.spark import literal_map
from streaming_jobs.alerts.episodes import severity_rank
from streaming_jobs.alerts.prices import move_threshold, reference_medians
from streaming_jobs.alerts.signals import key_column, level, signal_fields

#: the rules of a held price's alert (``held_move_alerts``): unconfirmed, then confirmed
HELD_UNCONFIRMED, HELD_CONFIRMED = HELD_RULES = rule_ids(section="held_move")


#: what became of a held price, in the words of its alert (``{outcome_id}``, ``{outcome_en}``):
#: by decision, else held
_OUTCOMES = {
    HoldStatus.held.value: Message(id="ditahan", en="held"),
    HoldStatus.not_confirmed.value: Message(id="tidak terkonfirmasi", en="not confirmed"),
    HoldStatus.rejected.value: Message(id="ditolak operator", en="rejected by an operator"),
}


#: how a released price was confirmed (``{confirmation_id}``, ``{confirmation_en}``): by
#: ``{supports}`` reports at its level (the rule), else by an operator
_CONFIRMATIONS = {
    "rule": Message(
        id="dikonfirmasi {supports} laporan di level baru",
        en="confirmed by {supports} reports at the new level",
    ),
    "operator": Message(id="dirilis operator", en="released by an operator"),
}


#: the columns of a held price's last state (``held_prices``)
_HELD = ("event_id", "market_id", "region", "commodity", "price", "move", "hold_reasons")
_HELD += ("observed_at", "held_at", "decision", "decided_by", "supports", "note", "decided_at")


def held_prices(holds: DataFrame, decisions: DataFrame | None, tz: str) -> DataFrame:
    """The last state of each held price (``lakehouse.domain.validation.holds``): ``holds`` are
    ``silver.holds`` rows, ``decisions`` ``silver.hold_decisions`` rows (an event's newest
    decision wins over its hold; None: there are none yet); with the local ``date`` it was
    observed on and its ``province`` (its market's, where a price names none)."""
    undecided = {"decision": "string", "decided_by": "string", "supports": "bigint"}
    undecided |= {"note": "string", "decided_at": "timestamp"}
    held = holds.select(
        *[F.lit(None).cast(undecided[c]).alias(c) if c in undecided else c for c in _HELD]
    )
    if decisions is not None:
        newest = Window.partitionBy("event_id").orderBy(F.col("decided_at").desc())
        ended = (
            decisions.select(*_HELD)
            .withColumn("_newest", F.row_number().over(newest))
            .where(F.col("_newest") == 1)
            .drop("_newest")
        )
        held = ended.unionByName(held.join(ended.select("event_id"), "event_id", "left_anti"))
    return held.withColumn("date", F.to_date(F.from_utc_timestamp("observed_at", tz))).withColumn(
        "province", _province()
    )


#: a held move's scope: every market of a province follows the day's real change together
MOVE_SCOPE = ("province", "commodity", "date")


def _province() -> Column:
    """The province of a held price or its alert: its ``region``, else its market."""
    return F.coalesce("region", "market_id")


def held_groups(touched: DataFrame, held: DataFrame) -> DataFrame:
    """The held prices (``held_prices`` of ``silver.holds`` and ``silver.hold_decisions``) of
    every province × commodity × day ``touched`` (``held_prices`` of a batch's holds and
    decisions) has a price in: a held move's alert is recomputed from all of its prices."""
    return held.join(touched.select(*MOVE_SCOPE).distinct(), list(MOVE_SCOPE), "left_semi")


def held_alert_days(alerts: DataFrame) -> DataFrame:
    """Stored ``gold.alerts`` rows of held prices with the local ``date`` and ``observed_at`` of
    their price (from ``details``): the ``earlier`` of ``held_move_alerts``."""
    observed = F.get_json_object("details", "$.observed_at")
    return alerts.select(
        "alert_id",
        "market_id",
        _province().alias("province"),
        "commodity",
        F.to_date(F.get_json_object("details", "$.date")).alias("date"),
        F.coalesce(F.to_timestamp(observed), F.col("opened_at")).alias("observed_at"),
        F.col("value").alias("price"),
    )


def _moves(held: DataFrame, earlier: DataFrame) -> DataFrame:
    """Which alert each of the ``held`` prices (``alert_id``, ``MOVE_SCOPE``, ``observed_at``,
    ``price``, ``change`` from the reference, the commodity's ``threshold``) belongs to: pairs of
    its ``alert_id`` and the ``head``, the alert id of the price that opened its move. Walking a
    province × commodity × day in time, a price heads a move when ``earlier``
    (``held_alert_days``) already alerted it, or when it moved ``threshold`` from the reference
    and — if a move was alerted there that day — another ``threshold`` from the price that
    opened it; a price that moved ``threshold`` within the move belongs to it. So a move every
    market of a province follows (the day's real change) is one alert, not one per market."""
    day = list(MOVE_SCOPE)
    point = ["observed_at", "alert_id", "price", "stored", "matters", "threshold"]
    earlier = earlier.join(held.select(*day).distinct(), day, "left_semi")
    stored = earlier.select("alert_id", F.lit(True).alias("stored"))
    before = (
        earlier.join(held.select("alert_id"), "alert_id", "left_anti")
        .withColumn("stored", F.lit(True))
        .withColumn("matters", F.lit(False))
        .withColumn("threshold", F.lit(None).cast("double"))
    )
    mine = (
        held.join(stored, "alert_id", "left")
        .withColumn("stored", F.coalesce("stored", F.lit(False)))
        .withColumn("matters", F.coalesce(F.abs("change") >= F.col("threshold"), F.lit(False)))
    )
    pair = "array<struct<alert_id:string,head:string>>"
    start = F.struct(
        F.lit(None).cast("double").alias("last"),
        F.lit(None).cast("string").alias("head"),
        F.array().cast(pair).alias("pairs"),
    )

    def state(last: Column, head: Column, seen: Column, x: Column) -> Column:
        joined = F.struct(x["alert_id"].alias("alert_id"), head.alias("head"))
        pairs = F.concat(seen["pairs"], F.array(joined))
        return F.struct(last.alias("last"), head.alias("head"), pairs.alias("pairs"))

    def step(seen: Column, x: Column) -> Column:
        again = seen["last"].isNull() | (F.abs(x["price"] / seen["last"] - 1) >= x["threshold"])
        heads = state(x["price"], x["alert_id"], seen, x)
        joins = state(seen["last"], seen["head"], seen, x)
        return (
            F.when(x["stored"] | (x["matters"] & again), heads)
            .when(x["matters"] & seen["head"].isNotNull(), joins)
            .otherwise(seen)
        )

    points = F.array_sort(F.collect_list(F.struct(*point)))
    return (
        before.select(*day, *point)
        .unionByName(mine.select(*day, *point))
        .groupBy(*day)
        .agg(F.aggregate(points, start, step)["pairs"].alias("pairs"))
        .select(F.inline("pairs"))
    )


def _words(words: dict[str, Message], language: str, key: Column) -> Column:
    return literal_map({k: getattr(m, language) for k, m in words.items()})[key]


def held_move_alerts(
    held: DataFrame, daily: DataFrame, earlier: DataFrame, rules: AlertRules
) -> DataFrame:
    """The alerts of held prices (``held_prices``; all of a province × commodity × day's,
    ``held_groups``), in the columns of ``episodes``, one per held move: its prices moved the
    commodity's ``moves`` threshold from the median close of the days before
    (``reference_medians`` of ``daily``, ``gold.price_daily``), in one province × commodity and
    day; a move again that day only when a price moved that much from the one that opened the
    last (``_moves``; ``earlier``: the stored alerts of held prices, ``held_alert_days``). The
    alert is the opening price's (its market, value, reference), with how many ``markets`` the
    move has in ``details``. While a price of the move is held: ``price_unconfirmed``, open —
    only from ``held_move.unconfirmed_severity`` on; once one is released: ``price_confirmed``,
    open; when every one was not confirmed or rejected: ``price_unconfirmed``, resolved (a move
    below that severity that was never confirmed: no alert)."""
    r = rules.price_move
    alert_id = F.substring(F.sha2(F.concat(F.lit("held|"), "event_id"), 256), 1, 32)
    judged = (
        reference_medians(held, daily, rules)
        .withColumn("alert_id", alert_id)
        .withColumn("change", F.col("price") / F.col("reference") - 1)
        .withColumn("threshold", move_threshold(rules))
    )
    released = F.col("decision") == HoldStatus.released.value
    moves = (
        judged.join(_moves(judged, earlier), "alert_id")
        .groupBy(F.col("head").alias("alert_id"))
        .agg(
            F.max(released).alias("confirmed"),
            F.max(F.col("decision").isNull()).alias("pending"),
            F.countDistinct("market_id").alias("markets"),
            F.max(F.coalesce("decided_at", "held_at")).alias("last_at"),
            F.max("decided_at").alias("last_decided_at"),
            F.min(F.when(released, F.struct("decided_at", "decided_by", "supports"))).alias(
                "release"
            ),
        )
    )
    severity = level(F.abs(F.col("change")), r.warning, r.critical)
    rows = judged.join(moves, "alert_id").withColumn(  # each move's alert: its opening price's
        "severity", F.coalesce(severity, F.lit("warning"))
    )
    confirmed, pending = F.col("confirmed"), F.col("pending")
    unconfirmed_from = severity_rank(F.lit(rules.held_move.unconfirmed_severity))
    rows = rows.where(confirmed | (severity_rank(F.col("severity")) >= unconfirmed_from))
    outcome = F.when(pending, F.lit(HoldStatus.held.value)).otherwise(F.col("decision"))
    operator = F.col("release.decided_by").startswith("operator:")
    by = F.when(operator, "operator").otherwise("rule")
    supports = F.coalesce(F.col("release.supports").cast("string"), F.lit("?"))
    fields = signal_fields(
        market=F.col("market_id"),
        commodity=F.col("commodity"),
        value=F.col("price"),
        reference=F.col("reference"),
        change=F.col("change"),
        **{
            f"{name}_{language}": word
            for language in ("id", "en")
            for name, word in (
                ("outcome", _words(_OUTCOMES, language, outcome)),
                (
                    "confirmation",
                    F.replace(_words(_CONFIRMATIONS, language, by), F.lit("{supports}"), supports),
                ),
            )
        },
    )
    return rows.select(
        "alert_id",
        F.when(confirmed, HELD_CONFIRMED).otherwise(HELD_UNCONFIRMED).alias("rule"),
        key_column("market_id", "commodity").alias("alert_key"),
        "severity",
        F.when(pending | confirmed, "open").otherwise("resolved").alias("status"),
        F.col("held_at").alias("opened_at"),
        F.when(~pending & ~confirmed, F.col("last_decided_at")).alias("resolved_at"),
        F.col("last_at").alias("last_firing_at"),
        F.col("price").alias("value"),
        "reference",
        "market_id",
        "region",
        "commodity",
        F.lit("price").alias("metric"),
        F.to_json(
            F.struct(
                "event_id",
                "move",
                "change",
                "date",
                "observed_at",
                "hold_reasons",
                "decision",
                "note",
                "decided_at",
                "markets",
            )
        ).alias("details"),
        fields.alias("fields"),
    )


def held_news(rows: DataFrame, stored: DataFrame, since: datetime) -> DataFrame:
    """The ``held_move_alerts`` rows still news: their price observed at or after ``since``
    (``step.news_since``), or their alert already stored (``stored``: ``gold.alerts`` rows),
    which then follows its price's decision whenever that comes."""
    observed = F.to_timestamp(F.get_json_object("details", "$.observed_at"))
    known = stored.select("alert_id", F.lit(True).alias("_stored"))
    return (
        rows.join(known, "alert_id", "left")
        .where((observed >= F.lit(since)) | F.col("_stored").isNotNull())
        .drop("_stored")
    )
