"""News files into events (lakehouse.domain.intake.news_files through
lakehouse.domain.intake.reports) and into Kafka: both
header shapes, relative Indonesian dates, the same headline kept as one id, bad input."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from lakehouse.catalog.events import NewsEvent
from lakehouse.config.settings import PROJECT_ROOT
from lakehouse.domain.intake.news_files import parse_news_date
from lakehouse.domain.intake.reports import open_report, parse_rows
from lakehouse.io.kafka_io import EventProducer
from producers.csv_ingest import ingest_file
from tests.kafka_helpers import consume, end_offsets
from tests.processes import run_cli
from tests.shipped import SHIPPED

WIB = ZoneInfo("Asia/Jakarta")
NOW = datetime(2026, 11, 25, 14, 0, tzinfo=WIB)
EXPORT = PROJECT_ROOT / "datasets" / "news_headlines_export.csv"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("5 menit yang lalu", NOW - timedelta(minutes=5)),
        ("2 jam yang lalu", NOW - timedelta(hours=2)),
        ("3 hari lalu", NOW - timedelta(days=3)),
        ("Kemarin", NOW - timedelta(days=1)),
        ("minggu lalu", NOW - timedelta(weeks=1)),
        ("seminggu yang lalu", NOW - timedelta(weeks=1)),
        ("2 minggu yang lalu", NOW - timedelta(weeks=2)),
        ("bulan lalu", NOW - timedelta(days=30)),
        ("12 Nov 2026", datetime(2026, 11, 12, tzinfo=WIB)),
        ("Selasa, 12 November 2026 14:05 WIB", datetime(2026, 11, 12, 14, 5, tzinfo=WIB)),
        (
            "3 Agustus 2025 09.30 WITA",
            datetime(2025, 8, 3, 9, 30, tzinfo=ZoneInfo("Asia/Makassar")),
        ),
        ("03/11/2026", datetime(2026, 11, 3, tzinfo=WIB)),
        ("2026-11-20T08:00:00+07:00", datetime(2026, 11, 20, 8, tzinfo=WIB)),
    ],
)
def test_news_dates(text: str, expected: datetime) -> None:
    assert parse_news_date(text, NOW, WIB) == expected


@pytest.mark.parametrize("text", ["kapan-kapan", "5 abad lalu", "32 Nov 2026", ""])
def test_unreadable_news_dates(text: str) -> None:
    with pytest.raises(ValueError, match="unreadable date"):
        parse_news_date(text, NOW, WIB)


def test_the_export_shape_becomes_news_events() -> None:
    report = open_report(EXPORT, SHIPPED, now=NOW)
    assert (report.kind, report.chosen) == ("news_export", "news-search export")
    rows = list(parse_rows(report, WIB))
    events = [r.event for r in rows]
    assert len(rows) == 40 and all(isinstance(e, NewsEvent) for e in events)
    first = events[0]
    assert first.published_at == NOW - timedelta(minutes=5)
    assert first.source == "voi.id" and first.url.startswith("https://staging.voi.id/")
    assert first.collected_from == "csv:news_headlines_export.csv"
    # the same article (same link) always gets the same id, whatever the date says
    assert first.event_id == NewsEvent.headline_id(first.title, "another", first.url)


def test_the_long_shape_and_its_bad_rows(tmp_path) -> None:
    path = tmp_path / "news.csv"
    path.write_text(
        "published_at,title,source,url,text\n"
        '2026-11-24T09:00+07:00,"Harga Cabai Rawit di Bantul Naik",suara.com,,"Pedagang …"\n'
        "2026-11-24T10:00+07:00,,kompas.tv,https://kompas.tv/a,\n"
        "besok pagi,Harga Beras Stabil,kompas.tv,https://kompas.tv/b,\n"
        '2026-11-24T09:00+07:00,"Harga Cabai Rawit di Bantul Naik",suara.com,,\n',
        encoding="utf-8",
    )
    rows = list(parse_rows(open_report(path, SHIPPED), WIB))
    assert [r.error for r in rows] == [
        None,
        "missing title",
        "unreadable date 'besok pagi': write e.g. '2 jam yang lalu', '3 hari lalu', "
        "'12 Nov 2026' or 2026-11-12T14:05+07:00",
        None,
    ]
    assert rows[0].event.text == "Pedagang …"
    # no link: the same publisher and title are the same headline
    assert rows[0].event.event_id == rows[3].event.event_id


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (bytes(range(256)) * 4, "binary file"),
        (b"Judul,Sumber,Tanggal\nHarga cabai naik,kompas,kemarin\n", "news-search export"),
    ],
)
def test_bad_news_files_give_one_error_line(clean_env, tmp_path, content, message) -> None:
    path = tmp_path / "news.csv"
    path.write_bytes(content)
    result = run_cli("ingest", str(path), "--now", "2026-11-25T14:00+07:00")
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("error: ") and message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_bad_now_is_one_error_line(clean_env) -> None:
    result = run_cli("ingest", str(EXPORT), "--now", "tomorrow")
    assert result.returncode == 2 and result.stderr.startswith("error: --now")


def test_news_files_reach_the_news_topic_once(kafka, settings, tmp_path) -> None:
    """Through the real Kafka: every headline on market.news keyed by its id, a row with an
    unreadable date on the dead-letter topic with its reason; sent twice, the ids repeat (silver
    keeps one)."""
    topics = settings.kafka.topics
    path = tmp_path / "export.csv"
    path.write_text(
        EXPORT.read_text(encoding="utf-8") + "Harga Bawang Naik,detik.com,lusa,https://x.id/1\n",
        encoding="utf-8",
    )
    before = {t: end_offsets(settings, t) for t in (topics.news, topics.deadletter)}
    producer = EventProducer(settings)
    summary = ingest_file(path, settings, producer, now=NOW)
    assert (summary.rows, summary.published, summary.dead_lettered) == (41, 40, 1)
    ingest_file(path, settings, producer, now=NOW + timedelta(hours=1))

    news = consume(settings, topics.news, expected=80, since=before[topics.news])
    ids = [v["event_id"] for _, v in news]
    assert len(ids) == 80 and len(set(ids)) == 40
    assert all(k == v["event_id"] for k, v in news)
    letters = consume(settings, topics.deadletter, expected=2, since=before[topics.deadletter])
    assert {v["reason"] for _, v in letters} == {
        "unreadable date 'lusa': write e.g. '2 jam yang lalu', '3 hari lalu', "
        "'12 Nov 2026' or 2026-11-12T14:05+07:00"
    }


class Recorder:
    """A stand-in producer that keeps what it is given (unit tests of the file paths)."""

    def __init__(self) -> None:
        self.events: list = []
        self.letters: list = []

    def send(self, event) -> None:
        self.events.append(event)

    def send_dead_letter(self, letter) -> None:
        self.letters.append(letter)

    def poll(self, timeout: float = 0) -> None:
        pass

    def flush(self, timeout: float = 60.0) -> int:
        return len(self.events)


def test_the_watcher_and_replay_take_news_files(conf_settings, tmp_path) -> None:
    from producers.csv_ingest import FolderWatcher
    from producers.replay import replay

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "news.csv").write_bytes(EXPORT.read_bytes())
    watched = Recorder()
    watcher = FolderWatcher(inbox, conf_settings, watched)
    assert watcher.scan_once() == []  # seen once: maybe still being written
    (summary,) = watcher.scan_once()
    assert (summary.published, summary.format) == (40, "news-search export")
    assert all(isinstance(e, NewsEvent) for e in watched.events)

    replayed = Recorder()
    result = replay(EXPORT, conf_settings, replayed, speed=None)
    assert result.published == 40
    times = [e.published_at for e in replayed.events]
    assert times == sorted(times)  # in event-time order
    assert {e.event_id for e in replayed.events} == {e.event_id for e in watched.events}
