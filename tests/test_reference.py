"""Reference data of conf/: every province, the province aggregates, markets added by
configuration, and the national strategic commodity catalogue with the exports' spellings."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from lakehouse.catalog.conf import Conf, conf_of
from lakehouse.catalog.reference import normal_form, regencies
from lakehouse.config.settings import DATASETS_DIR, ConfigError, load_settings
from tests.shipped import SHIPPED

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
    assert len(SHIPPED.provinces) == len(official) == 38
    for code, row in official.items():
        p = SHIPPED.provinces[code]
        assert (p.latitude, p.longitude) == (float(row["latitude"]), float(row["longitude"]))
        assert (
            SHIPPED.province_name(row["province"]) == p.name
        )  # the official long name is an alias
        assert SHIPPED.province_name(code) == p.name
        assert -11 < p.latitude < 6 and 95 < p.longitude < 141


def test_province_spellings() -> None:
    assert SHIPPED.province_name("Daerah Khusus Ibukota Jakarta") == "DKI Jakarta"
    assert SHIPPED.province_name(" jawa  BARAT ") == "Jawa Barat"
    assert SHIPPED.province_name("DIY") == "DI Yogyakarta"
    assert SHIPPED.province_name("Indonesia") == "Indonesia"
    assert SHIPPED.province_name("Atlantis") is None


def test_each_province_has_an_aggregate_market_and_conf_markets_stay() -> None:
    for p in SHIPPED.provinces.values():
        m = SHIPPED.markets[f"PROV-{p.code}"]
        assert (m.province, m.kind, m.latitude) == (p.name, "aggregate", p.latitude)
    assert SHIPPED.markets["IP-001"].province == "DKI Jakarta"
    assert SHIPPED.markets["PIHPS-AGG"].province == "Indonesia"
    assert {m.province for m in SHIPPED.markets.values()} <= {
        p.name for p in SHIPPED.provinces.values()
    } | {"Indonesia"}


ORIGINAL_MARKETS = 66  # the markets of conf/markets.csv before issue 54, ids kept


def test_every_province_has_markets_each_in_its_regency() -> None:
    physical = SHIPPED.physical_markets
    assert {m.province for m in physical} == {p.name for p in SHIPPED.provinces.values()}
    assert len(physical) == ORIGINAL_MARKETS + 29  # a market in each province that had none
    codes = {p.name: p.code for p in SHIPPED.provinces.values()}
    for m in physical:
        regency = regencies()[m.regency_code]  # the official PP.RR code
        assert regency.province_code == codes[m.province], m.market_id
        # plausible coordinates: within ~1.5 degrees of the regency's centroid
        assert abs(m.latitude - regency.latitude) < 1.5, m.market_id
        assert abs(m.longitude - regency.longitude) < 1.5, m.market_id
    assert SHIPPED.markets["IP-001"].regency_code == "31.75"  # Jakarta Timur
    assert SHIPPED.markets["PROV-32"].regency_code is None  # a province's own series
    assert SHIPPED.markets["PIHPS-AGG"].regency_code is None


def test_a_regency_reads_by_code_official_name_or_its_markets_city() -> None:
    # one reading of a regency for the API's filters and the subscriptions
    assert {SHIPPED.regency_code(n) for n in ("32.71", "Kota Bogor", " bogor ")} == {"32.71"}
    assert SHIPPED.regency_code("Kota Administrasi Jakarta Timur") == "31.75"
    assert SHIPPED.regency_code("Jakarta Timur") == "31.75"  # IP-001's city in markets.csv
    assert SHIPPED.regency_code("Gotham") is None
    assert SHIPPED.regencies["32.01"] == "Jawa Barat"  # Kabupaten Bogor: known, no market
    assert "32.01" not in SHIPPED.regency_markets and "IP-060" in SHIPPED.regency_markets["32.71"]
    assert SHIPPED.place("IP-060", None) == ("Jawa Barat", "32.71")
    assert SHIPPED.place("PROV-32", "Jawa Barat") == ("Jawa Barat", None)  # its average
    assert SHIPPED.place(None, "Bali") == ("Bali", None)  # a row of a whole province


#: the columns of ``markets.csv`` without the optional ``regency_code``
MARKET_COLUMNS = "market_id,name,city,province,latitude,longitude,kind,source"


def with_markets(tmp_path: Path, header: str, *rows: str) -> Conf:
    """The shipped configuration copied, its ``markets.csv`` holding only ``rows``."""
    folder = tmp_path / "conf"
    if not folder.exists():
        shutil.copytree(SHIPPED.folder, folder)
    (folder / "markets.csv").write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")
    return Conf(folder)


def test_a_market_in_another_provinces_regency_is_refused(tmp_path: Path) -> None:
    conf = with_markets(
        tmp_path,
        f"{MARKET_COLUMNS},regency_code",
        "X-1,Pasar X,Bandung,Jawa Barat,-6.9,107.6,pasar,me,31.71",
    )
    with pytest.raises(ConfigError, match=r"'31\.71' is not a regency of Jawa Barat"):
        _ = conf.markets


def test_a_province_named_as_a_market_is_its_average() -> None:
    assert SHIPPED.market_id("IP-001") == "IP-001"
    assert SHIPPED.market_id("Jawa Barat") == SHIPPED.market_id("jabar") == "PROV-32"
    assert SHIPPED.market_id(" 31 ") == "PROV-31"
    assert SHIPPED.market_id("Pasar Atlantis") == "Pasar Atlantis"  # validation judges it
    assert SHIPPED.provinces["95"].formed_from == "91"  # Papua Pegunungan, split from Papua
    assert SHIPPED.provinces["96"].formed_from == "92"
    assert SHIPPED.provinces["32"].formed_from is None


def test_a_city_is_added_by_configuration(tmp_path: Path) -> None:
    conf = with_markets(
        tmp_path,
        MARKET_COLUMNS,
        "BPN-3273,Panel Bapanas Kota Bandung,Bandung,Jabar,-6.91,107.61,aggregate,bapanas",
    )
    added = conf.markets["BPN-3273"]
    assert (added.province, added.city, added.kind) == ("Jawa Barat", "Bandung", "aggregate")
    conf = with_markets(tmp_path, MARKET_COLUMNS, "X-1,Pasar X,Kota X,Atlantis,,,pasar,me")
    with pytest.raises(ConfigError, match="Atlantis"):
        _ = conf.markets


def test_the_configuration_folder_moves_every_file_together(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clean_env: None
) -> None:
    """``paths.conf_dir`` names the folder of the reference data, the rules and the formats:
    a copy with other thresholds, markets and formats is what the components read."""
    folder = shutil.copytree(SHIPPED.folder, tmp_path / "conf")
    with (folder / "markets.csv").open("a", encoding="utf-8") as out:
        out.write("X-1,Pasar Percobaan,Kota Bandung,Jawa Barat,-6.9,107.6,pasar,test\n")
    quality = (folder / "quality.yaml").read_text(encoding="utf-8")
    (folder / "quality.yaml").write_text(
        quality.replace("retention_days:", "retention_days: 3 #"), encoding="utf-8"
    )
    (folder / "formats" / "mine.yaml").write_text(
        (folder / "formats" / "long.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    monkeypatch.setenv("SMARTMARKET_PATHS__CONF_DIR", str(folder))
    conf = conf_of(load_settings())
    assert conf.folder == folder
    assert conf.markets["X-1"].province == "Jawa Barat" and "X-1" not in SHIPPED.markets
    assert conf.quality.hard.retention_days == 3 != SHIPPED.quality.hard.retention_days
    assert "mine" in conf.formats and "mine" not in SHIPPED.formats


def test_the_national_strategic_list_as_the_exports_spell_it() -> None:
    for name, expected in BAPANAS_ITEMS.items():
        assert SHIPPED.commodity_id(name) == expected, name
        assert SHIPPED.commodity_id(name.upper()) == expected
    assert set(BAPANAS_ITEMS.values()) == set(SHIPPED.commodities)
    assert SHIPPED.commodity_id("Kedelai Biji Kering Impor") == "kedelai_impor"
    assert SHIPPED.commodity_id("Tepung Terigu") == "tepung_terigu_curah"
    assert SHIPPED.commodity_id("durian") is None


def test_original_ids_and_english_aliases_keep_working() -> None:
    for id_ in ORIGINAL_IDS:
        assert SHIPPED.commodity_id(id_) == id_
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
        assert SHIPPED.commodity_id(alias) == expected


def test_units_and_ranges_are_plausible() -> None:
    for c in SHIPPED.commodities.values():
        assert c.unit in {"kg", "liter"}
        assert 1000 <= c.min_price < c.max_price <= 300_000, c.id
        assert normal_form(c.id) == c.id
    oils = {"minyak_goreng", "minyak_goreng_kemasan", "minyakita"}
    assert {c.id for c in SHIPPED.commodities.values() if c.unit == "liter"} == oils


def test_the_api_takes_any_spelling_of_a_province() -> None:
    from serving_api.errors import ApiError, resolve_province

    assert resolve_province(SHIPPED, "jakarta") == resolve_province(SHIPPED, "31") == "DKI Jakarta"
    with pytest.raises(ApiError, match="unknown province 'Atlantis'") as raised:
        resolve_province(SHIPPED, "Atlantis")
    assert len(raised.value.choices) == 39
