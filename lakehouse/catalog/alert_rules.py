"""The thresholds, cool-downs and messages of the early-warning rules: ``alerts.yaml`` of the
configuration folder (read once by ``lakehouse.catalog.conf.Conf``), evaluated by
``streaming_jobs.alerts``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, PositiveFloat, model_validator

from lakehouse.catalog.events import Metric

#: the days before a day whose closes make its reference median (``lakehouse.domain.metrics``)
REFERENCE_DAYS = 7
NEWS_SURGE = "news_surge"
SUPPLY_RULES = ("stock_cover_low", "shipment_late", "route_delay")


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

    def messages(self) -> dict[str, Message]:
        """The message templates by rule name."""
        return {
            **self.price_move.message,
            **self.held_move.message,
            "region_move": self.region_move.message,
            "forecast_risk": self.forecast_risk.message,
            "surge_risk": self.surge_risk.message,
            "anomaly_score": self.anomaly_score.message,
            **{name: rule.message for name, rule in self.sensors.rules.items()},
            "data_quality": self.data_quality.message,
            **({r: getattr(self.supply, r).message for r in SUPPLY_RULES} if self.supply else {}),
        }

    def families(self) -> dict[str, tuple[str, ...]]:
        """The rule ids by family: what an alert subscription may name instead of single
        rules (``prices``, ``sensors``, ``quality``, ``supply``, ``news``)."""
        return {
            "prices": (
                *self.price_move.message,
                *self.held_move.message,
                "region_move",
                "forecast_risk",
                "surge_risk",
                "anomaly_score",
            ),
            "sensors": tuple(self.sensors.rules),
            "quality": ("data_quality",),
            "supply": SUPPLY_RULES,
            "news": (NEWS_SURGE,),
        }

    def cooldown_hours(self) -> dict[str, float]:
        """The cool-down by rule name."""
        sensors = {name: self.sensors.cooldown_hours for name in self.sensors.rules}
        return {
            "price_spike": self.price_move.cooldown_hours,
            "price_drop": self.price_move.cooldown_hours,
            "region_move": self.region_move.cooldown_hours,
            "forecast_risk": self.forecast_risk.cooldown_hours,
            "surge_risk": self.surge_risk.cooldown_hours,
            "anomaly_score": self.anomaly_score.cooldown_hours,
            **sensors,
            "data_quality": self.data_quality.cooldown_hours,
            **(
                {r: getattr(self.supply, r).cooldown_hours for r in SUPPLY_RULES}
                if self.supply
                else {}
            ),
        }
