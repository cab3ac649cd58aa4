"""The impact engine's light side — its answer type and where its fitted model lives — which the
API imports without loading the engine (XGBoost, scikit-learn, holidays)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel

from lakehouse.config.errors import InputError
from lakehouse.config.settings import Settings


class NoImpactModel(InputError):
    """The commodity has no impact model (unknown, or too little history): the API's 404."""


def model_path(settings: Settings) -> Path:
    """Where ``./run.sh retrain`` keeps the fitted model that the API and alerts explain with."""
    return settings.paths.data_dir / "models" / "impact.joblib"


class ImpactResult(BaseModel):
    """Why the price of ``commodity`` at ``locations`` changed in ``period`` vs the period before
    (a month; a week for commodities known only from daily closes)."""

    commodity: str
    market_id: str | None
    region: str | None
    locations: list[str]  # the panel locations or markets whose data was used
    month: str  # YYYY-MM (of the period's first day)
    resolution: str  # "month" or "week"
    period: str  # "2025-03", or "2025-03-10/2025-03-16" for a week (Monday to Sunday)
    price: float  # mean price in the period, IDR
    previous_price: float  # mean price the period before, IDR
    price_change: float  # IDR
    price_change_pct: float
    explained_change_pct: float  # what the factors add up to (log %, beyond the average change)
    impact_score: float  # 0..100, see the module docstring
    dominant_factor: str
    factors_with_weights: dict[str, int]  # family → whole percent, summing to 100
    contributions: dict[str, float]  # family → signed contribution, log % points
    #: family → why it had no data for this commodity (weight 0): e.g. gold.news_signal absent
    unavailable_factors: dict[str, str] = {}
