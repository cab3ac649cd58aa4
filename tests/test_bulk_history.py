"""The bulk history load (``./run.sh load-history``) against the stream: the same records through
Kafka and the live silver query, and staged as JSON lines through the history query into a
lakehouse of its own, give the same silver, quarantine and hold rows; a history batch replayed
after a crash and a file staged again add nothing; a bad input is refused before anything is
staged or Spark starts."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from lakehouse.catalog.tables import (
    BRONZE_EVENTS,
    GOLD_DATA_QUALITY,
    HISTORY_BATCHES,
    SILVER_HOLD_DECISIONS,
    SILVER_QUARANTINE,
    query_checkpoint,
)
from lakehouse.io.kafka_io import ensure_topics
from producers.history_files import stage_file
from scripts.cli import main
from streaming_jobs.history import run_history
from streaming_jobs.medallion import HISTORY_QUERY, silver_query
from tests.conftest import drain, isolated
from tests.medallion_data import mixed_records, produce, table
from tests.silver_tables import RUN_TIME, SILVER_TABLES, comparable

#: what says where and when a run took a row, not what the rules made of it: the Kafka
#: coordinates (the history query's are the load and the line: ``history_staging``), the time
#: Kafka or the batch took the record, and the micro-batch (the history query's are numbered
#: from ``HISTORY_BATCHES``)
WHERE_AND_WHEN = RUN_TIME | {
    "partition",
    "offset",
    "kafka_timestamp",
    "silver_batch_id",
    "held_batch_id",
    "decided_batch_id",
}


def test_the_bulk_path_gives_the_streams_rows_once(spark, kafka, settings, tmp_path):
    stream = isolated(settings, tmp_path / "stream")
    ensure_topics(stream)
    records = mixed_records(stream)
    produce(stream, records)
    drain(spark, stream, silver_query)

    paths = {"lakehouse_root": tmp_path / "bulk" / "lake", "checkpoint_root": tmp_path / "bulk"}
    bulk = stream.model_copy(update={"paths": stream.paths.model_copy(update=paths)})
    events = tmp_path / "history.jsonl"
    events.write_bytes(b"".join(raw + b"\n" for _, raw, _ in records))
    load, staged = stage_file(events, bulk)
    assert staged and load.records == len(records)
    result = run_history(spark, bulk, load.records)
    assert (result.batches, result.received, result.duplicates) == (1, len(records), 8)

    for t in SILVER_TABLES:
        streamed, loaded = (comparable(table(run, t), WHERE_AND_WHEN) for run in (stream, bulk))
        assert len(streamed) > 0, t.name
        pd.testing.assert_frame_equal(streamed, loaded, check_exact=True, obj=t.name)
    reasons = Counter(r for rs in table(bulk, SILVER_QUARANTINE)["reasons"] for r in rs)
    assert {"malformed_json", "unknown_market", "non_positive_price", "late"} <= set(reasons)
    assert {"price_out_of_range", "sensor_jump", "median_deviation"} <= set(reasons)
    assert "released" in set(table(bulk, SILVER_HOLD_DECISIONS)["decision"])
    assert (table(bulk, GOLD_DATA_QUALITY)["batch_id"] == HISTORY_BATCHES).all()

    # a crash after the batch's writes, before its commit: the batch again, from its offsets
    written = {t: len(table(bulk, t)) for t in (*SILVER_TABLES, BRONZE_EVENTS, GOLD_DATA_QUALITY)}
    commits = Path(query_checkpoint(bulk, HISTORY_QUERY)) / "commits"
    max((c for c in commits.iterdir() if c.name.isdigit()), key=lambda c: int(c.name)).unlink()
    again, staged = stage_file(events, bulk)
    assert not staged and again.number == load.number  # the same content: not staged twice
    assert run_history(spark, bulk).batches == 1  # replayed ...
    assert {t: len(table(bulk, t)) for t in written} == written  # ... adding nothing
    assert run_history(spark, bulk).batches == 0


@pytest.mark.parametrize(
    ("name", "text", "options", "message"),
    [
        ("missing.csv", None, [], "no such file"),
        ("prices.csv", "tanggal;harga\n2024-01-01;1000\n", [], "lacks column(s)"),
        ("events.jsonl", '{"event_type": "price"}\n', ["--format", "long"], "not JSON lines"),
        ("events.jsonl", "", [], "the file is empty"),
    ],
)
def test_a_bad_input_is_refused_before_anything_is_staged(
    clean_env, monkeypatch, tmp_path, capsys, name, text, options, message
):
    monkeypatch.setenv("SMARTMARKET_PATHS__CHECKPOINT_ROOT", str(tmp_path / "chk"))
    path = tmp_path / name
    if text is not None:
        path.write_text(text, encoding="utf-8")
    assert main(["load-history", str(path), *options]) == 2
    error = capsys.readouterr().err
    assert error.startswith("error: ") and message in error, error
    assert not (tmp_path / "chk").exists()
