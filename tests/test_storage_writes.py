"""The delta-rs writes of the lakehouse (``lakehouse.io.lake``, ``LakeTable``): idempotent
appends, MERGE that retries a commit lost to a concurrent writer, typed errors. Real delta-rs
tables in a temporary folder."""

from __future__ import annotations

import json
import threading
from datetime import date
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from lakehouse.catalog.tables import GOLD_ALERT_DELIVERIES, GOLD_ANOMALIES, Table, arrow_schema
from lakehouse.config.settings import Settings
from lakehouse.io import delta_io
from lakehouse.io.lake import Lakehouse, LakeTable
from lakehouse.io.table_writes import Retry, TableWriteError, WriteConflict
from lakehouse.io.version_checksum import checksum_file, next_checksum


@pytest.fixture
def lake(conf_settings: Settings, tmp_path: Path) -> Lakehouse:
    settings = conf_settings
    paths = settings.paths.model_copy(update={"lakehouse_root": tmp_path / "lakehouse"})
    return Lakehouse(settings.model_copy(update={"paths": paths}))


def keyed_rows(table: Table, keys: range, score: float = 1.0) -> pa.Table:
    """Rows of ``table`` whose first key column is ``k<i>``, the other key columns one constant
    value; ``score`` where the table has one, other columns null."""
    schema = arrow_schema(table)
    constant = {pa.string(): "x", pa.date32(): date(2025, 1, 1)}
    data: dict[str, list] = {}
    for f in schema:
        if f.name == table.keys[0]:
            data[f.name] = [f"k{i}" for i in keys]
        elif f.name in table.keys:
            data[f.name] = [constant[f.type]] * len(keys)
        elif f.name == "score":
            data[f.name] = [score] * len(keys)
        else:
            data[f.name] = [None] * len(keys)
    return pa.Table.from_pydict(data, schema=schema)


def read(table: Table, lake: Lakehouse) -> list[dict]:
    return DeltaTable(lake[table].location).to_pyarrow_table().to_pylist()


def test_append_with_a_transaction_is_idempotent(lake: Lakehouse) -> None:
    rows = keyed_rows(GOLD_ALERT_DELIVERIES, range(3))
    assert lake[GOLD_ALERT_DELIVERIES].append(rows, txn=("notifier", 7))
    assert not lake[GOLD_ALERT_DELIVERIES].append(rows, txn=("notifier", 7))
    assert not lake[GOLD_ALERT_DELIVERIES].append(rows, txn=("notifier", 6))
    assert lake[GOLD_ALERT_DELIVERIES].append(rows, txn=("notifier", 8))
    assert lake[GOLD_ALERT_DELIVERIES].append(rows)  # no txn: always appends
    assert len(read(GOLD_ALERT_DELIVERIES, lake)) == 9


def test_append_marks_its_commit_adds_new_columns_and_checkpoints(lake: Lakehouse) -> None:
    """What the pipeline's appends ask of it (``SparkTable.append_once``): the writer's batch in
    the commit's ``userMetadata`` (``BatchLedger``), a new column added to the schema (and null
    in rows without it), and a checkpoint every tenth version as Spark writes them."""
    rows = keyed_rows(GOLD_ALERT_DELIVERIES, range(2))
    lake[GOLD_ALERT_DELIVERIES].append(rows)
    mark = delta_io.BatchLedger.metadata("silver:q", 4)
    wider = rows.append_column("note", pa.array(["new", None]))
    lake[GOLD_ALERT_DELIVERIES].append(wider, user_metadata=mark, merge_schema=True)
    delta = DeltaTable(lake[GOLD_ALERT_DELIVERIES].location)
    assert delta_io.BatchLedger.mark(delta.history(1)[0]) == ("silver:q", 4)
    assert "note" in delta.schema().to_arrow().names
    assert sorted(r["note"] or "" for r in read(GOLD_ALERT_DELIVERIES, lake)) == [
        "",
        "",
        "",
        "new",
    ]
    for _ in range(9):  # versions 2 … 10, without the new column: null there, as in Spark
        lake[GOLD_ALERT_DELIVERIES].append(rows, merge_schema=True)
    assert [r["note"] for r in read(GOLD_ALERT_DELIVERIES, lake)].count(None) == 21
    log = Path(lake[GOLD_ALERT_DELIVERIES].location) / "_delta_log"
    assert [c.name for c in log.glob("*.checkpoint.parquet")] == [
        "00000000000000000010.checkpoint.parquet"
    ]


def test_merge_inserts_new_keys_and_replaces_only_where_asked(lake: Lakehouse) -> None:
    first = lake[GOLD_ANOMALIES].merge(keyed_rows(GOLD_ANOMALIES, range(4)))
    assert (first.inserted, first.replaced, first.attempts) == (4, 0, 1)
    again = lake[GOLD_ANOMALIES].merge(keyed_rows(GOLD_ANOMALIES, range(2, 6), 2.0))
    assert (again.inserted, again.replaced) == (2, 0)  # no replace_when: existing rows stay
    moved = lake[GOLD_ANOMALIES].merge(
        keyed_rows(GOLD_ANOMALIES, range(6), 3.0), "s.score <> t.score"
    )
    assert (moved.inserted, moved.replaced) == (0, 6)
    assert sorted(r["score"] for r in read(GOLD_ANOMALIES, lake)) == [3.0] * 6


def test_merge_combines_within_a_span_and_checkpoints_as_spark(lake: Lakehouse) -> None:
    """What the pipeline's MERGEs ask of it (``SparkTable.upsert``): a replaced row combines the
    old ``t`` and new ``s`` values, only the ``columns`` named change, ``within`` is part of the
    condition, a null key matches a null key; and a checkpoint every tenth version."""
    first = keyed_rows(GOLD_ANOMALIES, range(3), 1.0)
    first = first.set_column(
        first.schema.get_field_index("kind"), "kind", pa.array(["x", "x", None])
    )
    lake[GOLD_ANOMALIES].merge(first)
    later = first.set_column(first.schema.get_field_index("score"), "score", pa.array([5.0] * 3))
    later = later.set_column(
        later.schema.get_field_index("explanation"), "explanation", pa.array(["new"] * 3)
    )
    merged = lake[GOLD_ANOMALIES].merge(
        later,
        "s.score > t.score",
        combined={"score": "s.score + t.score"},
        columns=["score"],
        within="t.date BETWEEN DATE '2025-01-01' AND DATE '2025-01-01'",
    )
    assert (merged.inserted, merged.replaced) == (0, 3)  # the null kind matched its row
    rows = read(GOLD_ANOMALIES, lake)
    assert sorted(r["score"] for r in rows) == [6.0] * 3
    assert {r["explanation"] for r in rows} == {None}  # not among the columns replaced
    outside = lake[GOLD_ANOMALIES].merge(
        later,
        "true",
        within="t.date BETWEEN DATE '2024-01-01' AND DATE '2024-12-31'",
    )
    assert (outside.inserted, outside.replaced) == (3, 0)  # no row of the span matched

    log = Path(lake[GOLD_ANOMALIES].location) / "_delta_log"
    assert not list(log.glob("*.checkpoint.parquet"))
    for score in range(7):  # versions 4 … 10 (0: the empty table merge created)
        lake[GOLD_ANOMALIES].merge(keyed_rows(GOLD_ANOMALIES, range(1), score), "true")
    assert DeltaTable(lake[GOLD_ANOMALIES].location).version() == 10
    assert [c.name for c in log.glob("*.checkpoint.parquet")] == [
        "00000000000000000010.checkpoint.parquet"
    ]


def stale_then_rewritten(lake: Lakehouse, monkeypatch: pytest.MonkeyPatch, rows: int) -> list:
    """Open ``gold.anomalies`` (keys 0 … ``rows`` - 1 written), then MERGE new scores over all
    its rows; the façade's next open hands out that stale snapshot once, then fresh ones.
    Returns the list of opens, one entry each."""
    stale = DeltaTable(lake[GOLD_ANOMALIES].location)
    lake[GOLD_ANOMALIES].merge(keyed_rows(GOLD_ANOMALIES, range(rows), 2.0), "s.score <> t.score")
    opened: list[Table] = []
    fresh = LakeTable.open_for_write

    def stale_first(bound: LakeTable) -> DeltaTable | None:
        opened.append(bound.table)
        return stale if len(opened) == 1 else fresh(bound)

    monkeypatch.setattr(LakeTable, "open_for_write", stale_first)
    return opened


def test_a_merge_that_loses_to_a_concurrent_commit_retries(lake: Lakehouse, monkeypatch) -> None:
    """A writer opens the table, another commits a MERGE over the same rows, then the first
    commits: delta-rs rejects the stale commit and the façade retries on a fresh snapshot."""
    lake[GOLD_ANOMALIES].merge(keyed_rows(GOLD_ANOMALIES, range(4)))
    stale_then_rewritten(lake, monkeypatch, 4)
    result = lake[GOLD_ANOMALIES].merge(
        keyed_rows(GOLD_ANOMALIES, range(6), 3.0), "s.score <> t.score"
    )
    assert result.attempts == 2
    assert (result.inserted, result.replaced) == (2, 4)
    assert sorted(r["score"] for r in read(GOLD_ANOMALIES, lake)) == [3.0] * 6

    always_stale = DeltaTable(lake[GOLD_ANOMALIES].location, version=0)
    monkeypatch.setattr(LakeTable, "open_for_write", lambda _: always_stale)
    with pytest.raises(WriteConflict, match=r"gold\.anomalies"):
        lake[GOLD_ANOMALIES].merge(
            keyed_rows(GOLD_ANOMALIES, range(6), 4.0),
            "s.score <> t.score",
            Retry(attempts=2, backoff_seconds=0.01),
        )


def test_writers_that_lost_the_same_commit_wait_apart() -> None:
    """A retry's pause is its back-off step's upper half, drawn at random: equal pauses had the
    losers of one commit try again in step and lose to each other again."""
    retry = Retry(backoff_seconds=0.05, backoff_max_seconds=2.0)
    for attempt, step in ((0, 0.05), (3, 0.4), (10, 2.0)):
        pauses = [retry.pause(attempt) for _ in range(50)]
        assert all(step / 2 <= p <= step for p in pauses)
        assert len(set(pauses)) > 1


def test_concurrent_writers_all_land_once(lake: Lakehouse) -> None:
    """Four threads MERGE overlapping key ranges into one table at once, the first of them
    creating it: every key ends up there exactly once, with no error."""
    start = threading.Barrier(4)
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        start.wait()
        try:
            for j in range(3):
                keys = range(i * 10 + j * 3, i * 10 + j * 3 + 5)
                lake[GOLD_ANOMALIES].merge(keyed_rows(GOLD_ANOMALIES, keys))
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    ids = [r[GOLD_ANOMALIES.keys[0]] for r in read(GOLD_ANOMALIES, lake)]
    expected = {i * 10 + j * 3 + k for i in range(4) for j in range(3) for k in range(5)}
    assert len(ids) == len(expected)


def test_a_write_delta_rs_refuses_is_a_typed_error(lake: Lakehouse) -> None:
    lake[GOLD_ALERT_DELIVERIES].append(keyed_rows(GOLD_ALERT_DELIVERIES, range(1)))
    wrong = pa.table({"something": ["else"]})
    with pytest.raises(TableWriteError, match=r"gold\.alert_deliveries"):
        lake[GOLD_ALERT_DELIVERIES].append(wrong)


def test_upkeep_compacts_retries_vacuums_and_tidies_the_log(lake: Lakehouse, monkeypatch) -> None:
    """``maintain``'s writes: OPTIMIZE on a snapshot a MERGE has since rewritten loses its commit
    and runs again on a fresh one, leaving one file with the same rows and no data change;
    VACUUM then deletes every unreferenced file, the lost attempt's output too (a retention of
    0 h); the log gets a checkpoint."""
    for keys in (range(0, 3), range(3, 6), range(6, 9)):
        lake[GOLD_ANOMALIES].append(keyed_rows(GOLD_ANOMALIES, keys))
    opened = stale_then_rewritten(lake, monkeypatch, 9)
    lake[GOLD_ANOMALIES].optimize(("commodity", "market_id"))
    assert len(opened) == 2  # the stale attempt lost, the fresh one committed
    monkeypatch.undo()

    delta = DeltaTable(lake[GOLD_ANOMALIES].location)
    assert delta.history(1)[0]["operation"] == "OPTIMIZE"
    assert len(delta.file_uris()) == 1
    assert sorted(r["score"] for r in read(GOLD_ANOMALIES, lake)) == [2.0] * 9

    folder = Path(lake[GOLD_ANOMALIES].location)
    lake[GOLD_ANOMALIES].vacuum(0)
    on_disk = [p.name for p in folder.rglob("*.parquet") if "_delta_log" not in p.parts]
    assert on_disk == [Path(uri).name for uri in DeltaTable(str(folder)).file_uris()]

    lake[GOLD_ANOMALIES].tidy_log()
    assert (folder / "_delta_log" / "_last_checkpoint").is_file()


def _crc(table: Table, settings: Settings, version: int) -> Path:
    return Path(checksum_file(table, settings, version))


def test_delta_rs_commits_carry_checksums_that_add_up(lake: Lakehouse) -> None:
    """Each commit of ours after one with a checksum gets one (``version_checksum``): the
    table's live files and bytes as delta-rs counts them, its newest protocol and metadata, its
    app transactions. The first checksum is written here as Spark writes one for its commits."""
    table = GOLD_ALERT_DELIVERIES
    assert lake[table].append(keyed_rows(table, range(3)), txn=("notifier", 1))
    assert not _crc(table, lake.settings, 0).exists()  # delta-rs's own first commit: no base
    lines = Path(table.log(lake.settings, 0)).read_text().splitlines()
    first = {kind: body for line in lines for kind, body in json.loads(line).items()}
    delta = DeltaTable(lake[table].location)
    sizes = delta.get_add_actions(flatten=True).column("size_bytes").to_pylist()
    base = {
        "tableSizeBytes": sum(sizes), "numFiles": len(sizes), "numMetadata": 1, "numProtocol": 1,
        "setTransactions": [first["txn"]], "metadata": first["metaData"],
        "protocol": first["protocol"],
    }  # fmt: skip
    _crc(table, lake.settings, 0).write_text(json.dumps(base))

    lake[table].append(keyed_rows(table, range(3, 5)), txn=("notifier", 2))
    wider = keyed_rows(table, range(5, 6)).append_column("note", pa.array(["new"]))
    lake[table].append(wider, merge_schema=True)
    lake[table].merge(keyed_rows(table, range(4, 8)), replace_when="true")
    lake[table].optimize([])
    delta = DeltaTable(lake[table].location)
    assert delta.version() == 4
    for version in range(1, 5):
        at = DeltaTable(lake[table].location, version=version)
        sizes = at.get_add_actions(flatten=True).column("size_bytes").to_pylist()
        checksum = json.loads(_crc(table, lake.settings, version).read_text())
        assert (checksum["numFiles"], checksum["tableSizeBytes"]) == (len(sizes), sum(sizes))
        assert json.loads(checksum["metadata"]["schemaString"]) == json.loads(at.schema().to_json())
    assert [(t["appId"], t["version"]) for t in checksum["setTransactions"]] == [("notifier", 2)]
    assert "note" in checksum["metadata"]["schemaString"]  # the merged schema's metaData action


def test_a_commit_without_a_base_or_its_sizes_gets_no_checksum() -> None:
    """``next_checksum`` derives nothing it cannot count: a file removed without its size, an
    action it does not know, a base missing what Spark's checksums hold."""
    base = {"tableSizeBytes": 10, "numFiles": 1, "metadata": {}, "protocol": {}}
    assert next_checksum(base, [{"add": {"size": 5}}, {"commitInfo": {}}])["numFiles"] == 2
    assert next_checksum(base, [{"remove": {"path": "a"}}]) is None
    assert next_checksum(base, [{"domainMetadata": {"domain": "d"}}]) is None
    assert next_checksum(base, [{"commitInfo": {"inCommitTimestamp": 1}}]) is None
    assert next_checksum(base, [{"txn": {"appId": "a", "version": 1}}]) is None  # none kept
    assert next_checksum({"numFiles": 1}, [{"add": {"size": 5}}]) is None
