"""The price-impact model (``ml.impact``) as the API serves it: loaded from the file
``./run.sh retrain`` writes, and loaded again when that file changes."""

from __future__ import annotations

import threading
from datetime import date
from typing import TYPE_CHECKING, Any

from fastapi import status

from lakehouse.catalog.conf import conf_of
from lakehouse.config.errors import InputError
from lakehouse.config.settings import Settings
from ml.impact_result import NoImpactModel, model_path
from serving_api.errors import ApiError
from serving_api.language import DEFAULT_LANGUAGE

if TYPE_CHECKING:
    from ml.impact import ImpactModel
    from ml.impact_result import ImpactResult


class ImpactExplainer:
    def __init__(self, settings: Settings) -> None:
        self.path = model_path(settings)
        self.conf = conf_of(settings)  # the markets a question may name
        self.min_explained_r2 = settings.impact.min_explained_r2
        self._lock = threading.Lock()
        self._model: ImpactModel | None = None
        self._mtime: float | None = None
        self._answers: dict[tuple, ImpactResult | ApiError] = {}

    def model(self) -> ImpactModel:
        """The newest saved model; 503 while none has been trained (answered without loading
        the ML engine)."""
        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            raise ApiError(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "the impact model has not been trained yet: run ./run.sh retrain",
            ) from None
        with self._lock:
            if self._model is None or mtime != self._mtime:
                from ml.impact import ImpactModel

                self._model, self._mtime = ImpactModel.load(self.path), mtime
                self._answers.clear()
            return self._model

    def explain(
        self, commodity: str, day: date, market_id: str | None, region: str | None
    ) -> ImpactResult:
        """Blocking (run it in a worker thread); a commodity without a model is a 404 saying how
        much history it has and needs, another question the model cannot answer a 422. Answers
        are kept until the model file changes."""
        model = self.model()
        from ml.impact import explain

        key = (self._mtime, commodity, day, market_id, region)
        if key not in self._answers:
            try:
                self._answers[key] = explain(
                    model,
                    commodity,
                    day,
                    self.conf,
                    market_id=market_id,
                    region=region,
                    min_explained_r2=self.min_explained_r2,
                )
            except NoImpactModel as exc:
                self._answers[key] = ApiError(status.HTTP_404_NOT_FOUND, str(exc))
            except InputError as exc:
                self._answers[key] = ApiError(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc))
        answer = self._answers[key]
        if isinstance(answer, ApiError):
            raise answer
        return answer

    def attach(self, alert: dict[str, Any]) -> dict[str, Any]:
        """A critical price alert with the explanation of its market's (or region's) month
        under ``impact``, its message in the alert's ``lang`` (``localized_alert``); other
        alerts, and those the model cannot explain, unchanged."""
        if alert.get("severity") != "critical" or not alert.get("commodity"):
            return alert
        opened, market = alert.get("opened_at"), alert.get("market_id")
        if opened is None or not (market or alert.get("region")):
            return alert
        try:
            impact = self.explain(
                alert["commodity"], opened.date(), market, None if market else alert["region"]
            )
        except ApiError:
            return alert
        language = alert.get("lang", DEFAULT_LANGUAGE)
        return {**alert, "impact": impact.in_language(language).model_dump()}
