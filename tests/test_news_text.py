"""Reading headlines (lakehouse.domain.intake.news_text): commodities, directions, places and
topics, on headlines of the shipped labelled set (datasets/news_headlines_labelled.csv) and on the
cases the lexicon must get right."""

from __future__ import annotations

import pytest

from bench.news_extraction import load, score, split
from lakehouse.domain.intake.news_text import Mention, lexicon, read_headline
from tests.shipped import SHIPPED


def mentions(title: str) -> set[tuple[str, str | None]]:
    return {(m.commodity, m.direction) for m in read_headline(lexicon(SHIPPED), title).mentions}


@pytest.mark.parametrize(
    ("title", "expected"),
    [
        # spellings and the specific chilies
        ("Jelang Ramadhan Harga Cabe Rawit Merah Meroket", {("cabai_rawit", "up")}),
        ("Harga Cabai Merah Keriting Tembus Rp80 Ribu/Kg", {("cabai_merah_keriting", "up")}),
        # generic "cabai" is red chili, "bawang" is shallot — unless a specific one is named
        ("Harga Cabai Anjlok", {("cabai_merah", "down")}),
        ("Harga Bawang di Prabumulih Berangsur Turun", {("bawang_merah", "down")}),
        ("Lonjakan Harga Rawit Merah, Warga Beli Cabai Campur", {("cabai_rawit", "up")}),
        # several commodities, one clause each
        (
            "Update Harga Pangan: Harga Daging Naik, Minyak Goreng Turun",
            {("daging_sapi", "up"), ("minyak_goreng", "down")},
        ),
        # negation, contrast, concession
        ("Harga Beras Tidak Naik Jelang Lebaran", {("beras", "stable")}),
        ("Tak Ada Tanda-tanda Naik, Petani Cabai Pasrah", {("cabai_merah", "stable")}),
        ("Panen Melimpah, Harga Cabai Malah Anjlok", {("cabai_merah", "down")}),
        ("Meski Stok Aman, Harga Cabai Rawit Naik", {("cabai_rawit", "up")}),
        (
            "Jelang Idul Adha Harga Sapi Naik tapi Harga Daging Masih Stabil di Magetan",
            {("daging_sapi", "stable")},
        ),
        # a direction word about something else than a price
        ("Harga Telur Ayam Terus Naik, Omzet Pedagang Menurun", {("telur_ayam", "up")}),
        (
            "Satgas Saber Pangan Turun ke Pasar, Harga Telur dan Daging Stabil Jelang Puasa",
            {("telur_ayam", "stable"), ("daging_sapi", "stable")},
        ),
        ("Bulog Gelar Pasar Beras Murah", {("beras", None)}),
        ("Produktivitas Turun, Harga Bawang Merah Alami Kenaikan", {("bawang_merah", "up")}),
        # a clause without a commodity lends its direction
        (
            "Semuanya Murah, Cabai Rawit maupun Bawang Merah",
            {("cabai_rawit", "down"), ("bawang_merah", "down")},
        ),
        # no commodity at all
        ("Pemkot Serang bersama Bulog genjot operasi pasar murah", set()),
    ],
)
def test_commodities_and_directions(title: str, expected: set) -> None:
    assert mentions(title) == expected


@pytest.mark.parametrize(
    ("title", "province", "regency"),
    [
        ("Harga Bawang Merah Di Palu Sudah Turun", "Sulawesi Tengah", "Kota Palu"),
        (
            "Harga Bawang Putih Tembus Rp48.000 di Jakarta Selatan",
            "DKI Jakarta",
            "Kota Administrasi Jakarta Selatan",
        ),
        ("Harga Cabai di Tangsel Meroket", "Banten", "Kota Tangerang Selatan"),
        ("Harga Ikan di Tanjungpinang Melonjak", "Kepulauan Riau", "Kota Tanjung Pinang"),
        ("Bawang Merah Tembus Rp35 Ribu/Kg di Pasar Induk Kramat Jati", "DKI Jakarta", None),
        ("Di Jateng, Harga Daging Sapi Masih Stabil", "Jawa Tengah", None),
        ("Harga Cabai Naik Sepekan Terakhir", None, None),
        # "seribu" is a number, not Kepulauan Seribu
        ("Harga Garam Naik Seribu Rupiah", None, None),
    ],
)
def test_places(title: str, province: str | None, regency: str | None) -> None:
    reading = read_headline(lexicon(SHIPPED), title)
    assert (reading.province, reading.regency) == (province, regency)


def test_the_lead_gives_the_place_when_the_headline_does_not() -> None:
    reading = read_headline(
        lexicon(SHIPPED), "Harga Cabai Melonjak", "Harga cabai di Pasar Bantul naik tajam."
    )
    assert reading.province == "DI Yogyakarta"
    assert reading.mentions == (Mention("cabai_merah", "up"),)


@pytest.mark.parametrize(
    ("title", "topic"),
    [
        ("Bulog Gelontorkan 186 Ribu Ton Beras untuk Operasi Pasar", "intervention"),
        ("Cuaca Ekstrem, Harga Cabai di Banten Naik Drastis", "supply_disruption"),
        ("Jelang Ramadhan, Stok Beras Dipastikan Aman dan Stabil", "stock"),
        ("Harga Bawang Merah Terus Naik", "price"),
        ("Sebanyak 12 Kecamatan di Kabupaten Bantul Nol Kasus Aktif COVID-19", "other"),
    ],
)
def test_topics(title: str, topic: str) -> None:
    assert read_headline(lexicon(SHIPPED), title).topic == topic


def test_the_lexicon_names_only_catalogue_commodities_and_known_regencies() -> None:
    lex = lexicon(SHIPPED)  # loading checks both (ConfigError otherwise)
    assert lex.commodities[("cabai", "setan")] == "cabai_rawit"
    assert lex.places[("tangsel",)].province == "Banten"


def test_the_labelled_headlines_are_read_well() -> None:
    """The shipped labelled set (real headlines) is read at least as well as docs/news.md
    reports — a lexicon change that loses accuracy fails here."""
    dev, held_out = split(load())
    assert len(dev) + len(held_out) >= 150
    for part in (dev, held_out):
        scores = score(part, lexicon(SHIPPED))
        assert scores.commodities.precision >= 0.95 and scores.commodities.recall >= 0.95
        assert scores.pairs.precision >= 0.9 and scores.pairs.recall >= 0.9
        assert scores.provinces.precision >= 0.95


def test_the_news_surge_rule_reads_from_the_alert_rules() -> None:
    rules = SHIPPED.alerts.news_surge
    assert rules.min_headlines >= 1 and rules.warning <= rules.critical
    assert set(rules.messages()) == {"news_surge"}
