"""The silver query's stateful step: the statistical rules and the held prices of one key, with
the key's state (``lakehouse.domain.validation.series_state``) — the function Spark's
``applyInPandasWithState`` calls once per key and micro-batch.

A key (``_key``, built by ``streaming_jobs.silver.series_key``) is one of:

- ``p|<bucket>``: the prices that passed the hard rules of the provinces × commodities
  (``_group``) that hash to the bucket, and operators' reviews of their held prices. The prices
  are judged against the state's points (``price_judge``), the state keeps each series' newest
  points, and the holds are created, confirmed, refuted or reviewed (``holds``);
- ``s|<bucket>``: the sensor readings that passed the hard rules of the markets that hash to
  the bucket, judged against the state's newest accepted readings (``sensor_judge``);
- ``x``: everything already decided before this step (parse errors, hard-rule failures, reviews
  that are not valid) — passed through untouched.

A bucket holds many series, so that a micro-batch costs a few calls of this function, each
judging thousands of prices at once, rather than one call per series (a call costs
milliseconds of pandas whatever its size); the price of it is that a batch rewrites the state
of the buckets it touches whole (``spark.series_buckets``).

Every event comes out once with its verdict (``kind`` ``event``), a review that is not valid as
``review``; a valid review becomes the decision it makes, if its hold still waits for one. The
decisions on holds add rows of their own: ``hold`` (a new hold or a
status change, for ``silver.holds``), ``decision`` (for ``silver.hold_decisions``) and
``release`` (the released price, for ``silver.prices``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
from pyspark.sql.pandas.types import to_arrow_type
from pyspark.sql.streaming.state import GroupState
from pyspark.sql.types import NumericType, StructType, TimestampType

from lakehouse.catalog.events import HoldStatus
from lakehouse.catalog.rules import QualityRules
from lakehouse.domain.validation import holds, price_judge
from lakehouse.domain.validation.series_state import (
    PRICE_POINTS,
    PRICE_SERIES,
    SECONDS_PER_DAY,
    SENSOR_POINTS,
    SENSOR_SERIES,
    Window,
    from_bytes,
    newest_points,
    series_anchors,
    series_codes,
    to_bytes,
)
from lakehouse.domain.validation.verdicts import DETAILS, FLAGS_MASK, REASONS_MASK, detail_column
from streaming_jobs import sensor_judge
from streaming_jobs.row_kinds import RowKind, SeriesKey

KEY = "_key"
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


@dataclass(frozen=True)
class Output:
    """The step's output columns and how to fill one that a frame lacks."""

    schema: StructType

    def frame(self, rows: pd.DataFrame, **columns: object) -> pd.DataFrame:
        """``rows`` with ``columns`` (arrays, or a value for every row) added, as exactly the
        output columns in order (missing ones null) — one frame built, no copy per column."""
        n = len(rows)
        data = {}
        for field in self.schema.fields:
            if field.name in columns:
                value = columns[field.name]
                data[field.name] = value if isinstance(value, np.ndarray) else np.full(n, value)
            elif field.name in rows.columns:
                data[field.name] = rows[field.name].to_numpy()
            elif isinstance(field.dataType, NumericType):
                data[field.name] = np.full(n, np.nan)
            else:
                data[field.name] = np.full(n, None, dtype=object)
        return pd.DataFrame(data)

    def for_spark(self, frame: pd.DataFrame) -> pd.DataFrame:
        """``frame`` with each column of Python objects that holds only nulls (a verdict column
        of an event, an event field a price has not) as typed nulls: PySpark gathers the frames
        of a micro-batch with ``pandas.concat``, which checks an all-null object column value by
        value (~1 µs each: seconds for a batch of 200 000 rows and a dozen such columns)."""
        n = len(frame)
        typed = {}
        for field in self.schema.fields:
            values = frame[field.name].to_numpy()
            if values.dtype != object or not pd.isna(values).all():
                continue
            if isinstance(field.dataType, TimestampType):
                typed[field.name] = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
            else:
                typed[field.name] = pd.arrays.ArrowExtensionArray(
                    pa.nulls(n, to_arrow_type(field.dataType))
                )
        return frame.assign(**typed) if typed else frame


def stacked(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The chunks of a key's rows (Spark sends them in Arrow batches of at most
    ``spark.sql.execution.arrow.maxRecordsPerBatch``) as one frame, column by column: the
    chunks have the same columns, and ``pandas.concat`` would check each value of a column
    that is all nulls (most of the ``PASSED_ONLY`` ones) one by one."""
    if len(frames) == 1:
        return frames[0].reset_index(drop=True)
    return pd.DataFrame(
        {c: np.concatenate([f[c].to_numpy() for f in frames]) for c in frames[0].columns}
    )


class SeriesJudge:
    """The ``applyInPandasWithState`` function of the silver query (see the module)."""

    def __init__(self, rules: QualityRules, output: StructType) -> None:
        self.rules = rules
        self.output = Output(output)

    def __call__(
        self, key: tuple[str], frames: Iterator[pd.DataFrame], state: GroupState
    ) -> Iterator[pd.DataFrame]:
        rows = stacked(list(frames))
        series = SeriesKey.of(key[0])
        if series is SeriesKey.PRICE:
            out = self._prices(rows, state)
        elif series is SeriesKey.SENSOR:
            out = self._sensors(rows, state)
        else:
            out = [self._passed(rows)]
        yield from (self.output.for_spark(frame) for frame in out if not frame.empty)

    def _passed(self, rows: pd.DataFrame) -> pd.DataFrame:
        reviews = (rows["_kind"] == RowKind.REVIEW).to_numpy()
        kinds = np.where(reviews, RowKind.REVIEW.value, RowKind.EVENT.value)
        return self.output.frame(rows, kind=kinds, **{FLAGS_MASK: 0, REASONS_MASK: 0})

    def _judged(self, rows: pd.DataFrame, verdicts: pd.DataFrame) -> pd.DataFrame:
        """``rows`` (positions 0…n-1) as output with the judge's masks and detail columns
        (indexed by the same positions)."""
        verdicts = verdicts.sort_index()
        columns = [FLAGS_MASK, REASONS_MASK, *[detail_column(d) for d in DETAILS]]
        values = {c: verdicts[c].to_numpy() for c in columns}
        return self.output.frame(rows, kind=RowKind.EVENT.value, **values)

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

    @staticmethod
    def _pool(candidates: pd.DataFrame, earlier: pd.DataFrame) -> pd.DataFrame:
        """The candidates (positions 0…n-1) and the state's points (after them) in one frame."""
        n = len(candidates)
        pool = pd.concat([candidates, earlier], ignore_index=True) if len(earlier) else candidates
        return pool.assign(_candidate=np.arange(len(pool)) < n)

    def _sensors(self, rows: pd.DataFrame, state: GroupState) -> list[pd.DataFrame]:
        rules = self.rules.sensors
        points_blob, _ = self._stored(state)
        earlier = from_bytes(points_blob, SENSOR_POINTS)
        candidates = rows[list(SENSOR_POINTS)]
        verdicts = sensor_judge.judge(self._pool(candidates, earlier), rules)
        judged = self._judged(rows, verdicts)
        accepted = candidates[judged[REASONS_MASK].to_numpy() == 0]
        kept = pd.concat([earlier, accepted], ignore_index=True) if len(earlier) else accepted
        series = series_codes(kept, SENSOR_SERIES)
        windows = [  # behind the newest reading, and behind the batch's (a backfill's) newest
            Window(anchors, rules.stuck_readings, SECONDS_PER_DAY)
            for anchors in (
                series_anchors(series, kept["_sec"].to_numpy()),
                series_anchors(series[len(earlier) :], accepted["_sec"].to_numpy()),
            )
        ]
        self._save(state, newest_points(kept, series, windows), None)
        return [judged]

    def _prices(self, rows: pd.DataFrame, state: GroupState) -> list[pd.DataFrame]:
        rules = self.rules
        points_blob, holds_blob = self._stored(state)
        earlier = from_bytes(points_blob, PRICE_POINTS)
        is_review = (rows["_kind"] == RowKind.REVIEW).to_numpy()
        reviews = rows[is_review] if is_review.any() else rows.iloc[0:0]
        prices = rows[~is_review].reset_index(drop=True) if is_review.any() else rows
        candidates = prices[list(PRICE_POINTS)]
        judged = (  # a batch may bring the key only reviews
            self._judged(prices, price_judge.judge(self._pool(candidates, earlier), rules.prices))
            if len(prices)
            else self.output.frame(prices, kind=RowKind.EVENT.value)
        )
        out = [judged]
        points = pd.concat([earlier, candidates], ignore_index=True) if len(earlier) else candidates
        series = series_codes(points, PRICE_SERIES)
        secs = points["_sec"].to_numpy()
        p = rules.prices
        points = newest_points(
            points,
            series,
            [
                Window(  # what a late price, behind its series' newest, is compared with
                    series_anchors(series, secs), p.state_points, p.state_days * SECONDS_PER_DAY
                ),
                Window(  # a backfill's own recent past, for its next batch
                    series_anchors(series[len(earlier) :], secs[len(earlier) :]),
                    p.history_points,
                    p.history_days * SECONDS_PER_DAY,
                ),
            ],
        )
        stored = from_bytes(holds_blob)
        held = judged[REASONS_MASK].to_numpy() != 0
        if stored.empty and not held.any():
            self._save(state, points, None)
            return out
        now = rows["ingest_time"].iloc[0]
        fresh = holds.new_holds(judged, now)
        pool = pd.concat([f for f in (stored, fresh) if not f.empty], ignore_index=True)
        decisions = holds.decided(
            holds.confirmations(pool, points, rules.hold), holds.reviewed(pool, reviews)
        )
        pool["previous_status"] = None
        pool["decided"] = False
        changed = pool["event_id"].isin(decisions["event_id"])
        if changed.any():
            outcome = pool.loc[changed, ["event_id"]].merge(decisions, on="event_id", how="left")
            pool.loc[changed, "previous_status"] = pool.loc[changed, "status"].to_numpy()
            pool.loc[changed, "status"] = outcome["decision"].to_numpy()
            pool.loc[changed, "decided"] = True
        hold_rows = pool[changed | pool["event_id"].isin(fresh["event_id"])]
        decided_rows = (  # a fresh hold carries the (empty) decision columns of the output
            pool[changed]
            .drop(columns=list(holds.DECISION_COLUMNS[1:]), errors="ignore")
            .merge(decisions, on="event_id")
        )
        released = pool[changed & (pool["status"] == HoldStatus.released.value)]
        waiting = pool[pool["status"].isin(HoldStatus.reviewable())]
        self._save(state, points, waiting.drop(columns=["previous_status", "decided"]))
        return [
            *out,
            self.output.frame(hold_rows, kind=RowKind.HOLD.value),
            self.output.frame(decided_rows, kind=RowKind.DECISION.value),
            # its statistical reasons stay as flags: a price's reasons are among its flags
            self.output.frame(released, kind=RowKind.RELEASE.value, **{REASONS_MASK: 0}),
        ]
