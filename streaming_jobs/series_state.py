"""The bounded history of each series, as the silver query keeps it in Spark's state store.

The statistical rules compare an event with the newest points of its series. Those points live
in the state of the silver query's stateful step (``streaming_jobs.series_judge``), one value per
key — a province × commodity's prices and held prices, or a market's sensor readings — so a
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

STATE_SCHEMA = "points binary, holds binary"
PRICE_POINTS = ("market_id", "_sec", "_day", "price", "event_id")
SENSOR_POINTS = ("device_id", "metric", "_sec", "value", "event_id")


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


@dataclass(frozen=True)
class Window:
    """Points to keep per series: the newest ``width`` at or before each of its ``anchors``
    (the series columns and ``_sec``), at most ``horizon_seconds`` older."""

    anchors: pd.DataFrame
    width: int
    horizon_seconds: float


def newest_points(points: pd.DataFrame, series: list[str], windows: list[Window]) -> pd.DataFrame:
    """The points any of ``windows`` keeps, ordered by series, time and event id (a point seen
    twice kept once)."""
    points = points.drop_duplicates("event_id", keep="last")
    points = points.sort_values([*series, "_sec", "event_id"], kind="stable", ignore_index=True)
    codes, uniques = pd.factorize(pd.MultiIndex.from_frame(points[series]))
    secs = points["_sec"].to_numpy(dtype=np.int64)
    origin = int(secs.min()) if len(secs) else 0
    key = codes.astype(np.int64) << 40 | (secs - origin)
    keep = np.zeros(len(points), dtype=bool)
    for window in windows:
        anchor_codes = uniques.get_indexer(pd.MultiIndex.from_frame(window.anchors[series]))
        known = anchor_codes >= 0
        anchor_key = anchor_codes[known].astype(np.int64) << 40 | (
            window.anchors["_sec"].to_numpy(dtype=np.int64)[known] - origin
        )
        upper = np.searchsorted(key, anchor_key, "right")
        lower = np.searchsorted(key, anchor_key - int(window.horizon_seconds), "left")
        for lo, hi in zip(np.maximum(lower, upper - window.width), upper, strict=True):
            keep[lo:hi] = True
    return points[keep].reset_index(drop=True)


def series_anchors(frames: list[pd.DataFrame], series: list[str]) -> pd.DataFrame:
    """The newest time of each series in each of ``frames`` (anchors of a :class:`Window`)."""
    parts = [f.groupby(series, as_index=False)["_sec"].max() for f in frames if not f.empty]
    if not parts:
        return pd.DataFrame({c: [] for c in [*series, "_sec"]})
    return pd.concat(parts, ignore_index=True).drop_duplicates()
