"""The CSV report parser and the MQTT payload parser (pure functions, no services)."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from lakehouse.catalog.events import Metric, SensorEvent
from lakehouse.config.errors import InputError
from lakehouse.domain.accounts.registry import Device
from lakehouse.domain.intake.reports import (
    FRAME_COLUMNS,
    open_report,
    parse_number,
    parse_rows,
    price_frame,
)
from lakehouse.domain.intake.time_text import parse_time
from producers.devices import Simulator, fleet
from producers.mqtt_bridge import PayloadError, to_sensor_event
from producers.replay import fan_out, replay, synthetic_market, synthetic_markets
from tests.report_samples import MESSY
from tests.shipped import SHIPPED

WIB = ZoneInfo("Asia/Jakarta")


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("42054", 42054.0),
        ("42.054", 42054.0),
        ("Rp 42.054", 42054.0),
        ("Rp. 1.250.000", 1250000.0),
        ("IDR 15.000", 15000.0),
        ("42054,5", 42054.5),
        ("42054.0", 42054.0),
        ("42054.000", 42054.0),
        ("1.234.567,89", 1234567.89),
        ("1,234,567.89", 1234567.89),
        ("12,5", 12.5),
        ("-3", -3.0),
    ],
)
def test_parse_number_reads_indonesian_and_international_styles(text: str, value: float):
    assert parse_number(text) == value


@pytest.mark.parametrize("text", ["42,054", "abc", "", "1.2.3", "Rp", "12,34,5"])
def test_parse_number_rejects_ambiguous_or_garbage(text: str):
    with pytest.raises(ValueError):
        parse_number(text)


def test_parse_time_formats():
    assert parse_time("2024-01-01", WIB) == datetime(2024, 1, 1, tzinfo=WIB)
    assert parse_time("21/03/2025 08:30", WIB) == datetime(2025, 3, 21, 8, 30, tzinfo=WIB)
    assert parse_time("2025-03-21T08:30:00Z", WIB) == datetime(2025, 3, 21, 8, 30, tzinfo=UTC)
    offset = parse_time("2025-03-21T08:30:00+08:00", WIB)
    assert offset.utcoffset() == timedelta(hours=8)
    with pytest.raises(ValueError):
        parse_time("yesterday", WIB)


def test_messy_price_report(tmp_path: Path):
    path = tmp_path / "report.csv"
    path.write_text(MESSY, encoding="utf-8")
    report = open_report(path, SHIPPED)
    assert (report.kind, report.delimiter) == ("price", ";")
    rows = list(parse_rows(report, WIB))
    good = [r.event for r in rows if r.event]
    bad = {r.line: r.error for r in rows if r.error}
    assert [(e.market_id, e.commodity, e.price, e.unit) for e in good] == [
        ("IP-001", "bawang_merah", 42054.0, "kg"),
        ("IP-003", "cabai_merah", 42054.5, "kg"),
        ("IP-004", "beras", 14500.0, "kg"),
    ]
    assert good[0].attributes == {"tanggal_ignored": "a", "grade": "A"}
    assert good[0].observed_at == datetime(2025, 3, 1, tzinfo=WIB)
    assert good[1].observed_at == datetime(2025, 3, 2, tzinfo=WIB)
    assert good[2].source == "csv:report.csv"
    assert sorted(bad) == [5, 6, 7, 9, 10]
    assert "not a number" in bad[5]
    assert "not a date/time" in bad[6]
    assert "fields" in bad[7]
    assert "missing market_id" in bad[9]
    assert "ambiguous" in bad[10]
    # the same file gives the same event ids (a re-sent file is a recognisable duplicate)
    assert [r.event.event_id for r in parse_rows(open_report(path, SHIPPED), WIB) if r.event] == [
        e.event_id for e in good
    ]


def test_a_whole_file_read_at_once_gives_the_fields_of_its_events(tmp_path: Path):
    """``price_frame`` (large files, each distinct cell parsed once) reads what ``parse_rows``
    reads: the same prices, every unusable row left out."""
    path = tmp_path / "report.csv"
    path.write_text(MESSY, encoding="utf-8")
    report = open_report(path, SHIPPED)
    events = [r.event for r in parse_rows(report, WIB) if r.event]
    frame = price_frame(report, WIB)
    assert list(frame.columns) == list(FRAME_COLUMNS)
    assert frame.to_dict("records") == [{c: getattr(e, c) for c in FRAME_COLUMNS} for e in events]


def test_sensor_format_is_detected(tmp_path: Path):
    path = tmp_path / "sensors.csv"
    path.write_text(
        "observed_at,market_id,device_id,metric,value\n"
        '2025-03-01T08:00:00+07:00,IP-001,IP-001-d1,temperature_c,"28,5"\n'
        "2025-03-01T08:00:00+07:00,IP-001,IP-001-d1,pressure,1\n"
    )
    report = open_report(path, SHIPPED)
    assert report.kind == "sensor"
    first, second = parse_rows(report, WIB)
    assert first.event.value == 28.5 and first.event.metric == Metric.temperature_c
    assert second.error and "metric" in second.error


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "no such file"),
        (b"", "the file is empty"),
        (b"observed_at,market_id,region,commodity,price,unit,source\n", "no data rows"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary file"),
        (b"observed_at|market_id|commodity|price\n2025-01-01|IP-001|beras|1\n", "',' or ';'"),
        (b"date,place,thing\n1,2,3\n", r"lacks column\(s\)"),
        ("observed_at,market_id,commodity,price\n2025,IP,b,\xe9\n".encode("latin-1"), "UTF-8"),
    ],
)
def test_unusable_files_raise_a_clear_error(tmp_path: Path, content, message: str):
    path = tmp_path / "input.csv"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        open_report(path, SHIPPED)


def registered(market_id: str = "IP-001", status: str = "active", metrics=tuple(Metric)):
    """A device lookup knowing one device, ``d1``."""
    now = datetime(2025, 1, 1, tzinfo=WIB)
    d1 = Device("d1", market_id, tuple(metrics), status, 1, now, now, None)
    return {"d1": d1}.get


def test_mqtt_payload_to_sensor_event():
    at = "2025-03-01T08:00:00+07:00"
    event = to_sensor_event(
        "markets/IP-001/devices/d1/humidity_pct",
        f'{{"value": 80.5, "observed_at": "{at}"}}'.encode(),
        "markets",
        registered(),
    )
    assert (event.market_id, event.device_id, event.metric, event.value) == (
        "IP-001",
        "d1",
        "humidity_pct",
        80.5,
    )
    assert event.event_id == SensorEvent.reading_id(
        "d1", "humidity_pct", datetime.fromisoformat(at)
    )


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        (
            "markets/IP-001/d1/humidity_pct",
            b'{"value": 1, "observed_at": "2025-01-01T00:00Z"}',
            "topic",
        ),
        ("markets/IP-001/devices/d1/humidity_pct", b"\xff\xfe", "not JSON"),
        ("markets/IP-001/devices/d1/humidity_pct", b"[1, 2]", "JSON object"),
        (
            "markets/IP-001/devices/d1/pressure",
            b'{"value": 1, "observed_at": "2025-01-01T00:00Z"}',
            "metric",
        ),
        (
            "markets/IP-001/devices/d1/humidity_pct",
            b'{"value": "x", "observed_at": "2025-01-01T00:00Z"}',
            "value",
        ),
        (
            "markets/IP-001/devices/d1/humidity_pct",
            b'{"value": 1, "observed_at": "noon"}',
            "isoformat",
        ),
    ],
)
def test_bad_mqtt_payloads_are_explained(topic: str, payload: bytes, reason: str):
    with pytest.raises(PayloadError, match=reason):
        to_sensor_event(topic, payload, "markets", registered())


@pytest.mark.parametrize(
    ("topic", "lookup", "reason"),
    [
        ("markets/IP-001/devices/d9/humidity_pct", registered(), "unknown device 'd9'"),
        ("markets/IP-001/devices/d1/humidity_pct", registered(status="revoked"), "revoked"),
        (
            "markets/IP-003/devices/d1/humidity_pct",
            registered(),
            "registered for market 'IP-001' but published under market 'IP-003'",
        ),
        (
            "markets/IP-001/devices/d1/humidity_pct",
            registered(metrics=["crowd_count"]),
            "metric 'humidity_pct' is not registered",
        ),
    ],
)
def test_readings_the_registry_does_not_vouch_for_are_refused(topic, lookup, reason):
    with pytest.raises(PayloadError, match=reason):
        to_sensor_event(
            topic, b'{"value": 1, "observed_at": "2025-01-01T00:00Z"}', "markets", lookup
        )


def test_simulator_is_deterministic_and_injects_faults(settings):
    devices = fleet(2, ["IP-001", "IP-003"])
    at = datetime(2025, 3, 1, 7, 0, tzinfo=WIB)

    def readings(fault_rate: float) -> list:
        sim = Simulator(settings, devices, fault_rate=fault_rate, seed=1)
        return [r for step in range(10) for r in sim.readings_at(at + timedelta(minutes=step))]

    a = readings(0.5)
    assert a == readings(0.5)
    healthy = readings(0.0)
    assert len(healthy) == 10 * len(devices) * len(Metric)
    assert all(r.fault is None for r in healthy)
    assert {r.fault for r in a} - {None} <= {"stuck_at_zero", "spike", "clock_skew"}
    assert len(a) < len(healthy)  # dropouts publish nothing


def test_fan_out_is_deterministic_and_lags_some_markets():
    from lakehouse.catalog.events import PriceEvent

    real = PriceEvent(
        market_id="PIHPS-AGG",
        commodity="beras",
        price=14000,
        unit="kg",
        observed_at=datetime(2025, 1, 1, tzinfo=UTC),
        source="pihps",
    )
    markets = synthetic_markets(40, SHIPPED)
    copies = fan_out(real, markets)
    assert copies == fan_out(real, markets)
    assert len({c.market_id for c in copies}) == 40
    assert len({c.event_id for c in copies}) == 40
    assert all(9000 < c.price < 19000 for c in copies)
    assert any(c.observed_at > real.observed_at for c in copies)
    with pytest.raises(InputError, match="more than"):
        synthetic_markets(10_000, SHIPPED)
    # a market fans out alike whether it is among the first n or named
    assert synthetic_market(SHIPPED.markets[markets[7].market_id]) == markets[7]


def test_a_replay_fans_out_only_to_markets_of_the_registry(conf_settings, sample_prices):
    wanted = ("IP-001", "IP-999")
    with pytest.raises(InputError, match=r"no market IP-999 in markets\.csv"):
        replay(sample_prices, conf_settings, None, speed=None, fan_out_to=wanted)  # type: ignore[arg-type]
