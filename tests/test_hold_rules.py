"""The hold rules on small frames: confirmation, not confirmed, operators' reviews (pandas), and
what the stateful step makes of them across batches (``series_judge`` with an in-memory state:
a hold, its confirmation, the released row; a replayed batch decides as the first attempt)."""

from __future__ import annotations

import json
from datetime import datetime

import pandas as pd
from chispa import assert_df_equality
from pyspark.sql.types import (
    BooleanType,
    DoubleType,
    LongType,
    StringType,
    StructField,
    StructType,
)

from lakehouse.domain.validation import holds
from lakehouse.domain.validation.verdicts import FLAGS_MASK, REASONS_MASK, bit
from streaming_jobs.series_judge import VERDICT_DDL, SeriesJudge
from streaming_jobs.silver import parse_events
from tests.shipped import SHIPPED
from tests.silver_samples import NOW, T0, TOPICS, bronze

RULES = SHIPPED.quality
DAY = 86400


def hold(event_id: str, market: str, day: int, status: str = "held") -> dict:
    return {
        "event_id": event_id, "market_id": market, "commodity": "cabai_merah", "_sec": day * DAY,
        "price": 90000.0, "baseline": 50000.0, "status": status,
    }  # fmt: skip


def point(market: str, day: int, price: float, event_id: str) -> dict:
    return {
        "market_id": market, "commodity": "cabai_merah", "_sec": day * DAY,
        "event_id": event_id, "price": price,
    }  # fmt: skip


def test_two_reports_at_the_new_level_confirm_one_back_refutes():
    held = pd.DataFrame([hold("a", "IP-001", 14), hold("b", "IP-003", 14), hold("c", "IP-004", 14)])
    points = pd.DataFrame(
        [
            point("IP-001", 14, 90000.0, "a"),  # itself: not evidence
            point("IP-001", 15, 91000.0, "a2"),
            point("IP-001", 16, 88000.0, "a3"),
            point("IP-001", 30, 90000.0, "far"),  # outside the window
            point("IP-003", 15, 50500.0, "b2"),  # back at the old level
            point("IP-003", 16, 90000.0, "b3"),
            point("IP-004", 15, 90000.0, "c2"),  # one report only: not yet
            point("IP-004", 13, 50000.0, "c0"),  # the old level, but before: not a refutation
        ]
    )
    decided = holds.confirmations(held, points, RULES.hold)
    assert decided[["event_id", "decision", "supports", "refutes"]].values.tolist() == [
        ["a", "released", 2, 0],
        ["b", "not_confirmed", 1, 1],
    ]


def test_reviews_first_wins_and_only_reviewable_holds():
    held = pd.DataFrame(
        [
            hold("a", "IP-001", 14),
            hold("b", "IP-003", 14, status="not_confirmed"),
            hold("c", "IP-004", 14, status="rejected"),
        ]
    )
    at = pd.Timestamp(NOW) + pd.Timedelta(minutes=1)

    def review(offset: int, target: str, decision: str, reviewer: str, note, seconds: int = 0):
        return {
            "partition": 0, "offset": offset, "review_target_event_id": target,
            "review_decision": decision, "review_reviewer": reviewer, "review_note": note,
            "review_requested_at": at + pd.Timedelta(seconds=seconds),
        }  # fmt: skip

    reviews = pd.DataFrame(
        [
            review(1, "a", "reject", "ops", "typo"),
            review(2, "a", "release", "ops", "ok", seconds=5),
            review(3, "b", "release", "lead", None),
            review(4, "c", "release", "ops", None),
        ]
    )
    decided = holds.reviewed(held, reviews)
    assert decided[["event_id", "decision", "decided_by", "decision_note"]].values.tolist() == [
        ["a", "rejected", "operator:ops", "typo"],
        ["b", "released", "operator:lead", ""],
    ]
    by_rule = pd.DataFrame(
        [{"event_id": "a", "decision": "released", "decided_by": holds.BY_RULE,
          "decision_note": "confirmed", "supports": 2, "refutes": 0}]
    )  # fmt: skip
    both = holds.decided(by_rule, decided)  # the operator's decision wins over the rule's
    assert both.set_index("event_id")["decided_by"].to_dict() == {
        "a": "operator:ops",
        "b": "operator:lead",
    }


def test_a_review_must_name_its_held_price_market_and_commodity(spark):
    target = {"target_event_id": "a", "decision": "reject", "note": "typo", "reviewer": "ops"}
    at = NOW.isoformat()
    records = [
        ("market.reviews", json.dumps({**target, "market_id": "IP-001", "commodity": "beras",
                                       "requested_at": at})),
        ("market.reviews", json.dumps({**target, "requested_at": at})),  # cannot be routed
        ("market.reviews", json.dumps({**target, "decision": "maybe", "market_id": "IP-001",
                                       "commodity": "beras", "requested_at": at})),
    ]  # fmt: skip
    parsed = parse_events(
        bronze(spark, records), TOPICS, "market.deadletter", SHIPPED, "market.reviews"
    )
    expected = spark.createDataFrame(
        [(0, "review", None, True), (1, "review", None, False), (2, "review", None, False)],
        "offset long, _kind string, parse_error string, review_valid boolean",
    )
    assert_df_equality(
        parsed.select("offset", "_kind", "parse_error", "review_valid"),
        expected,
        ignore_nullable=True,
        ignore_row_order=True,
    )


class MemoryState:
    """The state of one key as ``applyInPandasWithState`` hands it over (a unit-test stand-in
    for Spark's ``GroupState``)."""

    def __init__(self, value: tuple | None = None) -> None:
        self.value = value

    @property
    def exists(self) -> bool:
        return self.value is not None

    @property
    def get(self) -> tuple:
        return self.value

    def update(self, value: tuple) -> None:
        self.value = value

    def remove(self) -> None:
        self.value = None


def _prices(rows: list[tuple[str, str, int, float]], now: datetime) -> pd.DataFrame:
    """Price rows as the stateful step receives them (the columns it reads and passes on)."""
    return pd.DataFrame(
        [
            {
                "_kind": "event", "event_id": event_id, "market_id": market, "commodity": "beras",
                "_group": "DKI Jakarta|beras",
                "region": "DKI Jakarta", "price": price, "source": "test",
                "observed_at": pd.Timestamp(T0) + pd.Timedelta(days=day),
                "_sec": int(T0.timestamp()) + day * DAY, "_day": 20148 + day,
                "ingest_time": pd.Timestamp(now), "review_valid": False, "partition": 0,
                "offset": i,
                **dict.fromkeys(REVIEW_FIELDS),
            }
            for i, (event_id, market, day, price) in enumerate(rows)
        ]
    )  # fmt: skip


REVIEW_FIELDS = [f"review_{f}" for f in ("target_event_id", "decision", "note", "reviewer")]
REVIEW_FIELDS.append("review_requested_at")


def _output(spark, rows: pd.DataFrame) -> StructType:
    """The step's output columns for ``rows``: theirs and the step's own (``VERDICT_DDL``)."""
    types = {"int64": LongType(), "float64": DoubleType(), "bool": BooleanType()}
    own = spark.createDataFrame([], VERDICT_DDL).schema.fields
    return StructType(
        [StructField(c, types.get(str(t), StringType())) for c, t in rows.dtypes.items()] + own
    )


def _run(judge: SeriesJudge, state: MemoryState, rows: pd.DataFrame) -> pd.DataFrame:
    return pd.concat(list(judge(("p|0/1",), iter([rows]), state)), ignore_index=True)


def test_a_hold_is_confirmed_released_once_and_a_replay_decides_the_same(spark):
    judge = SeriesJudge(RULES, _output(spark, _prices([("x", "IP-001", 0, 1.0)], NOW)))
    state = MemoryState()
    calm = [(f"c{d}", "IP-001", d, 14000.0 * (1 + 0.001 * (d % 3))) for d in range(20)]
    _run(judge, state, _prices(calm, NOW))
    first = _run(judge, state, _prices([("spike", "IP-001", 20, 31000.0)], NOW))
    (held,) = first[first["kind"] == "hold"].to_dict("records")
    assert held["status"] == "held" and int(held["hold_reasons_mask"]) & bit("median_deviation")
    assert first.loc[first["kind"] == "event", REASONS_MASK].item() != 0  # quarantined too

    before = MemoryState(state.value)
    confirming = _prices([("s2", "IP-001", 21, 30500.0), ("s3", "IP-001", 22, 31500.0)], NOW)
    second = _run(judge, state, confirming)
    # the two reports at the new level are themselves held, and confirm each other with it
    kinds = second.groupby("kind")["event_id"].apply(sorted).to_dict()
    assert kinds["decision"] == kinds["release"] == kinds["hold"] == ["s2", "s3", "spike"]
    release = second[(second["kind"] == "release") & (second["event_id"] == "spike")].iloc[0]
    assert release[REASONS_MASK] == 0 and int(release[FLAGS_MASK]) & bit("median_deviation")
    assert set(second.loc[second["kind"] == "hold", "status"]) == {"released"}
    decided = second[second["kind"] == "decision"]
    assert set(decided["decision"]) == {"released"} and set(decided["decided_by"]) == {
        holds.BY_RULE
    }
    assert set(second.loc[second["kind"] == "hold", "previous_status"]) == {"held"}
    assert release["price"] == 31000.0
    assert state.get[1] is None  # nothing waits any more

    replayed = _run(judge, before, confirming)  # the batch again, from the state before it
    columns = ["kind", "event_id", "status", "decision", REASONS_MASK]
    assert replayed[columns].equals(second[columns])


def test_a_batch_of_only_a_review_decides_the_hold(spark):
    judge = SeriesJudge(RULES, _output(spark, _prices([("x", "IP-001", 0, 1.0)], NOW)))
    state = MemoryState()
    calm = [(f"c{d}", "IP-001", d, 14000.0 * (1 + 0.001 * (d % 3))) for d in range(20)]
    _run(judge, state, _prices([*calm, ("spike", "IP-001", 20, 31000.0)], NOW))
    review = _prices([("r1", "IP-001", 21, 0.0)], NOW).assign(
        _kind="review", review_valid=True, review_target_event_id="spike",
        review_decision="reject", review_reviewer="ops", review_note="typo",
        review_requested_at=pd.Timestamp(NOW),
    )  # fmt: skip
    out = _run(judge, state, review)
    assert out.loc[out["kind"] == "decision", ["event_id", "decision"]].values.tolist() == [
        ["spike", "rejected"]
    ]
    assert "event" not in set(out["kind"])  # no price in the batch, none judged
