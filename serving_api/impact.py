"""The price-impact model (``ml.impact``) as the API serves it: loaded from the file
``./run.sh retrain`` writes, and loaded again when that file changes."""

from __future__ import annotations

import threading
from datetime import date
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from fastapi import status

from lakehouse.settings import Settings
from producers.reports import InputError
from serving_api.errors import ApiError

if TYPE_CHECKING:
    from ml.impact import ImpactModel, ImpactResult


class ImpactExplainer:
    def __init__(self, settings: Settings) -> None:
        from ml.impact import model_path

        self.path = model_path(settings)
        self._lock = threading.Lock()
        self._model: ImpactModel | None = None
        self._mtime: float | None = None

    def model(self) -> ImpactModel:
        """The newest saved model; 503 while none has been trained."""
        from ml.impact import ImpactModel

        try:
            mtime = self.path.stat().st_mtime
        except FileNotFoundError:
            raise ApiError(
                status.HTTP_503_SERVICE_UNAVAILABLE,
                "the impact model has not been trained yet: run ./run.sh retrain",
            ) from None
        with self._lock:
            if self._model is None or mtime != self._mtime:
                self._model, self._mtime = ImpactModel.load(self.path), mtime
            return self._model

    def explain(
        self, commodity: str, day: date, market_id: str | None, region: str | None
    ) -> ImpactResult:
        """Blocking (run it in a worker thread); a question the model cannot answer is a 422."""
        model = self.model()
        month = day.replace(day=1)  # the model explains whole months
        return _explained(model, self._mtime, commodity, month, market_id, region)

    def attach(self, alert: dict[str, Any]) -> dict[str, Any]:
        """A critical price alert with the explanation of its market's (or region's) month
        under ``impact``; other alerts, and those the model cannot explain, unchanged."""
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
        return {**alert, "impact": impact.model_dump()}


@lru_cache(maxsize=4096)
def _explained(
    model: ImpactModel,
    _version: float | None,
    commodity: str,
    month: date,
    market_id: str | None,
    region: str | None,
) -> ImpactResult:
    from ml.impact import explain

    try:
        return explain(model, commodity, month, market_id=market_id, region=region)
    except InputError as exc:
        raise ApiError(status.HTTP_422_UNPROCESSABLE_CONTENT, str(exc)) from None
