"""The silver query's stateful step: the statistical rules and the held prices of one key, with
the key's state (``streaming_jobs.series_state``) — the function Spark's
``applyInPandasWithState`` calls once per key and micro-batch.

A key (``_key``, built by ``streaming_jobs.silver.series_key``) is one of:

- ``p|<province>|<commodity>``: the prices of that province × commodity that passed the hard
  rules, and operators' reviews of its held prices. The prices are judged against the state's
  points (``price_judge``), the state keeps each market's newest points, and the holds are
  created, confirmed, refuted or reviewed (``holds``);
- ``s|<market_id>``: the sensor readings of a market's devices that passed the hard rules,
  judged against the state's newest accepted readings (``sensor_judge``);
- ``x``: everything already decided before this step (parse errors, hard-rule failures, reviews
  that name no hold) — passed through untouched.

Every input row comes out once with its verdict (``kind`` ``event``, or ``review`` for a review
that is not valid); the decisions on holds add rows of their own: ``hold`` (a new hold or a
status change, for ``silver.holds``), ``decision`` (for ``silver.hold_decisions``) and
``release`` (the released price, for ``silver.prices``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pyspark.sql.streaming.state import GroupState
from pyspark.sql.types import DataType, NumericType, StructType

from lakehouse.events import HoldStatus
from lakehouse.rules import QualityRules
from streaming_jobs import holds, price_judge, sensor_judge
from streaming_jobs.series_state import (
    PRICE_POINTS,
    SENSOR_POINTS,
    Window,
    from_bytes,
    newest_points,
    series_anchors,
    to_bytes,
)
from streaming_jobs.verdicts import DETAILS, FLAGS_MASK, REASONS_MASK, detail_column

KEY = "_key"
PASSED = "x"  # the key of rows this step only passes on
#: the columns the step adds to its input rows
VERDICT_DDL = ", ".join(
    [
        "kind string",
        f"{FLAGS_MASK} bigint",
        f"{REASONS_MASK} bigint",
        *[f"{detail_column(d)} double" for d in DETAILS],
        "hold_reasons_mask bigint",
        "baseline double",
        "move double",
        "held_at timestamp",
        "status string",
        "previous_status string",
        "decided boolean",
        "decision string",
        "decided_by string",
        "decision_note string",
        "supports bigint",
        "refutes bigint",
    ]
)
SECONDS_PER_DAY = 86400


@dataclass(frozen=True)
class Output:
    """The step's output columns and how to fill one that a frame lacks."""

    schema: StructType

    @staticmethod
    def _blank(data_type: DataType, rows: int) -> pd.Series:
        if isinstance(data_type, NumericType):
            return pd.Series(np.full(rows, np.nan))
        return pd.Series([None] * rows, dtype=object)

    def conform(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with exactly the output columns, in order (missing ones null)."""
        rows = len(frame)
        columns = {}
        for field in self.schema.fields:
            if field.name in frame.columns:
                columns[field.name] = frame[field.name].to_numpy()
            else:
                columns[field.name] = self._blank(field.dataType, rows).to_numpy()
        return pd.DataFrame(columns)


class SeriesJudge:
    """The ``applyInPandasWithState`` function of the silver query (see the module)."""

    def __init__(self, rules: QualityRules, output: StructType) -> None:
        self.rules = rules
        self.output = Output(output)

    def __call__(
        self, key: tuple[str], frames: Iterator[pd.DataFrame], state: GroupState
    ) -> Iterator[pd.DataFrame]:
        parts = list(frames)
        rows = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        rows = rows.reset_index(drop=True)
        kind = key[0].split("|", 1)[0]
        if kind == "p":
            out = self._prices(rows, state)
        elif kind == "s":
            out = self._sensors(rows, state)
        else:
            out = [self._passed(rows)]
        for frame in out:
            if not frame.empty:
                yield self.output.conform(frame)

    @staticmethod
    def _passed(rows: pd.DataFrame) -> pd.DataFrame:
        reviews = rows["_kind"] == "review"
        return rows.assign(
            kind=np.where(reviews, "review", "event"),
            **{FLAGS_MASK: 0, REASONS_MASK: 0},
        )

    @staticmethod
    def _stored(state: GroupState) -> tuple[bytes | None, bytes | None]:
        return (state.get[0], state.get[1]) if state.exists else (None, None)

    @staticmethod
    def _save(state: GroupState, points: pd.DataFrame, held: pd.DataFrame | None) -> None:
        blobs = (to_bytes(points), to_bytes(held))
        if any(b is not None for b in blobs):
            state.update(blobs)
        elif state.exists:
            state.remove()

    def _sensors(self, rows: pd.DataFrame, state: GroupState) -> list[pd.DataFrame]:
        rules = self.rules.sensors
        points_blob, _ = self._stored(state)
        earlier = from_bytes(points_blob, SENSOR_POINTS)
        readings = rows.assign(kind="event")
        pool = pd.concat(
            [
                readings[list(SENSOR_POINTS)].assign(_candidate=True),
                earlier.set_axis(range(len(readings), len(readings) + len(earlier))).assign(
                    _candidate=False
                ),
            ]
        )
        verdicts = sensor_judge.judge(pool, rules).sort_index()
        readings = _with_verdicts(readings, verdicts)
        accepted = readings.loc[readings[REASONS_MASK] == 0, list(SENSOR_POINTS)]
        kept = pd.concat([earlier, accepted], ignore_index=True)
        series = ["device_id", "metric"]
        windows = [  # behind the newest reading, and behind the batch's (a backfill's) newest
            Window(series_anchors([frame], series), rules.stuck_readings, SECONDS_PER_DAY)
            for frame in (kept, accepted)
        ]
        self._save(state, newest_points(kept, series, windows), None)
        return [readings]

    def _prices(self, rows: pd.DataFrame, state: GroupState) -> list[pd.DataFrame]:
        rules = self.rules
        points_blob, holds_blob = self._stored(state)
        earlier = from_bytes(points_blob, PRICE_POINTS)
        is_review = rows["_kind"] == "review"
        reviews, prices = rows[is_review], rows[~is_review].reset_index(drop=True)
        prices = prices.assign(kind="event")
        out = [prices]
        if not prices.empty:
            pool = pd.concat(
                [
                    prices[list(PRICE_POINTS)].assign(_candidate=True),
                    earlier.set_axis(range(len(prices), len(prices) + len(earlier))).assign(
                        _candidate=False
                    ),
                ]
            )
            verdicts = price_judge.judge(pool, rules.prices).sort_index()
            out[0] = prices = _with_verdicts(prices, verdicts)
        candidates = prices[list(PRICE_POINTS)]
        points = pd.concat([earlier, candidates], ignore_index=True)
        p = rules.prices
        points = newest_points(
            points,
            ["market_id"],
            [
                Window(  # what a late price, behind its series' newest, is compared with
                    series_anchors([points], ["market_id"]),
                    p.state_points,
                    p.state_days * SECONDS_PER_DAY,
                ),
                Window(  # a backfill's own recent past, for its next batch
                    series_anchors([candidates], ["market_id"]),
                    p.history_points,
                    p.history_days * SECONDS_PER_DAY,
                ),
            ],
        )
        now = rows["ingest_time"].iloc[0]
        stored = from_bytes(holds_blob)
        fresh = holds.new_holds(prices, now) if not prices.empty else stored.iloc[0:0]
        waiting = [p for p in (stored, fresh) if not p.empty]
        if not waiting:
            self._save(state, points, None)
            return [*out, reviews[~reviews["review_valid"]].assign(kind="review")]
        pool = pd.concat(waiting, ignore_index=True)
        decisions = holds.decided(
            holds.confirmations(pool, points, rules.hold), holds.reviewed(pool, reviews)
        )
        fresh_ids = set(fresh["event_id"])
        pool["previous_status"] = None
        pool["decided"] = False
        changed = pool["event_id"].isin(decisions["event_id"])
        if changed.any():
            outcome = pool.loc[changed, ["event_id"]].merge(decisions, on="event_id", how="left")
            pool.loc[changed, "previous_status"] = pool.loc[changed, "status"].to_numpy()
            pool.loc[changed, "status"] = outcome["decision"].to_numpy()
            pool.loc[changed, "decided"] = True
        hold_rows = pool[changed | pool["event_id"].isin(fresh_ids)].assign(kind="hold")
        decided_rows = pool[changed].merge(decisions, on="event_id").assign(kind="decision")
        released = pool[changed & (pool["status"] == HoldStatus.released.value)]
        release_rows = released.assign(
            kind="release",
            **{
                FLAGS_MASK: released[FLAGS_MASK] | released["hold_reasons_mask"],
                REASONS_MASK: 0,
            },
        )
        waiting = pool[pool["status"].isin(HoldStatus.reviewable())]
        self._save(state, points, waiting.drop(columns=["previous_status", "decided"]))
        invalid = reviews[~reviews["review_valid"]].assign(kind="review")
        return [*out, hold_rows, decided_rows, release_rows, invalid]


def _with_verdicts(rows: pd.DataFrame, verdicts: pd.DataFrame) -> pd.DataFrame:
    """``rows`` (positions 0…n-1) with the judge's masks and detail columns (indexed by the same
    positions)."""
    columns = [FLAGS_MASK, REASONS_MASK, *[detail_column(d) for d in DETAILS]]
    return rows.assign(**{c: verdicts[c].to_numpy() for c in columns})
