"""Which model serves a series: naive, unless a candidate beats it on evidence that survives
the noise of a backtest.

A candidate replaces naive for a group of series (one series, or every series of a commodity:
``ml.selection.level``) only when, over at least ``ml.selection.min_origins`` backtest origins,
its MAPE is below naive's by ``ml.selection.margin`` by a one-sided Diebold–Mariano test: the
loss differential of an origin is d = (1 − margin) · APE_naive − APE_candidate, averaged over
the group's series and the horizons of that origin; the test asks whether its mean is > 0, with
a Newey–West variance (Bartlett weights, ⌊T^⅓⌋ lags: the losses of neighbouring weeks are
correlated), the Harvey–Leybourne–Newbold small-sample factor and Student's t with T − 1
degrees of freedom. With k candidates each must reach ``significance / k`` (Bonferroni); among
those that do, the lowest MAPE serves. Otherwise naive serves, and the reason says why.

The backtest's ``selected`` pseudo-model makes the same choice at every scored origin from the
origins before it only (their targets all lie at or before it), so its score is what serving by
this rule would have given.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.stats import t as student_t

from lakehouse.config.settings import SelectionSettings
from ml.models import FALLBACK

NO_RIVAL = "naive: no other candidate"  # the reason naive serves where nothing else forecast


@dataclass(frozen=True)
class Choice:
    """The model chosen for a group and why (``served_because`` of its forecasts)."""

    model: str
    reason: str


def dm_pvalue(d: np.ndarray) -> float:
    """One-sided Diebold–Mariano p-value of "mean(d) > 0" for a series of loss differentials
    (one per origin); 1 when the differentials do not vary and are not positive."""
    d = np.asarray(d, dtype=float)
    n = len(d)
    mean = float(d.mean())
    centred = d - mean
    lags = int(n ** (1 / 3))
    var = float(centred @ centred) / n
    for lag in range(1, lags + 1):
        weight = 1 - lag / (lags + 1)
        var += 2 * weight * float(centred[lag:] @ centred[:-lag]) / n
    if not var > 0:
        return 0.0 if mean > 0 else 1.0
    statistic = mean / np.sqrt(var / n) * np.sqrt((n - 1) / n)
    return float(student_t.sf(statistic, df=n - 1))


def origin_losses(forecasts: pd.DataFrame) -> pd.DataFrame:
    """The mean absolute percentage error of every (series, origin) and model: rows
    (series, origin), one column per model (NaN where a model did not forecast)."""
    if forecasts.empty:
        return pd.DataFrame(index=pd.MultiIndex.from_tuples([], names=["series", "origin"]))
    ape = (forecasts["y"] - forecasts["yhat"]).abs() / forecasts["y"].abs()
    return (
        forecasts.assign(ape=ape)
        .pivot_table(index=["series", "origin"], columns="model", values="ape", aggfunc="mean")
        .sort_index()
    )


def choose(losses: pd.DataFrame, candidates: list[str], sel: SelectionSettings) -> Choice:
    """The served model of a group from its ``origin_losses`` (the rule of the module)."""
    rivals = [m for m in candidates if m != FALLBACK and m in losses]
    if FALLBACK not in losses or not rivals:
        return Choice(FALLBACK, NO_RIVAL)
    level = sel.significance / len(rivals)
    tested = []
    for model in rivals:
        pair = losses[[FALLBACK, model]].dropna()
        d = ((1 - sel.margin) * pair[FALLBACK] - pair[model]).groupby(level="origin").mean()
        if len(d) < sel.min_origins:
            continue
        ratio = float(pair[model].mean() / pair[FALLBACK].mean())
        tested.append((model, ratio, dm_pvalue(d.to_numpy()), len(d)))
    if not tested:
        origins = losses.index.get_level_values("origin").nunique()
        return Choice(FALLBACK, f"naive: {origins} origins < {sel.min_origins} to test a rival")
    passed = [t for t in tested if t[2] < level]
    model, ratio, p, n = min(passed or tested, key=lambda t: t[1])
    evidence = f"{model} {ratio:.3f} × naive over {n} origins, DM p = {p:.3g}"
    if passed:
        return Choice(model, f"{model}: {evidence} < {level:.3g} at a {sel.margin:.0%} margin")
    return Choice(FALLBACK, f"naive: no rival beat it by {sel.margin:.0%} (best: {evidence})")


def choices_by_origin(
    losses: pd.DataFrame, candidates: list[str], sel: SelectionSettings, origins: list
) -> dict[pd.Timestamp, Choice]:
    """At each of ``origins``, the choice made on the losses of the origins before it."""
    before = losses.index.get_level_values("origin")
    return {o: choose(losses[before < o], candidates, sel) for o in origins}


def groups_of(series: pd.DataFrame, sel: SelectionSettings) -> Mapping[str, str]:
    """series id → its selection group (``ml.selection.level``) for a ``SERIES_COLUMNS`` frame."""
    keys = series.drop_duplicates("series_id").set_index("series_id")
    if sel.level == "commodity":
        return keys["commodity"].astype(str).to_dict()
    return {sid: sid for sid in keys.index}
