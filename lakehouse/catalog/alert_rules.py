"""The thresholds, cool-downs and messages of the early-warning rules: ``alerts.yaml`` of the
configuration folder (read once by ``lakehouse.catalog.conf.Conf``), evaluated by
``streaming_jobs.alerts``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, Field, PositiveFloat, model_validator

from lakehouse.catalog.events import Metric
from lakehouse.catalog.tables import (
    GOLD_ANOMALIES,
    GOLD_DATA_QUALITY,
    GOLD_FORECASTS,
    GOLD_NEWS_SIGNAL,
    GOLD_PRICE_DAILY,
    GOLD_SENSOR_HOURLY,
    GOLD_SHIPMENTS,
    GOLD_STOCK_DAILY,
    GOLD_SUPPLY_REGION_DAILY,
    SILVER_HOLD_DECISIONS,
    SILVER_HOLDS,
    Table,
)

#: the days before a day whose closes make its reference median (``lakehouse.domain.metrics``)
REFERENCE_DAYS = 7


@dataclass(frozen=True)
class Rule:
    """A row of the rule table: an alert rule's id, the family an alert subscription names it
    by, the section of ``alerts.yaml`` that holds its levels, cool-down and message (a dotted
    path of ``AlertRules``), and the tables its signals are computed from."""

    id: str
    family: str
    section: str
    reads: tuple[Table, ...]


#: a held price's alert: the holds, their decisions, the closes it is judged against
HELD_INPUTS = (SILVER_HOLDS, SILVER_HOLD_DECISIONS, GOLD_PRICE_DAILY)

#: every alert rule whose id is fixed, in the order people read them; the sensor rules are
#: named in ``alerts.yaml`` itself (``sensors.rules``: ``AlertRules.table`` adds them)
RULES = (
    Rule("price_spike", "prices", "price_move", (GOLD_PRICE_DAILY,)),
    Rule("price_drop", "prices", "price_move", (GOLD_PRICE_DAILY,)),
    Rule("price_unconfirmed", "prices", "held_move", HELD_INPUTS),
    Rule("price_confirmed", "prices", "held_move", HELD_INPUTS),
    Rule("region_move", "prices", "region_move", (GOLD_PRICE_DAILY,)),
    Rule("forecast_risk", "prices", "forecast_risk", (GOLD_FORECASTS, GOLD_PRICE_DAILY)),
    Rule("surge_risk", "prices", "surge_risk", (GOLD_FORECASTS,)),
    Rule("anomaly_score", "prices", "anomaly_score", (GOLD_ANOMALIES,)),
    Rule("data_quality", "quality", "data_quality", (GOLD_DATA_QUALITY,)),
    Rule(
        "stock_cover_low",
        "supply",
        "supply.stock_cover_low",
        (GOLD_STOCK_DAILY, GOLD_SUPPLY_REGION_DAILY),
    ),
    Rule("shipment_late", "supply", "supply.shipment_late", (GOLD_SHIPMENTS,)),
    Rule("route_delay", "supply", "supply.route_delay", (GOLD_SHIPMENTS,)),
    Rule("news_surge", "news", "news_surge", (GOLD_NEWS_SIGNAL,)),
)


def rule_ids(*, family: str | None = None, section: str | None = None) -> tuple[str, ...]:
    """The ids of the fixed ``RULES`` of a ``family`` and/or a ``section``."""
    return tuple(r.id for r in RULES if family in (None, r.family) and section in (None, r.section))


NEWS_SURGE = rule_ids(family="news")[0]
SUPPLY_RULES = rule_ids(family="supply")


class Message(BaseModel):
    id: str  # Indonesian
    en: str


class Levels(BaseModel):
    warning: float
    critical: float
    cooldown_hours: float = Field(ge=0)
    lookback_days: float = Field(gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Levels:
        if self.critical < self.warning:
            raise ValueError(f"critical ({self.critical}) is below warning ({self.warning})")
        return self


class LeveledRule(Levels):
    """A rule with levels and one message (Indonesian and English templates)."""

    message: Message


class PriceMoveRules(Levels):
    reference_days: Literal[REFERENCE_DAYS] = REFERENCE_DAYS
    min_reference_points: int = Field(ge=1)
    message: dict[Literal["price_spike", "price_drop"], Message]


class HeldMoveRules(BaseModel):
    #: the least severity at which a move still held alerts (``price_unconfirmed``, open); a
    #: smaller move alerts once confirmed (``price_confirmed``), and not at all when it is not
    unconfirmed_severity: Literal["warning", "critical"]
    message: dict[Literal["price_unconfirmed", "price_confirmed"], Message]


class MoveThresholds(BaseModel):
    """How far a price must move from the median of the ``REFERENCE_DAYS`` before its day to
    matter (``|price / median - 1|``): per commodity (catalogue id), else ``default``."""

    default: PositiveFloat
    commodities: dict[str, PositiveFloat] = {}


class RegionMoveRules(LeveledRule):
    min_markets: int = Field(ge=1)


class ForecastRules(LeveledRule):
    horizon_days: int = Field(ge=1)


class SensorRule(BaseModel):
    metric: Metric
    statistic: Literal["mean", "max"]
    warning: float
    critical: float
    message: Message


class SensorRules(BaseModel):
    cooldown_hours: float = Field(ge=0)
    lookback_days: float = Field(gt=0)
    rules: dict[str, SensorRule] = Field(min_length=1)


class Capacity(BaseModel):
    default: float = Field(gt=0)
    markets: dict[str, float] = {}


class QualityAlertRules(LeveledRule):
    window_minutes: float = Field(gt=0)
    min_received: int = Field(ge=1)


class StockCoverRules(BaseModel):
    """Days of cover below ``warning`` (``critical``) days, for an entity or a province."""

    warning: float = Field(gt=0)
    critical: float = Field(gt=0)
    cooldown_hours: float = Field(ge=0)
    message: Message

    @model_validator(mode="after")
    def _ordered(self) -> StockCoverRules:
        if self.critical > self.warning:
            raise ValueError("stock_cover_low: critical must be at most warning (fewer days)")
        return self


class RouteDelayRules(LeveledRule):
    recent_days: int = Field(ge=1)  # the recent delays: arrivals of these days
    min_history: int = Field(ge=1)  # earlier arrivals the route needs for its usual delay


class SupplyAlertRules(BaseModel):
    """The supply-chain rules (docs/supply.md); levels in days (cover) or hours (delays)."""

    stock_cover_low: StockCoverRules
    shipment_late: LeveledRule
    route_delay: RouteDelayRules


class NewsSurgeRules(LeveledRule):
    """``news_surge``: many recent headlines saying one way (``gold.news_signal``)."""

    window_days: int = Field(ge=1)
    min_headlines: int = Field(ge=1)

    def messages(self) -> dict[str, Message]:
        return {NEWS_SURGE: self.message}


class AlertRules(BaseModel):
    """``alerts.yaml`` of the configuration folder: every rule's levels, cool-down and message."""

    supply: SupplyAlertRules | None = None
    moves: MoveThresholds
    price_move: PriceMoveRules
    held_move: HeldMoveRules
    region_move: RegionMoveRules
    forecast_risk: ForecastRules
    surge_risk: LeveledRule
    anomaly_score: LeveledRule
    sensors: SensorRules
    capacity: Capacity
    data_quality: QualityAlertRules
    news_surge: NewsSurgeRules
    titles: dict[str, Message] = {}  # what each rule is called in notifications

    def table(self) -> tuple[Rule, ...]:
        """Every rule: ``RULES``, with the sensor rules of ``sensors.rules`` after the price
        rules."""
        sensors = tuple(
            Rule(name, "sensors", f"sensors.rules.{name}", (GOLD_SENSOR_HOURLY,))
            for name in self.sensors.rules
        )
        prices = tuple(r for r in RULES if r.family == "prices")
        return (*prices, *sensors, *(r for r in RULES if r.family != "prices"))

    def section(self, rule: Rule) -> BaseModel | None:
        """The settings of ``rule``: the model at its ``section`` path (None: a section these
        settings leave out, ``supply``)."""
        found = self
        for name in rule.section.split("."):
            found = found[name] if isinstance(found, dict) else getattr(found, name)
            if found is None:
                return None
        return found

    def configured(self) -> tuple[tuple[Rule, BaseModel], ...]:
        """The rules of ``table`` whose section these settings hold, with that section."""
        return tuple((r, s) for r in self.table() if (s := self.section(r)) is not None)

    def messages(self) -> dict[str, Message]:
        """The message templates by rule name."""
        return {
            rule.id: section.message[rule.id]
            if isinstance(section.message, dict)
            else section.message
            for rule, section in self.configured()
        }

    def families(self) -> dict[str, tuple[str, ...]]:
        """The rule ids by family: what an alert subscription may name instead of single
        rules (``prices``, ``sensors``, ``quality``, ``supply``, ``news``)."""
        out: dict[str, tuple[str, ...]] = {}
        for rule in self.table():
            out[rule.family] = (*out.get(rule.family, ()), rule.id)
        return out

    def cooldown_hours(self) -> dict[str, float]:
        """The cool-down by rule name (a held move's alert resolves by its own rule; a sensor
        rule has its group's)."""
        out = {}
        for rule, section in self.configured():
            if rule.family == "sensors":
                out[rule.id] = self.sensors.cooldown_hours
            elif (hours := getattr(section, "cooldown_hours", None)) is not None:
                out[rule.id] = hours
        return out
