"""The bounded history of each series, as the silver query keeps it in Spark's state store.

The statistical rules compare an event with the newest points of its series. Those points live
in the state of the silver query's stateful step (``streaming_jobs.series_judge``), one value per
key — the prices and held prices of a bucket of provinces × commodities, or the sensor readings
of a bucket of markets (``silver.series_key``) — so a
micro-batch reads the keys it touches and never the lakehouse: its cost does not grow with
history. The state store commits with the query's checkpoint: a batch replayed after a crash
starts from the state before it and reaches the verdicts of the first attempt.

A value is two Arrow IPC streams (``STATE_SCHEMA``): the points, and the held prices still
waiting for a decision (price keys only).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

SECONDS_PER_DAY = 86400

STATE_SCHEMA = "points binary, holds binary"
#: a price series is a market × commodity; ``_group`` its province × commodity (the markets its
#: prices are compared with)
PRICE_SERIES = ("commodity", "market_id")
PRICE_POINTS = ("_group", *PRICE_SERIES, "_sec", "_day", "price", "event_id")
#: a sensor series is a device's metric
SENSOR_SERIES = ("market_id", "device_id", "metric")
SENSOR_POINTS = (*SENSOR_SERIES, "_sec", "value", "event_id")


def to_bytes(frame: pd.DataFrame | None) -> bytes | None:
    """A frame as an Arrow IPC stream (None for no rows)."""
    if frame is None or frame.empty:
        return None
    table = pa.Table.from_pandas(frame, preserve_index=False)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def from_bytes(blob: bytes | None, columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """The frame of :func:`to_bytes` (empty with ``columns`` when there is none)."""
    if not blob:
        return pd.DataFrame({c: [] for c in columns})
    return pa.ipc.open_stream(blob).read_all().to_pandas()


def series_codes(points: pd.DataFrame, columns: tuple[str, ...]) -> np.ndarray:
    """A number per series (the values of ``columns``), in the order of the series: 0, 1, …"""
    combined = np.zeros(len(points), dtype=np.int64)
    for column in columns:
        codes, uniques = pd.factorize(points[column].to_numpy(), sort=True)
        combined = combined * (len(uniques) + 1) + codes
    return np.unique(combined, return_inverse=True)[1].reshape(-1).astype(np.int64)


def earlier_values(series: np.ndarray, values: np.ndarray, count: int) -> np.ndarray:
    """Per row (rows in series order), the values 1 … ``count`` rows before it in its series,
    one column each (NaN before the series' start)."""
    out = np.full((len(values), count), np.nan)
    for back in range(1, count + 1):
        same = series[back:] == series[:-back]
        out[back:, back - 1] = np.where(same, values[:-back], np.nan)
    return out


def series_anchors(series: np.ndarray, secs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The newest time of each series among points (``series`` codes, ``secs``): the
    anchors of a :class:`Window`."""
    if len(series) == 0:
        return series, secs
    order = np.lexsort((secs, series))
    last = np.r_[series[order][1:] != series[order][:-1], True]
    return series[order][last], secs[order][last]


@dataclass(frozen=True)
class Window:
    """Points to keep per series: the newest ``width`` at or before each of its ``anchors``
    (series code and time), at most ``horizon_seconds`` older."""

    anchors: tuple[np.ndarray, np.ndarray]
    width: int
    horizon_seconds: float


def newest_points(points: pd.DataFrame, series: np.ndarray, windows: list[Window]) -> pd.DataFrame:
    """The points (of the ``series`` codes) any of ``windows`` keeps, ordered by series, time
    and event id (a point seen twice kept once)."""
    event_ids = points["event_id"].to_numpy()
    once = ~pd.Series(event_ids).duplicated(keep="last").to_numpy()
    if not once.all():
        points, series, event_ids = points[once], series[once], event_ids[once]
    secs = points["_sec"].to_numpy(dtype=np.int64)
    order = np.lexsort((event_ids, secs, series))
    key = series[order] << 40 | (secs[order] - (int(secs.min()) if len(secs) else 0))
    origin = int(secs.min()) if len(secs) else 0
    keep = np.zeros(len(points), dtype=bool)
    for window in windows:
        codes, times = window.anchors
        anchor_key = codes << 40 | (times.astype(np.int64) - origin)
        upper = np.searchsorted(key, anchor_key, "right")
        lower = np.searchsorted(key, anchor_key - int(window.horizon_seconds), "left")
        for lo, hi in zip(np.maximum(lower, upper - window.width), upper, strict=True):
            keep[lo:hi] = True
    return points.iloc[order[keep]].reset_index(drop=True)
