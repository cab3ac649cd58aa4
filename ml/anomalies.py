"""Anomaly models over daily closes: temporal (IsolationForest) and geographic (DBSCAN).

``detect(daily)`` takes one close per market × commodity × date (columns ``market_id, region,
commodity, date, price``) and returns the rows of ``gold.anomalies`` without the lineage columns
(``model_name, model_version, run_id, created_at``, which the caller adds; ``MODEL_NAMES`` and
``model_params`` say what to log). Both kinds score 0..1 with the same meaning: 0.5 is the model's
own boundary, 1 is as far beyond it as can be; rows below the floor of their kind
(``anomalies.temporal_floor``, ``anomalies.geographic_floor``) are not returned.

* **temporal** — per commodity, an IsolationForest over every market's observations, each
  described only by its past and itself: the return (log price vs the median of the previous
  ``return_lookback`` observations, so the day after a one-day glitch does not look like a
  glitch), the deviation from the median of the past ``window_days``, the robust volatility of
  daily returns over that window, and the day of week. The forest's anomaly score ``s`` (0..1,
  from path length) is mapped piecewise-linearly so that its ``contamination`` threshold becomes
  0.5.
* **geographic** — per commodity × day, DBSCAN over the markets with coordinates. A market's
  price is taken relative to the day's median and corrected by its own usual premium (median of
  that relative price over the past window), so a structurally dear market is not an anomaly,
  a market that leaves its usual place is. Distances: ``geo_price_scale`` of log price and
  ``geo_distance_km`` of place are one unit each. A market DBSCAN leaves as noise is scored by
  its price gap ``g`` to the nearest cluster (the day's median if there is none):
  ``g / (g + geo_eps * geo_price_scale)`` — 0.5 exactly at the DBSCAN radius — so a market that
  is alone only because it is far away scores near 0.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pandas as pd
from sklearn.cluster import DBSCAN
from sklearn.ensemble import IsolationForest
from tqdm import tqdm

from lakehouse.catalog.conf import conf_of
from lakehouse.catalog.reference import Market
from lakehouse.config.settings import AnomalySettings, Settings
from ml.daily import validated_daily

OUTPUT_COLUMNS = (
    "market_id",
    "region",
    "commodity",
    "date",
    "kind",
    "score",
    "price",
    "explanation",
)
TEMPORAL_FEATURES = ("ret", "dev", "vol", "dow")
MODEL_NAMES = {"temporal": "anomaly-isolation-forest", "geographic": "anomaly-dbscan"}

log = logging.getLogger(__name__)

_MAD_TO_SD = 1.4826  # median absolute deviation → standard deviation of a normal distribution
_KM_PER_DEG_LAT = 110.57
_KM_PER_DEG_LON_EQUATOR = 111.32


def model_params(settings: Settings) -> dict[str, dict[str, Any]]:
    """The parameters of each model, by ``MODEL_NAMES`` value, for MLflow."""
    a = settings.anomalies
    shared = {"window_days": a.window_days, "min_history": a.min_history}
    return {
        MODEL_NAMES["temporal"]: shared
        | {
            "score_floor": a.temporal_floor,
            "features": ",".join(TEMPORAL_FEATURES),
            "return_lookback": a.return_lookback,
            "n_estimators": a.n_estimators,
            "max_samples": a.max_samples,
            "contamination": a.contamination,
            "random_state": a.random_state,
        },
        MODEL_NAMES["geographic"]: shared
        | {
            "score_floor": a.geographic_floor,
            "eps": a.geo_eps,
            "min_samples": a.geo_min_samples,
            "price_scale": a.geo_price_scale,
            "distance_km": a.geo_distance_km,
            "min_markets": a.geo_min_markets,
        },
    }


def detect(daily: pd.DataFrame, settings: Settings) -> pd.DataFrame:
    """Temporal and geographic anomalies of daily closes, one row per market × commodity × date
    × kind whose score reaches the floor of its kind (see the module docstring)."""
    a = settings.anomalies
    frame = _clean(daily)
    temporal = _temporal(frame, a)
    geographic = _geographic(frame, a, conf_of(settings).markets)
    found = pd.concat(
        [
            temporal[temporal["score"] >= a.temporal_floor],
            geographic[geographic["score"] >= a.geographic_floor],
        ],
        ignore_index=True,
    )
    found = found.sort_values(["commodity", "market_id", "date", "kind"], ignore_index=True)
    found["date"] = found["date"].dt.date
    counts = found["kind"].value_counts().to_dict()
    log.info("anomalies detected", extra={"rows_in": len(frame), **counts})
    return found.loc[:, list(OUTPUT_COLUMNS)]


def _clean(daily: pd.DataFrame) -> pd.DataFrame:
    frame = validated_daily(daily)
    frame["logp"] = np.log(frame["price"])
    return frame


def _rolling_past(series: pd.Series, dates: pd.Series, a: AnomalySettings) -> Any:
    """Rolling window over the past ``window_days`` (the current day excluded)."""
    return series.set_axis(dates).rolling(
        f"{a.window_days}D", closed="left", min_periods=a.min_history
    )


def _series_features(group: pd.DataFrame, a: AnomalySettings) -> pd.DataFrame:
    """Features of one market × commodity series (sorted by date), from its past and itself."""
    logp, dates = group["logp"], group["date"]
    past_median = _rolling_past(logp, dates, a).median().to_numpy()
    abs_returns = logp.diff().abs()
    return group.assign(
        ret=logp - logp.shift(1).rolling(a.return_lookback, min_periods=1).median(),
        dev=logp - past_median,
        vol=_MAD_TO_SD * _rolling_past(abs_returns, dates, a).median().to_numpy(),
        dow=dates.dt.dayofweek,
        reference=np.exp(past_median),
    )


def _temporal(frame: pd.DataFrame, a: AnomalySettings) -> pd.DataFrame:
    parts = []
    groups = frame.groupby(["market_id", "commodity"], sort=False)
    for _, group in tqdm(groups, desc="temporal features", unit="series", disable=None):
        parts.append(_series_features(group, a))
    if not parts:
        return _empty()
    featured = pd.concat(parts).dropna(subset=list(TEMPORAL_FEATURES))
    scored = []
    for _, rows in featured.groupby("commodity", sort=True):
        if len(rows) < a.min_history:
            continue
        forest = IsolationForest(
            n_estimators=a.n_estimators,
            max_samples=min(a.max_samples, len(rows)),
            contamination=a.contamination,
            random_state=a.random_state,
        )
        features = rows.loc[:, list(TEMPORAL_FEATURES)].to_numpy()
        forest.fit(features)
        s = -forest.score_samples(features)  # the paper's anomaly score, 0..1
        scored.append(rows.assign(score=_boundary_at_half(s, -forest.offset_)))
    if not scored:
        return _empty()
    out = pd.concat(scored, ignore_index=True)
    out["kind"] = "temporal"
    out["explanation"] = [
        f"price {_idr(p)} is {_percent_off(p, ref)} the {a.window_days}-day median {_idr(ref)}"
        for p, ref in zip(out["price"], out["reference"], strict=True)
    ]
    return out


def _boundary_at_half(s: np.ndarray, threshold: float) -> np.ndarray:
    """Map scores in 0..1 monotonically to 0..1 with ``threshold`` going to 0.5."""
    below = 0.5 * s / threshold
    above = 0.5 + 0.5 * (s - threshold) / (1 - threshold)
    return np.clip(np.where(s <= threshold, below, above), 0.0, 1.0)


def _geographic(
    frame: pd.DataFrame, a: AnomalySettings, markets: dict[str, Market]
) -> pd.DataFrame:
    places = {
        m.market_id: (m.latitude, m.longitude)
        for m in markets.values()
        if m.latitude is not None and m.longitude is not None
    }
    located = frame[frame["market_id"].isin(places)].copy()
    if located.empty:
        return _empty()
    located["lat"] = located["market_id"].map(lambda m: places[m][0])
    located["lon"] = located["market_id"].map(lambda m: places[m][1])
    located["rel"] = located["logp"] - located.groupby(["commodity", "date"])["logp"].transform(
        "median"
    )
    premium = [
        pd.Series(_rolling_past(g["rel"], g["date"], a).median().to_numpy(), index=g.index)
        for _, g in located.groupby(["market_id", "commodity"], sort=False)
    ]
    located["adj"] = located["rel"] - pd.concat(premium)
    located = located.dropna(subset=["adj"])  # a market's usual premium is not known yet

    lat0 = math.radians(located["lat"].mean())
    x = np.column_stack(
        [
            located["adj"] / a.geo_price_scale,
            located["lat"] * _KM_PER_DEG_LAT / a.geo_distance_km,
            located["lon"] * _KM_PER_DEG_LON_EQUATOR * math.cos(lat0) / a.geo_distance_km,
        ]
    )
    adj = located["adj"].to_numpy()
    found: list[tuple[int, float, int]] = []  # position in ``located``, price gap, neighbours
    days = located.groupby(["commodity", "date"], sort=True).indices
    for key in tqdm(sorted(days), desc="geographic", unit="day", disable=None):
        at = days[key]
        if len(at) >= a.geo_min_markets:
            found.extend((at[i], gap, n) for i, gap, n in _outlying_markets(x[at], adj[at], a))
    if not found:
        return _empty()
    positions, gaps, neighbours = (np.array(column) for column in zip(*found, strict=True))
    out = located.iloc[positions].loc[:, ["market_id", "region", "commodity", "date", "price"]]
    reference = out["price"].to_numpy() * np.exp(-gaps)
    out["kind"] = "geographic"
    out["score"] = np.abs(gaps) / (np.abs(gaps) + a.geo_eps * a.geo_price_scale)
    out["explanation"] = [
        f"price {_idr(p)} is {_percent_off(p, ref)} the {_idr(ref)} that {n} nearby markets imply"
        for p, ref, n in zip(out["price"], reference, neighbours, strict=True)
    ]
    return out


def _outlying_markets(
    x: np.ndarray, adj: np.ndarray, a: AnomalySettings
) -> list[tuple[int, float, int]]:
    """The markets DBSCAN leaves as noise on one commodity × day (rows of ``x``, scaled price and
    place), each with its price gap to the nearest cluster (to the day's median if there is no
    cluster) and how many markets that reference holds."""
    dbscan = DBSCAN(eps=a.geo_eps, min_samples=a.geo_min_samples).fit(x)
    labels, core = dbscan.labels_, dbscan.core_sample_indices_
    out = []
    for i in np.flatnonzero(labels == -1):
        if len(core):
            nearest = core[np.argmin(np.linalg.norm(x[core] - x[i], axis=1))]
            members = labels == labels[nearest]
        else:
            members = np.arange(len(x)) != i
        out.append((int(i), float(adj[i] - np.median(adj[members])), int(members.sum())))
    return out


def _empty() -> pd.DataFrame:
    return pd.DataFrame(
        {c: pd.Series(dtype="datetime64[ns]" if c == "date" else object) for c in OUTPUT_COLUMNS}
    ).astype({"score": float, "price": float})


def _idr(value: float) -> str:
    return f"{value:,.0f}".replace(",", " ")


def _percent_off(value: float, reference: float) -> str:
    change = value / reference - 1
    return f"{abs(change):.0%}".replace("%", " %") + (" above" if change >= 0 else " below")
