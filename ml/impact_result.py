"""The impact engine's light side — its answer type and where its fitted model lives — which the
API imports without loading the engine (XGBoost, scikit-learn, holidays)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from lakehouse.catalog.languages import Language
from lakehouse.config.errors import InputError
from lakehouse.config.settings import Settings


class NoImpactModel(InputError):
    """The commodity has no impact model (unknown, or too little history): the API's 404."""


def model_path(settings: Settings) -> Path:
    """Where ``./run.sh retrain`` keeps the fitted model that the API and alerts explain with."""
    return settings.paths.data_dir / "models" / "impact.joblib"


Verdict = Literal["explained", "mostly_unexplained"]


class ImpactFit(BaseModel):
    """How the commodity's model did on the periods it had not seen: fitted on the periods before
    its last ``impact.holdout_months`` (``holdout_weeks``), scored on those."""

    r2: float = Field(description="R² of the period's price change on the held-out periods")
    mape: float = Field(description="MAPE of the price the model implies there, %")
    naive_mape: float = Field(description='MAPE of "no change" (the previous price) there, %')
    held_out_rows: int = Field(description="location × periods scored")
    min_r2: float = Field(description="the R² an explanation needs (impact.min_explained_r2)")

    @property
    def shortfalls(self) -> list[str]:
        """What keeps the model from explaining: ``low_r2`` (the hold-out R² below ``min_r2``),
        ``no_better`` (its MAPE not below naive's); none: it explains."""
        failed = {"low_r2": self.r2 < self.min_r2, "no_better": self.mape >= self.naive_mape}
        return [name for name, yes in failed.items() if yes]

    @property
    def verdict(self) -> Verdict:
        """Explained when the hold-out R² reaches ``min_r2`` and the MAPE beats naive's."""
        return "mostly_unexplained" if self.shortfalls else "explained"


#: the verdict's words: Indonesian, English
WORDS: dict[str, tuple[str, str]] = {
    "explained": (
        "Faktor dominan: {factor}. Pada periode uji, model menjelaskan R² {r2} dari perubahan "
        "harga (ambang {least}); MAPE {mape}, naif {naive}.",
        "Dominant factor: {factor}. On its held-out periods the model explains R² {r2} of the "
        "price changes (threshold {least}); MAPE {mape}, naive {naive}.",
    ),
    "unexplained": (
        "Sebagian besar tidak terjelaskan: {reasons}. Bobot faktor hanyalah atribusi model, "
        "bukan penyebab yang teruji.",
        "Mostly unexplained: {reasons}. The factor weights are only the model's attribution, "
        "not a tested cause.",
    ),
    "low_r2": (
        "pada periode uji model hanya menjelaskan R² {r2} dari perubahan harga (ambang {least})",
        "on its held-out periods the model explains only R² {r2} of the price changes "
        "(threshold {least})",
    ),
    "no_better": (
        "MAPE-nya {mape} tidak lebih baik dari naif ({naive})",
        "its MAPE {mape} is no better than naive's ({naive})",
    ),
}


def _number(value: float, language: Language) -> str:
    """Two decimals, the language's way: ``0,24`` (Indonesian) or ``0.24`` (English)."""
    text = f"{value:.2f}"
    return text.replace(".", ",") if language == "id" else text


def verdict_message(fit: ImpactFit, dominant_factor: str | None, language: Language) -> str:
    """The verdict of ``fit`` in words: the dominant factor, or why the move is mostly
    unexplained (and that the factor weights are then only the model's attribution)."""
    percent = " %" if language == "id" else "%"
    values = {
        "factor": dominant_factor,
        "r2": _number(fit.r2, language),
        "least": _number(fit.min_r2, language),
        "mape": _number(fit.mape, language) + percent,
        "naive": _number(fit.naive_mape, language) + percent,
    }
    english = language == "en"
    if not fit.shortfalls:
        return WORDS["explained"][english].format(**values)
    reasons = "; ".join(WORDS[k][english].format(**values) for k in fit.shortfalls)
    return WORDS["unexplained"][english].format(reasons=reasons)


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
    status: Verdict = Field(
        description='"explained" when the commodity\'s model reaches impact.min_explained_r2 on '
        'its held-out periods and beats naive\'s MAPE there; else "mostly_unexplained"'
    )
    dominant_factor: str | None = Field(
        description="the family of the largest weight; null when mostly unexplained"
    )
    fit: ImpactFit
    message: str = Field(description="the verdict in words, in lang")
    lang: Language = Field("id", description="the language of message: id (Indonesian) or en")
    factors_with_weights: dict[str, int] = Field(
        description="family → whole percent, summing to 100 (when mostly unexplained: the "
        "model's attribution, not a tested cause)"
    )
    contributions: dict[str, float]  # family → signed contribution, log % points
    #: family → why it had no data for this commodity (weight 0): e.g. gold.news_signal absent
    unavailable_factors: dict[str, str] = {}

    def in_language(self, language: Language) -> ImpactResult:
        """The same answer with its message in ``language``."""
        if language == self.lang:
            return self
        message = verdict_message(self.fit, self.dominant_factor, language)
        return self.model_copy(update={"message": message, "lang": language})
