"""Tamper-evident ledger of accepted prices: a hash chain per market × commodity.

Every row of ``silver.prices`` gets one entry in ``gold.price_ledger``. An entry's
``content_hash`` is the SHA-256 of the canonical JSON of the price's fields (``content``); its
``entry_hash`` is SHA-256(``prev_hash`` + ``content_hash``), ``prev_hash`` being the entry hash of
the chain's previous entry (64 zeros for the first). Editing a price — in silver or in the
ledger — or removing or inserting an entry breaks the recomputation at exactly that entry.

One chain per market × commodity (not one global chain) keeps appends independent per series,
lets an outsider check one series without the others, and makes a broken link name the series.

``build`` runs outside the Spark pipeline (``./run.sh ledger``): it reads silver with delta-rs,
appends the rows not yet in the ledger in (micro-batch, time, id) order, under a file lock so two
builders never fork a chain; event ids already chained are skipped, so a replayed batch (whose
copies silver drops anyway) adds nothing. ``verify`` recomputes every chain.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from lakehouse.catalog.tables import GOLD_PRICE_LEDGER, SILVER_PRICES, arrow_schema
from lakehouse.config.settings import Settings
from lakehouse.io.fast_read import Condition, TableMissing
from lakehouse.io.lake import Lakehouse

GENESIS = "0" * 64
#: the fields of a price an entry vouches for, in their canonical order
FIELDS = ("event_id", "market_id", "commodity", "observed_at", "price", "unit", "source")


def content(row: dict[str, Any]) -> str:
    """The canonical JSON of a price: ``FIELDS`` in order, the time in UTC ISO 8601 with
    microseconds, the price as the shortest float that round-trips."""
    at: datetime = row["observed_at"]
    values = [row[f] for f in FIELDS]
    values[FIELDS.index("observed_at")] = at.astimezone(UTC).isoformat(timespec="microseconds")
    values[FIELDS.index("price")] = float(row["price"])
    return json.dumps(values, ensure_ascii=False, separators=(",", ":"))


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def link(prev_hash: str, content_hash: str) -> str:
    return sha256(prev_hash + content_hash)


def chain_of(row: dict[str, Any]) -> str:
    return f"{row['market_id']}|{row['commodity']}"


def _order(row: dict[str, Any]) -> tuple:
    return (row["silver_batch_id"], row["observed_at"], row["event_id"])


def extend(
    heads: dict[str, tuple[int, str]], rows: Iterable[dict[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    """Ledger entries appending ``rows`` to the chains whose heads (last seq, entry hash) are
    given; ``heads`` is advanced. Pure."""
    entries = []
    for row in sorted(rows, key=_order):
        chain = chain_of(row)
        seq, prev = heads.get(chain, (-1, GENESIS))
        content_hash = sha256(content(row))
        entry_hash = link(prev, content_hash)
        entries.append(
            {
                "chain": chain,
                "seq": seq + 1,
                **{f: row[f] for f in FIELDS},
                "silver_batch_id": row["silver_batch_id"],
                "content_hash": content_hash,
                "prev_hash": prev,
                "entry_hash": entry_hash,
                "ledgered_at": now,
            }
        )
        heads[chain] = (seq + 1, entry_hash)
    return entries


def _ledger(lake: Lakehouse) -> pa.Table:
    try:
        return lake[GOLD_PRICE_LEDGER].read()
    except TableMissing:
        return arrow_schema(GOLD_PRICE_LEDGER).empty_table()


def _silver(lake: Lakehouse, columns: list[str], where: Sequence[Condition] = ()) -> pa.Table:
    try:
        return lake[SILVER_PRICES].read(columns, where)
    except TableMissing:
        return pa.table({c: [] for c in columns})


def build(settings: Settings) -> int:
    """Append the silver.prices rows not yet chained; the number of entries appended."""
    lock_path = settings.paths.data_dir / "ledger.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as lock, contextlib.ExitStack() as stack:
        fcntl.flock(lock, fcntl.LOCK_EX)
        stack.callback(fcntl.flock, lock, fcntl.LOCK_UN)
        lake = Lakehouse(settings)
        ledger = _ledger(lake).select(["chain", "seq", "entry_hash", "event_id", "silver_batch_id"])
        heads: dict[str, tuple[int, str]] = {}
        for row in ledger.select(["chain", "seq", "entry_hash"]).to_pylist():
            if row["seq"] > heads.get(row["chain"], (-1, ""))[0]:
                heads[row["chain"]] = (row["seq"], row["entry_hash"])
        newest = pc.max(ledger["silver_batch_id"]).as_py() if len(ledger) else None
        # batches commit atomically: everything before the newest chained batch is chained
        where = [] if newest is None else [("silver_batch_id", ">=", newest)]
        silver = _silver(lake, [*FIELDS, "silver_batch_id"], where)
        chained = set(ledger["event_id"].to_pylist())
        fresh = [r for r in silver.to_pylist() if r["event_id"] not in chained]
        if not fresh:
            return 0
        entries = extend(heads, fresh, datetime.now(UTC))
        lake[GOLD_PRICE_LEDGER].append(
            pa.Table.from_pylist(entries, schema=arrow_schema(GOLD_PRICE_LEDGER)),
        )
        return len(entries)


@dataclass(frozen=True)
class Break:
    chain: str
    seq: int
    event_id: str
    observed_at: datetime
    reason: str


@dataclass(frozen=True)
class Verdict:
    ok: bool
    entries: int
    chains: int
    checked: int
    broken: list[Break]

    def as_dict(self) -> dict[str, Any]:
        result = asdict(self)
        result["first_broken"] = result["broken"][0] if self.broken else None
        return result


def check_chain(entries: list[dict[str, Any]], silver: dict[str, dict[str, Any]]) -> list[Break]:
    """Every broken link of one chain (entries in seq order), each with what is wrong. Pure."""
    broken = []
    prev = GENESIS
    for position, entry in enumerate(entries):
        content_hash = sha256(content(entry))
        current = silver.get(entry["event_id"])
        if entry["seq"] != position:
            reason = f"expected seq {position}: an entry was removed or inserted before it"
        elif entry["prev_hash"] != prev:
            reason = "prev_hash is not the previous entry's hash: the chain was re-linked"
        elif content_hash != entry["content_hash"]:
            reason = "the ledger entry was edited: its fields no longer match its content_hash"
        elif link(prev, content_hash) != entry["entry_hash"]:
            reason = "entry_hash is not SHA-256(prev_hash + content_hash)"
        elif current is None:
            reason = "the price is no longer in silver.prices"
        elif sha256(content(current)) != content_hash:
            changed = [f for f in FIELDS if content({**entry, f: current[f]}) != content(entry)]
            reason = f"silver.prices was edited after it was chained: {', '.join(changed)}"
        else:
            reason = ""
        if reason:
            broken.append(
                Break(entry["chain"], entry["seq"], entry["event_id"], entry["observed_at"], reason)
            )
        prev = entry["entry_hash"]
    return broken


def verify(settings: Settings, on: date | None = None) -> Verdict:
    """Recompute every chain against itself and against silver.prices; ``on`` reports only the
    entries observed on that local date (the chains are still walked from their start)."""
    lake = Lakehouse(settings)
    ledger = _ledger(lake).to_pylist()
    if not ledger:  # nothing chained yet: no need to read silver (~1 s for 450 day partitions)
        return Verdict(True, 0, 0, 0, [])
    silver = {r["event_id"]: r for r in _silver(lake, list(FIELDS)).to_pylist()}
    chains: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for entry in ledger:
        chains[entry["chain"]].append(entry)
    broken: list[Break] = []
    for chain in sorted(chains):
        broken += check_chain(sorted(chains[chain], key=lambda e: e["seq"]), silver)

    def chosen(at: datetime) -> bool:
        return on is None or at.astimezone(settings.tz).date() == on

    broken = sorted((b for b in broken if chosen(b.observed_at)), key=lambda b: b.observed_at)
    checked = sum(chosen(e["observed_at"]) for e in ledger)
    return Verdict(not broken, len(ledger), len(chains), checked, broken)


def proof(settings: Settings, event_id: str) -> dict[str, Any] | None:
    """What an outsider needs to check one price: its entry, the canonical content that hashes
    to ``content_hash``, and the chain's head (later entries are linked up to it)."""
    ledger = _ledger(Lakehouse(settings))
    found = ledger.filter(pc.field("event_id") == event_id).to_pylist()
    if not found:
        return None
    entry = found[0]
    chain = ledger.filter(pc.field("chain") == entry["chain"])
    head = chain.filter(pc.field("seq") == pc.max(chain["seq"]).as_py()).to_pylist()[0]
    return {
        "entry": entry,
        "content": content(entry),
        "recipe": "content_hash = sha256(content); entry_hash = sha256(prev_hash + content_hash)",
        "head": {"seq": head["seq"], "entry_hash": head["entry_hash"]},
    }
