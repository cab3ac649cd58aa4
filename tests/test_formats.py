"""Price file formats: the Bapanas panel export, the PIHPS table export, saved formats and
``--map``/``--set``, parsed (pure), sent through the real Kafka by the CLI commands, and once
through bronze → silver. Not-reported cells (0, empty, ``-``) become ``not_reported`` dead
letters, never prices."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from deltalake import DeltaTable

from lakehouse.catalog.events import NOT_REPORTED
from lakehouse.catalog.formats import FormatChoice, FormatError
from lakehouse.catalog.tables import SILVER_PRICES, SILVER_QUARANTINE
from lakehouse.config.errors import InputError
from lakehouse.domain.intake.reports import not_reported, open_report, parse_rows
from lakehouse.io.kafka_io import EventProducer, ensure_topics
from producers.csv_ingest import FolderWatcher, ingest_file
from producers.replay import replay
from tests.conftest import drain, isolated
from tests.kafka_helpers import consume, end_offsets
from tests.processes import run_cli
from tests.shipped import SHIPPED

WIB = ZoneInfo("Asia/Jakarta")

# A Bapanas city export as it comes (BOM, CRLF, Rp./Kg, Indonesian thousands) with a zero, a "-",
# a blank, a commodity the catalogue lacks, a duplicated day, a garbage price and yesterday's
# columns that disagree with yesterday's row for Beras Premium.
BAPANAS = (
    "\ufeffTimestamp,ID,Komoditas,Satuan,Harga,Harga Kemarin,Tanggal Kemarin,Gap,Gap Persen,"
    "Gap Perubahan\r\n"
    '2024-06-03,1,Beras Premium,Rp./Kg,"15.230","15.200",2024-06-02,30,"0,20",Naik\r\n'
    '2024-06-03,2,Beras Medium,Rp./Kg,"13.150","13.150",2024-06-02,0,0,Tetap\r\n'
    '2024-06-03,4,Bawang Merah,Rp./Kg,0,"42.054",2024-06-02,,,\r\n'
    "2024-06-03,5,Minyakita,Rp./Liter,-,,,,,\r\n"
    "2024-06-03,6,Cabai Rawit Merah,Rp./Kg,,,,,,\r\n"
    '2024-06-03,9,Durian Montong,Rp./Kg,"60.000",,,,,\r\n'
    '2024-06-02,1,Beras Premium,Rp./Kg,"15.100",,,,,\r\n'
    '2024-06-03,1,Beras Premium,Rp./Kg,"15.230","15.200",2024-06-02,30,"0,20",Naik\r\n'
    "2024-06-03,7,Telur Ayam Ras,Rp./Kg,abc,,,,,\r\n"
)
BAPANAS_COUNTS = {"rows": 9, "published": 5, "dead": 4, "not_reported": 3}

# A PIHPS table export: ';', day-first date headers with spaces, Roman-numbered category rows
# (left out), "-", 0 and blank cells, and an item the catalogue lacks.
PIHPS = (
    "\ufeffNo.;Komoditas (Rp);01/ 03/ 2024;04/ 03/ 2024;05/ 03/ 2024\r\n"
    "I;Bawang Merah;38.250;38.900;-\r\n"
    "1;Bawang Merah Ukuran Sedang;38.250;38.900;-\r\n"
    "II;Cabai Merah;50.000;51.000;52.000\r\n"
    "2;Cabai Merah Besar;52.350;0;53.100\r\n"
    "3;Cabai Merah Keriting;48.000;;49.000\r\n"
    "4;Cabai Rawit Hijau;45.500;46.000;47.250\r\n"
    "\r\n"
)
PIHPS_COUNTS = {"rows": 12, "published": 9, "dead": 3, "not_reported": 3}


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode("utf-8"))
    return path


def _parsed(path: Path, choice: FormatChoice | None = None):
    rows = list(parse_rows(open_report(path, SHIPPED, choice), WIB))
    return [r.event for r in rows if r.event], [r for r in rows if r.error]


@pytest.mark.parametrize("cell", ["", " ", "-", "0", "0,00", "Rp 0", "—"])
def test_not_reported_cells(cell: str) -> None:
    assert not_reported(cell)


@pytest.mark.parametrize("cell", ["42.054", "1", "abc", "-5"])
def test_prices_and_garbage_are_not_not_reported(cell: str) -> None:
    assert not not_reported(cell)


def test_bapanas_export_is_detected_and_needs_a_market(tmp_path: Path) -> None:
    path = _write(tmp_path, "bapanas.csv", BAPANAS)
    with pytest.raises(InputError, match=r"nothing gives market_id.*--set"):
        open_report(path, SHIPPED)
    report = open_report(path, SHIPPED, FormatChoice(sets=("market_id=PROV-32",)))
    assert report.chosen == "format bapanas (detected from the header) with --set market_id=PROV-32"
    events, errors = _parsed(path, FormatChoice(sets=("market_id=PROV-32",)))
    assert [(e.commodity, e.price, e.unit, str(e.observed_at.date())) for e in events] == [
        ("beras_premium", 15230.0, "kg", "2024-06-03"),
        ("beras", 13150.0, "kg", "2024-06-03"),
        ("durian_montong", 60000.0, "kg", "2024-06-03"),  # silver: unknown_commodity
        ("beras_premium", 15100.0, "kg", "2024-06-02"),
        ("beras_premium", 15230.0, "kg", "2024-06-03"),  # the duplicated day, its own event id
    ]
    assert {e.market_id for e in events} == {"PROV-32"}
    assert {e.source for e in events} == {"bapanas-panel"}
    assert events[0].attributes["harga_kemarin"] == "15.200"
    assert len({e.event_id for e in events}) == 5
    assert [(r.line, r.error) for r in errors] == [
        (4, NOT_REPORTED),
        (5, NOT_REPORTED),
        (6, NOT_REPORTED),
        (10, "not a number: 'abc'"),
    ]


def test_pihps_table_export_one_event_per_date_cell(tmp_path: Path) -> None:
    path = _write(tmp_path, "pihps.csv", PIHPS)
    report = open_report(path, SHIPPED)
    assert (report.chosen, report.delimiter) == ("format pihps (detected from the header)", ";")
    events, errors = _parsed(path)
    assert Counter(e.commodity for e in events) == {
        "bawang_merah": 2,
        "cabai_merah": 2,
        "cabai_merah_keriting": 2,
        "cabai_rawit_hijau": 3,
    }
    first = events[0]
    assert (first.market_id, first.price, first.unit) == ("PIHPS-AGG", 38250.0, "kg")
    assert first.observed_at.isoformat() == "2024-03-01T00:00:00+07:00"
    assert [r.error for r in errors] == [NOT_REPORTED] * 3
    assert errors[1].raw.startswith("04/ 03/ 2024: '0' | 2;Cabai Merah Besar")
    province, _ = _parsed(path, FormatChoice(sets=("market_id=PROV-31",)))
    assert {e.market_id for e in province} == {"PROV-31"}


def test_any_csv_through_map_and_set(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "mine.csv",
        "Tgl;Barang;Harga Jual;Catatan\n03/06/2024;Cabai Rawit;Rp 55.000;pagi\n"
        "03/06/2024;Garam;-;habis\n",
    )
    with pytest.raises(InputError, match=r"lacks column\(s\).*--map"):
        open_report(path, SHIPPED)
    choice = FormatChoice(
        maps=("observed_at=Tgl", "commodity=Barang", "price=Harga Jual"),
        sets=("market_id=IP-001", "source=my-sheet", "region=Daerah Khusus Ibukota Jakarta"),
    )
    assert open_report(path, SHIPPED, choice).chosen.startswith(
        "format long with --map observed_at=tgl"
    )
    events, errors = _parsed(path, choice)
    (event,) = events
    assert (event.market_id, event.commodity, event.price, event.source) == (
        "IP-001",
        "cabai_rawit",
        55000.0,
        "my-sheet",
    )
    assert event.attributes == {"catatan": "pagi"}
    assert event.region == "DKI Jakarta"  # a province's official name, as tables spell it
    assert [r.error for r in errors] == [NOT_REPORTED]


def test_a_saved_format_is_detected_or_named(tmp_path: Path) -> None:
    sheet = "Tanggal,Kode Pasar,Nama Komoditas,Harga Eceran (Rp),Keterangan\n"
    path = _write(tmp_path, "sheet.csv", sheet + "2024-06-03,IP-003,Ikan Bandeng,32.000,segar\n")
    assert open_report(path, SHIPPED).chosen == "format market_sheet (detected from the header)"
    (event,), _ = _parsed(path, FormatChoice(name="market_sheet"))
    assert (event.market_id, event.commodity, event.price) == ("IP-003", "ikan_bandeng", 32000.0)
    assert {"long", "bapanas", "pihps", "market_sheet"} <= set(SHIPPED.formats)


@pytest.mark.parametrize(
    ("choice", "message"),
    [
        (FormatChoice(name="nope"), "no such format"),
        (FormatChoice(maps=("price",)), "FIELD=COLUMN"),
        (FormatChoice(sets=("colour=red",)), "unknown field"),
    ],
)
def test_bad_format_choices_say_what_is_wrong(tmp_path: Path, choice, message: str) -> None:
    path = _write(tmp_path, "x.csv", BAPANAS)
    with pytest.raises(FormatError, match=message):
        open_report(path, SHIPPED, choice)


def _letters(settings, before, expected):
    topics = settings.kafka.topics
    prices = consume(settings, topics.prices, expected["published"], since=before[topics.prices])
    dead = consume(settings, topics.deadletter, expected["dead"], since=before[topics.deadletter])
    return prices, dead


def _offsets(settings):
    return {t: end_offsets(settings, t) for t in settings.kafka.topics.all()}


def test_bapanas_export_through_ingest_into_kafka(kafka, settings, tmp_path: Path) -> None:
    path = _write(tmp_path, "bapanas_kota_bandung.csv", BAPANAS)
    before = _offsets(settings)
    result = run_cli("ingest", str(path), "--set", "market_id=PROV-32")
    assert result.returncode == 0, result.stderr
    c = BAPANAS_COUNTS
    assert "format bapanas (detected from the header) with --set market_id=PROV-32" in result.stdout
    assert (
        f"{c['rows']} rows read, {c['published']} published, {c['dead']} dead-lettered "
        f"({c['not_reported']} not reported)" in result.stdout
    )
    assert "2 rows give a previous-day price that differs" in result.stdout
    prices, dead = _letters(settings, before, c)
    assert len(prices) == c["published"] and len(dead) == c["dead"]
    assert Counter(v["reason"] for _, v in dead)[NOT_REPORTED] == c["not_reported"]
    assert {v["market_id"] for _, v in prices} == {"PROV-32"}


def test_pihps_export_through_replay_into_kafka(kafka, settings, tmp_path: Path) -> None:
    path = _write(tmp_path, "pihps_jabar.csv", PIHPS)
    before = _offsets(settings)
    result = run_cli("replay", str(path), "--speed", "max", "--set", "market_id=PROV-32")
    assert result.returncode == 0, result.stderr
    c = PIHPS_COUNTS
    assert f"{c['rows']} rows read, {c['published']} events published" in result.stdout
    assert f"{c['dead']} dead-lettered ({c['not_reported']} not reported)" in result.stdout
    assert "format pihps (detected from the header)" in result.stdout
    prices, dead = _letters(settings, before, c)
    assert len(prices) == c["published"]
    assert [v["reason"] for _, v in dead] == [NOT_REPORTED] * c["not_reported"]
    assert all(v["origin"] == "replay" and v["file"] == str(path) for _, v in dead)


def test_watched_folder_with_a_format_choice(kafka, settings, tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    _write(inbox, "bandung.csv", BAPANAS)
    before = _offsets(settings)
    choice = FormatChoice(name="bapanas", sets=("market_id=PROV-32",))
    watcher = FolderWatcher(inbox, settings, EventProducer(settings), choice)
    (summary,) = watcher.scan_once() + watcher.scan_once()
    c = BAPANAS_COUNTS
    assert (summary.rows, summary.published, summary.dead_lettered, summary.not_reported) == (
        c["rows"],
        c["published"],
        c["dead"],
        c["not_reported"],
    )
    assert summary.format == "format bapanas (--format) with --set market_id=PROV-32"
    prices, dead = _letters(settings, before, c)
    assert (len(prices), len(dead)) == (c["published"], c["dead"])


@pytest.mark.timeout(1800)  # Spark on a shared two-core machine
def test_both_exports_land_in_silver_with_not_reported_cells_accounted(
    spark, kafka, settings, tmp_path: Path
) -> None:
    from streaming_jobs.medallion import silver_query

    settings = isolated(settings, tmp_path)
    ensure_topics(settings)
    producer = EventProducer(settings)
    bapanas = ingest_file(
        _write(tmp_path, "bandung.csv", BAPANAS),
        settings,
        producer,
        FormatChoice(sets=("market_id=PROV-32",)),
    )
    june = PIHPS.replace("01/ 03/", "02/ 06/").replace("04/ 03/", "03/ 06/")
    pihps = replay(
        _write(tmp_path, "pihps_jakarta.csv", june.replace("05/ 03/", "04/ 06/")),
        settings,
        producer,
        speed=None,
        choice=FormatChoice(sets=("market_id=PROV-31",)),
    )
    drain(spark, settings, silver_query)  # silver is what the exports become

    prices = DeltaTable(str(SILVER_PRICES.path(settings))).to_pandas()
    quarantine = DeltaTable(str(SILVER_QUARANTINE.path(settings))).to_pandas()
    records = bapanas.rows + pihps.rows
    assert len(prices) + len(quarantine) == records == 21
    missing = quarantine[quarantine["error"] == NOT_REPORTED]
    assert len(missing) == BAPANAS_COUNTS["not_reported"] + PIHPS_COUNTS["not_reported"]
    unknown = quarantine[quarantine["reasons"].map(lambda r: "unknown_commodity" in r)]
    assert Counter(unknown["subject"]) == {"durian_montong": 1, "cabai_rawit_hijau": 3}
    assert set(prices["commodity"]) == {
        "beras_premium",
        "beras",
        "bawang_merah",
        "cabai_merah",
        "cabai_merah_keriting",
    }
    assert set(prices["market_id"]) == {"PROV-31", "PROV-32"}
    assert set(prices[prices["market_id"] == "PROV-32"]["region"]) == {"Jawa Barat"}


def test_a_bad_format_option_is_one_error_line(tmp_path: Path) -> None:
    path = _write(tmp_path, "x.csv", BAPANAS)
    result = run_cli("ingest", str(path), "--format", "nope")
    assert result.returncode == 2
    assert result.stderr.startswith("error: --format 'nope': no such format")
