"""Surge warnings people can trust: the forecast's raw ``surge_prob`` (``ml.models
.surge_probability``) calibrated on past origins, its Brier score and reliability, and the
warning threshold chosen for precision.

An outcome is one (series, origin) of a model's backtest: its ``surge_prob`` and whether a surge
came (an observed price within the horizon ≥ (1 + ``ml.surge_rise``) × the origin's price). The
calibration is an isotonic (monotone) map from raw to observed frequency, fitted on outcomes of
earlier origins only; the threshold is the lowest calibrated probability at which the warnings
of those origins reach ``ml.surge_precision``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.isotonic import IsotonicRegression

MIN_OUTCOMES = 200  # origins needed to fit a calibration (else the raw probability stays)
MIN_SURGES = 5  # … of which surges
RELIABILITY_BINS = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 1.0)


def outcomes(forecasts: pd.DataFrame, rise: float) -> pd.DataFrame:
    """Per (series, origin) of a backtest's forecast rows (one model): ``prob`` (its
    ``surge_prob``) and ``came`` (a surge was observed within the horizon)."""
    per_origin = forecasts.groupby(["series", "origin"]).agg(
        peak=("y", "max"), last=("last", "first"), prob=("surge_prob", "first")
    )
    came = per_origin["peak"] >= (1 + rise) * per_origin["last"]
    return pd.DataFrame({"prob": per_origin["prob"], "came": came}).reset_index()


@dataclass(frozen=True)
class Calibration:
    """A monotone map raw ``surge_prob`` → observed frequency, and the warning threshold (on
    the calibrated scale) that reached the precision asked for on the outcomes it was fitted
    on (None: no threshold did)."""

    model: IsotonicRegression | None
    threshold: float | None

    def __call__(self, prob: np.ndarray | pd.Series) -> np.ndarray:
        values = np.asarray(prob, dtype=float)
        return values if self.model is None else self.model.predict(values)


def threshold_for_precision(prob: np.ndarray, came: np.ndarray, precision: float) -> float | None:
    """The lowest probability t such that warning at ``prob`` ≥ t has reached ``precision``
    (hits / warnings) on these outcomes, with at least ``MIN_SURGES`` warnings."""
    order = np.argsort(-prob, kind="stable")
    p, hits = prob[order], np.cumsum(came[order])
    warned = np.arange(1, len(p) + 1)
    last = np.r_[p[1:] != p[:-1], True]  # a threshold warns on every tie at once
    ok = last & (warned >= MIN_SURGES) & (hits / warned >= precision)
    return float(p[ok].min()) if ok.any() else None


def calibrate(frame: pd.DataFrame, precision: float) -> Calibration:
    """The calibration of ``outcomes`` rows (identity when there are too few, or too few
    surges) and its threshold for ``precision``."""
    prob, came = frame["prob"].to_numpy(dtype=float), frame["came"].to_numpy(dtype=bool)
    model = None
    if len(frame) >= MIN_OUTCOMES and came.sum() >= MIN_SURGES:
        model = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(prob, came)
    calibrated = model.predict(prob) if model is not None else prob
    return Calibration(model, threshold_for_precision(calibrated, came, precision))


def brier(prob: np.ndarray, came: np.ndarray) -> float:
    """The Brier score: the mean squared difference of the probability and the outcome."""
    return float(np.mean((np.asarray(prob, dtype=float) - np.asarray(came, dtype=float)) ** 2))


def reliability(prob: np.ndarray, came: np.ndarray) -> pd.DataFrame:
    """Per probability bin (``RELIABILITY_BINS``): origins, mean probability, observed share."""
    bins = pd.cut(np.asarray(prob, dtype=float), RELIABILITY_BINS, include_lowest=True)
    frame = pd.DataFrame({"bin": bins, "prob": prob, "came": np.asarray(came, dtype=float)})
    return frame.groupby("bin", observed=True).agg(
        origins=("prob", "size"), mean_prob=("prob", "mean"), observed=("came", "mean")
    )
