"""Reference data of conf/: every province, the province aggregates, markets added by
configuration, and the national strategic commodity catalogue with the exports' spellings."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from lakehouse.catalog.reference import (
    commodities,
    commodity_id,
    markets,
    normal_form,
    province_name,
    provinces,
)
from lakehouse.config.settings import DATASETS_DIR, ConfigError

# The items of Badan Pangan Nasional's consumer-price panel, as its export spells them.
BAPANAS_ITEMS = {
    "Beras Premium": "beras_premium",
    "Beras Medium": "beras",
    "Beras SPHP": "beras_sphp",
    "Jagung Tingkat Peternak": "jagung_peternak",
    "Kedelai Biji Kering (Impor)": "kedelai_impor",
    "Bawang Merah": "bawang_merah",
    "Bawang Putih Bonggol": "bawang_putih",
    "Cabai Merah Keriting": "cabai_merah_keriting",
    "Cabai Merah Besar": "cabai_merah",
    "Cabai Rawit Merah": "cabai_rawit",
    "Daging Sapi Murni": "daging_sapi",
    "Daging Ayam Ras": "daging_ayam",
    "Telur Ayam Ras": "telur_ayam",
    "Gula Konsumsi": "gula_pasir",
    "Minyak Goreng Kemasan": "minyak_goreng_kemasan",
    "Minyak Goreng Curah": "minyak_goreng",
    "Minyakita": "minyakita",
    "Tepung Terigu (Curah)": "tepung_terigu_curah",
    "Tepung Terigu (Kemasan)": "tepung_terigu_kemasan",
    "Ikan Kembung": "ikan_kembung",
    "Ikan Tongkol": "ikan_tongkol",
    "Ikan Bandeng": "ikan_bandeng",
    "Garam Konsumsi": "garam_konsumsi",
    "Daging Kerbau Beku": "daging_kerbau_beku",
    "Daging Kerbau Segar": "daging_kerbau_segar",
}
ORIGINAL_IDS = [
    "bawang_merah",
    "bawang_putih",
    "cabai_merah",
    "cabai_rawit",
    "beras",
    "gula_pasir",
    "minyak_goreng",
    "daging_ayam",
    "daging_sapi",
    "telur_ayam",
]


def test_every_province_with_its_bps_code_and_centroid() -> None:
    with (DATASETS_DIR / "indonesia_provinces.csv").open(encoding="utf-8") as fh:
        official = {row["province_code"]: row for row in csv.DictReader(fh)}
    assert len(provinces()) == len(official) == 38
    for code, row in official.items():
        p = provinces()[code]
        assert (p.latitude, p.longitude) == (float(row["latitude"]), float(row["longitude"]))
        assert province_name(row["province"]) == p.name  # the official long name is an alias
        assert province_name(code) == p.name
        assert -11 < p.latitude < 6 and 95 < p.longitude < 141


def test_province_spellings() -> None:
    assert province_name("Daerah Khusus Ibukota Jakarta") == "DKI Jakarta"
    assert province_name(" jawa  BARAT ") == "Jawa Barat"
    assert province_name("DIY") == "DI Yogyakarta"
    assert province_name("Indonesia") == "Indonesia"
    assert province_name("Atlantis") is None


def test_each_province_has_an_aggregate_market_and_conf_markets_stay() -> None:
    for p in provinces().values():
        m = markets()[f"PROV-{p.code}"]
        assert (m.province, m.kind, m.latitude) == (p.name, "aggregate", p.latitude)
    assert markets()["IP-001"].province == "DKI Jakarta"
    assert markets()["PIHPS-AGG"].province == "Indonesia"
    assert {m.province for m in markets().values()} <= {p.name for p in provinces().values()} | {
        "Indonesia"
    }


def test_a_city_is_added_by_configuration(tmp_path: Path) -> None:
    conf = tmp_path / "markets.csv"
    conf.write_text(
        "market_id,name,city,province,latitude,longitude,kind,source\n"
        "BPN-3273,Panel Bapanas Kota Bandung,Bandung,Jabar,-6.91,107.61,aggregate,bapanas\n",
        encoding="utf-8",
    )
    added = markets(conf)["BPN-3273"]
    assert (added.province, added.city, added.kind) == ("Jawa Barat", "Bandung", "aggregate")
    typo = tmp_path / "typo.csv"
    typo.write_text(
        "market_id,name,city,province,latitude,longitude,kind,source\n"
        "X-1,Pasar X,Kota X,Atlantis,,,pasar,me\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError, match="Atlantis"):
        markets(typo)


def test_the_national_strategic_list_as_the_exports_spell_it() -> None:
    for name, expected in BAPANAS_ITEMS.items():
        assert commodity_id(name) == expected, name
        assert commodity_id(name.upper()) == expected
    assert set(BAPANAS_ITEMS.values()) == set(commodities())
    assert commodity_id("Kedelai Biji Kering Impor") == "kedelai_impor"
    assert commodity_id("Tepung Terigu") == "tepung_terigu_curah"
    assert commodity_id("durian") is None


def test_original_ids_and_english_aliases_keep_working() -> None:
    for id_ in ORIGINAL_IDS:
        assert commodity_id(id_) == id_
    english = {
        "shallot": "bawang_merah",
        "garlic": "bawang_putih",
        "rice": "beras",
        "sugar": "gula_pasir",
        "cooking oil": "minyak_goreng",
        "eggs": "telur_ayam",
        "beef": "daging_sapi",
        "chicken": "daging_ayam",
        "milkfish": "ikan_bandeng",
        "salt": "garam_konsumsi",
        "soybean": "kedelai_impor",
        "corn": "jagung_peternak",
    }
    for alias, expected in english.items():
        assert commodity_id(alias) == expected


def test_units_and_ranges_are_plausible() -> None:
    for c in commodities().values():
        assert c.unit in {"kg", "liter"}
        assert 1000 <= c.min_price < c.max_price <= 300_000, c.id
        assert normal_form(c.id) == c.id
    oils = {"minyak_goreng", "minyak_goreng_kemasan", "minyakita"}
    assert {c.id for c in commodities().values() if c.unit == "liter"} == oils


def test_the_api_takes_any_spelling_of_a_province() -> None:
    from serving_api.errors import ApiError, resolve_province

    assert resolve_province("jakarta") == resolve_province("31") == "DKI Jakarta"
    with pytest.raises(ApiError, match="unknown province 'Atlantis'") as raised:
        resolve_province("Atlantis")
    assert len(raised.value.choices) == 39
