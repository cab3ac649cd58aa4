from pathlib import Path
from xml.etree import ElementTree

import pytest
import yaml

from lakehouse.config.settings import CONF_DIR, PROJECT_ROOT, ConfigError, load_settings
from lakehouse.config.yaml_text import SAFE_LOADER, parse_yaml
from lakehouse.io.spark import GOLD_POOL, SCHEDULER_POOLS, SILVER_POOL


def test_defaults_from_conf(clean_env: None):
    s = load_settings()
    assert s.kafka.topics.all() == [
        "market.prices",
        "market.sensors",
        "market.deadletter",
        "market.reviews",
        "market.supply",
        "market.news",
    ]
    assert s.kafka.topics.of_price_pipeline() == s.kafka.topics.all()[:4]
    assert s.paths.lakehouse_root == PROJECT_ROOT / "data" / "lakehouse"
    assert s.kafka.bootstrap == "localhost:9092"


def test_environment_overrides(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("SMARTMARKET_PATHS__LAKEHOUSE_ROOT", str(tmp_path / "lh"))
    monkeypatch.setenv("SMARTMARKET_KAFKA__PORT", "19092")
    monkeypatch.setenv("SMARTMARKET_KAFKA__TOPICS__PRICES", "x.prices")
    s = load_settings()
    assert s.paths.lakehouse_root == tmp_path / "lh"
    assert s.kafka.bootstrap == "localhost:19092"
    assert s.kafka.topics.prices == "x.prices"
    assert s.kafka.topics.sensors == "market.sensors"  # untouched keys keep the file's value


def test_relative_paths_resolve_against_project(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SMARTMARKET_PATHS__LAKEHOUSE_ROOT", "somewhere/lh")
    assert load_settings().paths.lakehouse_root == PROJECT_ROOT / "somewhere" / "lh"


def test_invalid_value_names_the_key(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SMARTMARKET_API__PORT", "eighty")
    with pytest.raises(ConfigError, match=r"api\.port"):
        load_settings()


@pytest.mark.parametrize("make", ["missing", "directory", "not-yaml", "not-mapping"])
def test_unreadable_config_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, make: str):
    path = tmp_path / "settings.yaml"
    if make == "directory":
        path.mkdir()
    elif make == "not-yaml":
        path.write_text("kafka: [unclosed")
    elif make == "not-mapping":
        path.write_text("- a list")
    monkeypatch.setenv("SMARTMARKET_CONFIG", str(path))
    with pytest.raises(ConfigError, match=str(path)):
        load_settings()


def test_unknown_section_is_rejected(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    path = tmp_path / "settings.yaml"
    path.write_text("kafak: {port: 1}\n")
    monkeypatch.setenv("SMARTMARKET_CONFIG", str(path))
    with pytest.raises(ConfigError, match="kafak"):
        load_settings()


def test_the_queries_pools_are_the_configured_ones():
    """Spark silently makes an unknown pool with default weights: the pools the two queries
    name must be those ``conf/fairscheduler.xml`` configures."""
    pools = ElementTree.parse(SCHEDULER_POOLS).getroot().iter("pool")
    assert {pool.get("name") for pool in pools} == {SILVER_POOL, GOLD_POOL}


def test_the_pipeline_runs_the_queries_of_the_settings(
    clean_env: None, monkeypatch: pytest.MonkeyPatch
):
    """``spark.queries`` chooses the pipeline's streaming queries, in the pipeline's order;
    gold alone is refused (it reads silver's commits)."""
    from streaming_jobs.main import queries_of
    from streaming_jobs.query_priority import SilverFirst

    def started(settings) -> list[str]:
        factories = queries_of(settings, SilverFirst(gold_interval=0))
        return [getattr(f, "func", f).__name__ for f in factories]

    assert started(load_settings()) == ["silver_query", "gold_query", "supply_query", "news_query"]
    monkeypatch.setenv("SMARTMARKET_SPARK__QUERIES", '["gold", "silver"]')
    assert started(load_settings()) == ["silver_query", "gold_query"]
    monkeypatch.setenv("SMARTMARKET_SPARK__QUERIES", '["gold", "news"]')
    with pytest.raises(ConfigError, match=r"spark.*add silver"):
        load_settings()


def test_configuration_is_parsed_by_libyaml_with_the_pure_python_parser_s_values():
    """Every configuration file gives the values PyYAML's own safe loader gives, parsed by
    libyaml's (the wheels carry it); a Python object tag is refused by both."""
    assert SAFE_LOADER is yaml.CSafeLoader
    for path in sorted(CONF_DIR.rglob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        assert parse_yaml(text) == yaml.safe_load(text), path
    with pytest.raises(yaml.YAMLError):
        parse_yaml("!!python/object/apply:os.system ['true']")
