"""The alert rows as stored: the messages of ``conf/alerts.yaml`` rendered in each language,
with the names people read (ids stay in the columns and fields)."""

from __future__ import annotations

import re
from functools import cache

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from lakehouse.catalog.alert_rules import Message
from lakehouse.catalog.conf import Conf
from lakehouse.catalog.tables import GOLD_ALERTS
from lakehouse.io.spark import literal_map

_PLACEHOLDER = re.compile(r"\{(\w+)(?::(\w+))?\}")


def _grouped(x: Column, decimals: int, language: str) -> Column:
    """``x`` with thousands grouped and ``decimals`` decimals: ``40.216,5`` in Indonesian,
    ``40,216.5`` in English."""
    text = F.format_number(x, decimals)
    return F.translate(text, ",.", ".,") if language == "id" else text


#: the ``{x:kind}`` of a number with that many decimals (``formatted``)
DECIMALS = {"d0": 0, "d1": 1, "d2": 2}


def formatted(x: Column, kind: str, language: str) -> Column:
    """A number of a message in its language's way: ``rp`` rupiah (``Rp 40.216``, Indonesian
    grouping in both languages: how prices are written), ``pct`` a fraction as a percentage
    (``-3,5 %`` / ``-3.5%``), ``spct`` the same with its sign (``+3,5 %`` / ``+3.5%``), ``d0``,
    ``d1``, ``d2`` a number with that many decimals (``1.100``, ``2,4`` / ``1,100``, ``2.4``)."""
    if kind in DECIMALS:
        return _grouped(x, DECIMALS[kind], language)
    if kind == "rp":
        return F.concat(F.lit("Rp "), _grouped(F.round(x), 0, "id"))
    if kind in ("pct", "spct"):
        number = _grouped(x * 100, 1, language)
        if kind == "spct":
            number = F.concat(F.when(x * 100 >= 0.05, "+").otherwise(""), number)
        return F.concat(number, F.lit(" %" if language == "id" else "%"))
    raise ValueError(f"unknown number format {{...:{kind}}} in an alert message")


def _render(
    template: str, fields: Column, language: str, names: dict[str, Column] | None = None
) -> Column:
    """A message template in ``language`` with its ``{placeholders}`` filled from ``names`` (the
    words people read, ``_people_words``) or else from the ``fields`` map; ``{x:kind}`` formats
    the number ``x`` (``formatted``)."""
    names = names or {}
    parts: list[Column] = []
    pieces = _PLACEHOLDER.split(template)
    for i in range(0, len(pieces), 3):
        parts.append(F.lit(pieces[i]))
        if i + 1 < len(pieces):
            name, kind = pieces[i + 1], pieces[i + 2]
            value = names.get(name, fields[name])
            if kind:
                value = formatted(value.cast("double"), kind, language)
            parts.append(F.coalesce(value, F.lit("?")))
    return F.concat(*parts)


def alert_rows(
    alerts: DataFrame, messages: dict[str, Message], conf: Conf, now: Column
) -> DataFrame:
    """``episodes`` as rows of ``gold.alerts``: the rules' ``messages`` in Indonesian and English
    rendered with the names of ``conf``'s reference data, ``updated_at`` = ``now`` (the MERGE
    only keeps it where something else changed)."""
    made = {
        f"message_{language}": _messages_in(
            language, tuple((rule, getattr(m, language)) for rule, m in messages.items())
        )
        for language in ("id", "en")
    }
    made["updated_at"] = now.cast("timestamp")
    return _with_people_words(alerts, conf).select(
        *[made[c].alias(c) if c in made else c for c in GOLD_ALERTS.columns]
    )


@cache
def _messages_in(language: str, templates: tuple[tuple[str, str], ...]) -> Column:
    """The message column of ``language`` for the rules' ``templates`` ((rule, template)
    pairs), built once per set of templates: its few thousand py4j calls took seconds of every
    gold batch. A Column names its inputs and binds to no DataFrame, so one serves every batch."""
    names = {
        "market": F.col(f"{WORDS}market"),
        "province": F.col(f"{WORDS}province"),
        "location": F.col(f"{WORDS}location_{language}"),
        "commodity": F.col(f"{WORDS}commodity_{language}"),
    }
    out = F.lit(None).cast("string")
    for rule, template in templates:
        out = F.when(
            F.col("rule") == rule, _render(template, F.col("fields"), language, names)
        ).otherwise(out)
    return out


#: the columns that name an alert for its whole life (its id, what it is about, when it opened)
_FIXED = ("alert_id", "market_id", "region", "commodity", "metric", "opened_at", "alert_key")


#: what makes a recomputed alert row different from the stored one (``updated_at`` aside)
CHANGED = " OR ".join(
    f"(t.{c} IS DISTINCT FROM s.{c})"
    for c in GOLD_ALERTS.columns
    if c not in (*_FIXED, "updated_at")
)


#: prefix of the columns ``_with_people_words`` adds (``alert_rows`` does not keep them)
WORDS = "_words_"


def _with_people_words(alerts: DataFrame, conf: Conf) -> DataFrame:
    """``alerts`` with the names its messages show: the market's name, the province (the
    market's, or the alert's region), the location (``Market.location``) and the commodity's
    catalogue name in each language (``id``, ``en``), from the alert's ids. An id the reference
    data does not know is shown as it is."""
    markets = tuple(
        (m.market_id, m.name, m.province, m.location("id"), m.location("en"))
        for m in conf.markets.values()
    )
    labels = tuple((c.id, c.label("id"), c.label("en")) for c in conf.commodities.values())
    return alerts.withColumns(dict(_people_words(markets, labels)))


@cache
def _people_words(
    markets: tuple[tuple[str, str, str, str, str], ...], labels: tuple[tuple[str, str, str], ...]
) -> tuple[tuple[str, Column], ...]:
    """The columns of ``_with_people_words`` for these ``markets`` (id, name, province, location in
    Indonesian and in English) and commodity ``labels`` (id, Indonesian, English), built once
    (``_messages_in``: a literal map is two py4j calls an entry, ~10⁵ at the national count)."""
    market_name = literal_map({market_id: name for market_id, name, *_ in markets})
    province = literal_map({market_id: p for market_id, _, p, *_ in markets})
    market = F.coalesce(market_name[F.col("market_id")], F.col("fields")["market"])
    words = {
        f"{WORDS}market": market,
        f"{WORDS}province": F.coalesce(province[F.col("market_id")], F.col("region"), F.lit("")),
    }
    for i, language in enumerate(("id", "en")):
        location = literal_map({market_id: where[i] for market_id, _, _, *where in markets})
        words[f"{WORDS}location_{language}"] = F.coalesce(
            location[F.col("market_id")], F.concat_ws(", ", market, F.col("region"))
        )
        label = literal_map({c[0]: c[i + 1] for c in labels})
        words[f"{WORDS}commodity_{language}"] = F.coalesce(
            label[F.col("commodity")], F.col("fields")["commodity"]
        )
    return tuple(words.items())
