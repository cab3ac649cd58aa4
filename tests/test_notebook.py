"""The example notebook runs top to bottom on the replayed lakehouse (DuckDB engine, no Spark) in
the venv's own kernel, and its answers match pandas on the same Delta tables."""

from __future__ import annotations

import nbformat
import pandas as pd
import pytest
from deltalake import DeltaTable
from nbclient import NotebookClient

from lakehouse.catalog.tables import GOLD_PRICE_DAILY, SILVER_QUARANTINE
from lakehouse.config.settings import PROJECT_ROOT, Settings

NOTEBOOK = PROJECT_ROOT / "notebooks" / "market_questions.ipynb"


def _text(cell: nbformat.NotebookNode) -> str:
    return "".join(
        output.get("text", "") or output.get("data", {}).get("text/plain", "")
        for output in cell.get("outputs", [])
    )


def test_market_questions(replayed: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SMARTMARKET_PATHS__LAKEHOUSE_ROOT", str(replayed.paths.lakehouse_root))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    # the kernel is a child of this process: it inherits the lakehouse root and runs the venv's
    # python
    NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(PROJECT_ROOT)}},
    ).execute()
    code = [c for c in notebook.cells if c.cell_type == "code"]
    shallots, chili, quarantine = (_text(c) for c in code[1:4])

    daily = DeltaTable(str(GOLD_PRICE_DAILY.path(replayed))).to_pandas()
    bawang = daily[daily["commodity"] == "bawang_merah"]
    dates = pd.to_datetime(bawang["date"])
    recent = bawang[dates > dates.max() - pd.Timedelta(days=90)]
    top = recent.groupby("market_id")["close"].mean().idxmax()
    assert f"most expensive for shallots: {top} " in shallots

    assert "most volatile month: cabai_merah 20" in chili
    months = daily[daily["commodity"] == "cabai_merah"]["date"].map(lambda d: f"{d:%Y-%m}")
    assert all(month in chili for month in months.unique())

    quarantined = DeltaTable(str(SILVER_QUARANTINE.path(replayed))).to_pandas()
    by_source = quarantined["source"].fillna(quarantined["topic"]).value_counts()
    for source, count in by_source.items():
        assert any(line.split() == [source, str(count)] for line in quarantine.splitlines())
