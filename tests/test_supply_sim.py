"""The ``supply`` service (producers.supply_sim): the simulated supply chain published as its
days pass — its history at the first start, then what becomes due, each report once."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from lakehouse.config.settings import Settings, load_settings
from lakehouse.domain.supply_chain.supply_registry import open_supply_registry
from producers.state import first_day
from producers.supply_sim import due_events
from scripts.services.supervisor import services


def _own(settings: Settings, data_dir: Path) -> Settings:
    return settings.model_copy(
        update={"paths": settings.paths.model_copy(update={"data_dir": data_dir})}
    )


def test_the_history_comes_at_once_then_each_report_once_as_it_becomes_due(
    conf_settings: Settings, tmp_path: Path
) -> None:
    own = _own(conf_settings, tmp_path)
    entities = open_supply_registry(own).entities()
    first = date(2026, 11, 27)
    now = datetime(2026, 11, 27, 9, tzinfo=UTC)  # 16:00 in Jakarta: today's reports not yet
    history = due_events(entities, own, first, None, now)
    days = own.supply_simulator.history_days
    stock_days = {e.observed_at.date() for e in history if e.event_type == "stock"}
    assert min(stock_days) == first - timedelta(days=days)
    assert max(stock_days) == first - timedelta(days=1)
    assert [e.observed_at for e in history] == sorted(e.observed_at for e in history)
    assert all(e.observed_at <= now for e in history)

    # later passes: only what became due since, nothing twice, the same as one pass
    passes, after = [], now
    for hours in (3, 12, 30):
        later = now + timedelta(hours=hours)
        passes += due_events(entities, own, first, after, later)
        after = later
    assert passes and all(e.observed_at > now for e in passes)
    ids = [e.event_id for e in history + passes]
    assert len(ids) == len(set(ids))
    assert ids == [e.event_id for e in due_events(entities, own, first, None, after)]


def test_the_first_day_is_recorded_once(conf_settings: Settings, tmp_path: Path) -> None:
    own = _own(conf_settings, tmp_path)
    assert first_day(own, date(2026, 11, 27)) == date(2026, 11, 27)
    assert first_day(own, date(2026, 12, 3)) == date(2026, 11, 27)  # a later start: the same


def test_on_by_default_off_with_one_setting(clean_env, monkeypatch) -> None:
    (service,) = [s for s in services(load_settings()) if s.name == "supply"]
    assert service.endpoint() == "simulated entities every 60s -> market.supply"
    monkeypatch.setenv("SMARTMARKET_SUPPLY_SIMULATOR__ENABLED", "false")
    assert "supply" not in [s.name for s in services(load_settings())]
