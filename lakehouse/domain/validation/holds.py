"""Held prices — pure pandas, run per bucket of provinces × commodities by the silver query's
stateful step (``streaming_jobs.series_judge``), next to the series state they read.

A price that passed every hard rule but was quarantined by the statistical ones (``zscore``,
``iqr``, ``median_deviation``, ``cross_market``) is *held*, not binned: a real spike looks like a
data-entry error until a second report confirms it. A hold ends in one of these ways:

- **confirmed** (``released`` by ``rule:confirmation``): ``hold.confirm_reports`` other reports of
  the same market × commodity (any source) within ``hold.window_days`` of it are at its level
  (± ``hold.level_tolerance``), and none after it is back at the earlier level. The price is
  released into silver and gold recomputes what it touches;
- **not confirmed**: a later report is back at the earlier level first. The price stays held
  (an operator may still release it), its alert resolves "not confirmed";
- **reviewed**: an operator releases or rejects it (``POST /api/v1/quarantine/{event_id}/…``,
  through the reviews topic). A rejected price stays out for good.

Every decision is one row of ``silver.hold_decisions``; ``silver.holds`` keeps each hold's
status. Holds waiting for a decision live in the series state, so a replayed batch decides as
the first attempt did. Hard-rule failures are never held, so never released.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from lakehouse.catalog.events import HoldStatus, ReviewDecision
from lakehouse.catalog.rules import HoldRules
from lakehouse.domain.validation.series_state import PRICE_SERIES, SECONDS_PER_DAY
from lakehouse.domain.validation.verdicts import REASONS_MASK, detail_column

BY_RULE = "rule:confirmation"
#: what a review's decision makes of the hold
REVIEW_DECISIONS = {d.value: d.outcome.value for d in ReviewDecision}
DECISION_COLUMNS = ("event_id", "decision", "decided_by", "decision_note", "supports", "refutes")
#: the notes of the rule's decisions
NOT_CONFIRMED_NOTE = "a later report came back to the level before the move"
CONFIRMED_NOTE = "confirmed by {supports} reports at the new level"


def baseline_of(judged: pd.DataFrame) -> pd.Series:
    """The level each judged price is measured against: the rolling median of its series, else
    the median of the other markets that day (NaN: neither)."""
    return judged[detail_column("rolling_median")].fillna(
        judged[detail_column("cross_market_median")]
    )


def new_holds(judged: pd.DataFrame, now: pd.Timestamp) -> pd.DataFrame:
    """The judged prices (hard rules passed) that the statistical rules quarantined, as holds:
    their row, the level before the move (``baseline_of``), the move and ``status`` held."""
    held = judged[judged[REASONS_MASK] != 0]
    baseline = baseline_of(held)
    return held.assign(
        hold_reasons_mask=held[REASONS_MASK],
        baseline=baseline,
        move=held["price"] / baseline - 1,
        held_at=now,
        status=HoldStatus.held.value,
    )


def confirmations(holds: pd.DataFrame, points: pd.DataFrame, rules: HoldRules) -> pd.DataFrame:
    """Rule decisions (:data:`DECISION_COLUMNS`) on the ``held`` rows of ``holds`` from the
    points of their series (``points``: commodity, market_id, _sec, event_id, price — the series
    state after the batch, held prices included): ``not_confirmed`` when a later report is back
    at the baseline, ``released`` when ``confirm_reports`` others are at the held level."""
    held = holds[holds["status"] == HoldStatus.held.value]
    evidence = held[["event_id", *PRICE_SERIES, "_sec", "price", "baseline"]].merge(
        points[[*PRICE_SERIES, "_sec", "event_id", "price"]],
        on=list(PRICE_SERIES),
        suffixes=("", "_p"),
    )
    evidence = evidence[
        (evidence["event_id_p"] != evidence["event_id"])
        & (
            (evidence["_sec_p"] - evidence["_sec"]).abs()
            <= int(rules.window_days * SECONDS_PER_DAY)
        )
    ]
    tolerance = rules.level_tolerance
    at_level = (evidence["price_p"] / evidence["price"] - 1).abs() <= tolerance
    back = (evidence["_sec_p"] > evidence["_sec"]) & (
        (evidence["price_p"] / evidence["baseline"] - 1).abs() <= tolerance
    )
    counted = (
        evidence.assign(supports=at_level, refutes=back)
        .groupby("event_id")[["supports", "refutes"]]
        .sum()
        .reindex(held["event_id"], fill_value=0)
        .reset_index()
    )
    refuted = counted["refutes"] > 0
    confirmed = ~refuted & (counted["supports"] >= rules.confirm_reports)
    counted["decision"] = np.where(
        refuted, HoldStatus.not_confirmed.value, np.where(confirmed, HoldStatus.released.value, "")
    )
    counted["decided_by"] = BY_RULE
    counted["decision_note"] = [
        NOT_CONFIRMED_NOTE if r else CONFIRMED_NOTE.format(supports=s)
        for r, s in zip(refuted, counted["supports"], strict=True)
    ]
    decided = counted[counted["decision"] != ""]
    return decided.astype({"supports": "int64", "refutes": "int64"})[list(DECISION_COLUMNS)]


def reviewed(holds: pd.DataFrame, reviews: pd.DataFrame) -> pd.DataFrame:
    """Operators' decisions (:data:`DECISION_COLUMNS`) on reviewable holds, from valid
    ``reviews`` (``review_valid`` of ``silver.parse_events``: a decision of
    :data:`REVIEW_DECISIONS`; ``review_target_event_id``, ``review_decision``, ``review_reviewer``,
    ``review_note``, ``review_requested_at`` and their Kafka ``partition`` and ``offset``): of
    several reviews of one hold the first requested wins; a review of a hold no longer
    reviewable changes nothing."""
    reviewable = holds.loc[holds["status"].isin(HoldStatus.reviewable()), "event_id"]
    mine = reviews[reviews["review_target_event_id"].isin(reviewable)]
    first = mine.sort_values(
        ["review_requested_at", "partition", "offset"], kind="stable"
    ).drop_duplicates("review_target_event_id")
    return pd.DataFrame(
        {
            "event_id": first["review_target_event_id"].to_numpy(),
            "decision": first["review_decision"].map(REVIEW_DECISIONS).to_numpy(),
            "decided_by": ("operator:" + first["review_reviewer"]).to_numpy(),
            "decision_note": first["review_note"].fillna("").to_numpy(),
            "supports": pd.array([None] * len(first), dtype="Int64"),
            "refutes": pd.array([None] * len(first), dtype="Int64"),
        }
    )


def decided(by_rule: pd.DataFrame, by_operator: pd.DataFrame) -> pd.DataFrame:
    """The batch's decisions: an operator's wins over the rule's on the same hold."""
    rule = by_rule[~by_rule["event_id"].isin(by_operator["event_id"])]
    parts = [p for p in (by_operator, rule) if not p.empty]
    if not parts:
        return by_rule.iloc[0:0]
    return pd.concat(parts, ignore_index=True).astype({"supports": "Int64", "refutes": "Int64"})
