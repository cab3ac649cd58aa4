"""The data dictionary: every column of every table has a meaning next to its schema,
docs/data-dictionary.md shows the registry as it is, and `./run.sh tables` describes the live
tables."""

from __future__ import annotations

import re

import pytest

from lakehouse.catalog.tables import TABLES, Layer, Table, Typed, arrow_schema
from lakehouse.cli.analyst import DICTIONARY_DOC
from lakehouse.config.settings import Settings
from lakehouse.io.dictionary import describe, doc_section, markdown
from lakehouse.io.lake import Lakehouse
from scripts.cli import main


def test_data_dictionary_page_is_up_to_date() -> None:
    assert doc_section(DICTIONARY_DOC.read_text(encoding="utf-8")) == markdown(), (
        "docs/data-dictionary.md is stale: run `./run.sh tables --docs`"
    )


@pytest.mark.parametrize("table", [t for t in TABLES.values() if t.schema], ids=str)
def test_declared_types_are_known(table) -> None:
    """Every declared column type maps to an Arrow type, for the writers without Spark: an
    unknown type raises here rather than in the first delta-rs write."""
    arrow_schema(table)


def test_a_schema_needs_every_column_typed() -> None:
    """A table with one untyped column has no declared schema (its writer's frame decides)."""
    typed = {"id": Typed("string", "the id"), "n": Typed("bigint", "how many")}
    assert Table(Layer.gold, "t", "typed", columns=typed).schema == "id string, n bigint"
    mixed = Table(Layer.gold, "t", "mixed", columns={**typed, "note": "free text"})
    assert mixed.schema == ""
    assert mixed.meanings == {"id": "the id", "n": "how many", "note": "free text"}


def test_written_tables_are_documented(replayed: Settings) -> None:
    """Every column the pipeline writes has a meaning, and every meaning a column."""
    for table in TABLES.values():
        info = describe(Lakehouse(replayed)[table])
        if info.version is None:
            continue
        undocumented = [c.name for c in info.columns if not c.meaning]
        unwritten = [c.name for c in info.columns if not c.type]
        assert not undocumented, f"{table.qualified_name}: no meaning for {undocumented}"
        assert not unwritten, f"{table.qualified_name}: documented but not written: {unwritten}"


def test_tables_command(replayed: Settings, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.setenv("SMARTMARKET_PATHS__LAKEHOUSE_ROOT", str(replayed.paths.lakehouse_root))
    assert main(["tables"]) == 0
    out = capsys.readouterr().out
    for table in TABLES.values():
        info = describe(Lakehouse(replayed)[table])
        header = next(line for line in out.splitlines() if line.startswith(table.qualified_name))
        assert f"[{table.layer}]" in header
        if info.version is None:
            assert "not written yet" in header
        else:
            assert f"{info.rows:,} rows · version {info.version}" in header
    assert re.search(r"^ +close +double +last price of the period$", out, re.MULTILINE)
