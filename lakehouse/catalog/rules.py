"""Validation thresholds of silver: the model of ``quality.yaml`` in the configuration folder
(the only place they are set; read by ``lakehouse.catalog.conf.Conf.quality``)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from lakehouse.catalog.events import Metric


class HardRules(BaseModel):
    future_tolerance_seconds: float = Field(ge=0)
    retention_days: float = Field(gt=0)
    duplicate_horizon_hours: float = Field(gt=0)


class PriceRules(BaseModel):
    history_days: int = Field(ge=1)
    min_history: int = Field(ge=2)
    zscore_max: float = Field(gt=0)
    iqr_factor: float = Field(gt=0)
    median_deviation_max: float = Field(gt=0)
    cross_market_min_markets: int = Field(ge=1)
    cross_market_deviation: float = Field(gt=0)
    cross_market_strong: float = Field(gt=0)
    quarantine_min_flags: int = Field(ge=1)
    history_points: int = Field(ge=2)
    state_days: int = Field(ge=1)
    state_points: int = Field(ge=2)


class SensorQualityRules(BaseModel):
    stuck_readings: int = Field(ge=2)
    impossible_zero: list[Metric]
    max_jump: dict[Metric, float]


class HoldRules(BaseModel):
    """When a price held by the statistical rules is released (see
    ``lakehouse.domain.validation.holds``)."""

    window_days: float = Field(gt=0)
    level_tolerance: float = Field(gt=0, lt=1)
    confirm_reports: int = Field(ge=1)


class QualityRules(BaseModel):
    """``quality.yaml`` of the configuration folder (``lakehouse.catalog.conf.Conf.quality``)."""

    hard: HardRules
    prices: PriceRules
    sensors: SensorQualityRules
    hold: HoldRules
    units: dict[str, dict[str, float]]
