"""Device registry, users, roles, tokens and rate limits of the API, on a real registry — each
registry test twice: on SQLite (the default) and on a real PostgreSQL (``registry_url``) — and
real processes writing it at once."""

from __future__ import annotations

import base64
import json
import multiprocessing
import stat
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from fastapi.testclient import TestClient

from lakehouse.config.secrets import ensure_secret, env_name, secret, secrets_path
from lakehouse.config.settings import PROJECT_ROOT, Settings, load_settings
from lakehouse.domain.accounts.broker_auth import acl_file, password_file
from lakehouse.domain.accounts.registry import MIGRATIONS, check_password, open_registry
from scripts.prometheus_config import scrape_token_file, write_scrape_token
from serving_api.app import create_app
from serving_api.auth import mint_key
from serving_api.routers.devices import qr_png
from tests.api_samples import API, PASSWORD, token
from tests.conftest import secured
from tests.registry_writers import register_many


@pytest.fixture
def own(settings: Settings, tmp_path: Path, registry_url: str) -> Settings:
    own = secured(settings, tmp_path, registry_url=registry_url)
    registry = open_registry(own)
    for role in ("admin", "operator", "central", "reader", "ingest"):
        registry.add_user(role, role, PASSWORD)
    return own


def test_device_lifecycle(own: Settings) -> None:
    with TestClient(create_app(own)) as c:
        operator = token(c, "operator")
        created = c.post(
            f"{API}/devices",
            json={"market_id": "IP-001", "metrics": ["temperature_c"], "device_id": "stall-7"},
            headers=operator,
        )
        assert created.status_code == 201, created.text
        body = created.json()
        onboarding = body["onboarding"]
        assert onboarding["topic_prefix"] == "markets/IP-001/devices/stall-7"
        assert (onboarding["client_id"], onboarding["username"]) == ("stall-7", "stall-7")
        assert onboarding["broker"] == {"host": own.mqtt.host, "port": own.mqtt.port, "tls": False}
        png = base64.b64decode(body["qr_png"])
        assert png.startswith(b"\x89PNG")
        assert png == qr_png(json.dumps(onboarding, separators=(",", ":")))
        claims = jwt.decode(body["token"], options={"verify_signature": False})
        assert (claims["sub"], claims["role"], claims["market"]) == ("stall-7", "device", "IP-001")
        assert claims["exp"] > claims["iat"] + 364 * 86400
        first_password = onboarding["password"]
        assert "stall-7:$7$101$" in password_file(own).read_text()
        assert "topic write markets/IP-001/devices/stall-7/#" in acl_file(own).read_text()
        assert stat.S_IMODE(password_file(own).stat().st_mode) == 0o600

        # the device logs in with the onboarding payload alone
        device = token(c, "stall-7", first_password)
        assert (
            c.post(f"{API}/devices", json={"market_id": "IP-001"}, headers=device).status_code
            == 403
        )

        listed = c.get(f"{API}/devices", params={"market_id": "IP-001"}, headers=operator).json()
        assert [d["device_id"] for d in listed] == ["stall-7"]
        assert c.get(f"{API}/devices/stall-7", headers=operator).json()["status"] == "active"
        assert c.get(f"{API}/devices/nope", headers=operator).status_code == 404
        again = c.post(
            f"{API}/devices", json={"market_id": "IP-001", "device_id": "stall-7"}, headers=operator
        )
        assert again.status_code == 409
        bad = c.post(f"{API}/devices", json={"market_id": "NOWHERE"}, headers=operator)
        assert bad.status_code == 422 and "unknown market" in bad.json()["detail"]

        rotated = c.post(f"{API}/devices/stall-7/rotate", headers=operator).json()
        assert rotated["device"]["credential_version"] == 2
        registry = open_registry(own)
        assert registry.verify_device("stall-7", first_password) is None
        assert registry.verify_device("stall-7", rotated["onboarding"]["password"]) is not None

        revoked = c.post(f"{API}/devices/stall-7/revoke", headers=operator).json()
        assert revoked["status"] == "revoked" and revoked["revoked_at"]
        assert "stall-7" not in password_file(own).read_text()
        assert "stall-7" not in acl_file(own).read_text()
        assert c.post(f"{API}/devices/stall-7/rotate", headers=operator).status_code == 409
        login = {"username": "stall-7", "password": rotated["onboarding"]["password"]}
        assert c.post(f"{API}/auth/token", json=login).status_code == 401


def test_every_write_checks_the_role(own: Settings) -> None:
    operator_key, operator_entry = mint_key("ops-robot", "operator")
    reader_key, reader_entry = mint_key("dash", "reader")
    closed = own.model_copy(
        update={"api": own.api.model_copy(update={"keys": [operator_entry, reader_entry]})}
    )
    register = {"market_id": "IP-004"}
    with TestClient(create_app(closed)) as c:
        devices = f"{API}/devices"
        assert c.post(devices, json=register).status_code == 401
        assert c.get(devices).status_code == 401
        for role in ("central", "reader", "ingest"):
            assert c.post(devices, json=register, headers=token(c, role)).status_code == 403
        assert c.post(devices, json=register, headers=token(c, "admin")).status_code == 201
        assert (
            c.post(devices, json=register, headers={"X-API-Key": operator_key}).status_code == 201
        )
        assert c.get(devices, headers={"X-API-Key": reader_key}).status_code == 403
        assert c.post(f"{API}/prices", json=[], headers=token(c, "reader")).status_code == 403
        assert c.get(f"{API}/prices/live", headers=token(c, "central")).status_code == 200

        wrong = {"username": "admin", "password": "wrong password!"}
        assert c.post(f"{API}/auth/token", json=wrong).status_code == 401
        keyring = c.app.state.resources.keyring
        expired, _ = keyring.tokens.issue("admin", "admin", "user", timedelta(seconds=-1))
        answer = c.get(devices, headers={"Authorization": f"Bearer {expired}"})
        assert answer.status_code == 401 and "expired" in answer.json()["detail"]
        forged = jwt.encode(
            {"sub": "x", "role": "admin", "exp": 4102444800}, "a-guess-" * 4, "HS256"
        )
        assert c.get(devices, headers={"Authorization": f"Bearer {forged}"}).status_code == 401

        assert c.get("/metrics").status_code == 401  # reads closed: admin (or the scrape token)
        assert c.get("/metrics", headers=token(c, "reader")).status_code == 403
        assert c.get("/metrics", headers=token(c, "admin")).status_code == 200


def test_prometheus_scrapes_metrics_with_its_token_when_reads_are_closed(own: Settings) -> None:
    write_scrape_token(own)
    scrape = {"Authorization": f"Bearer {scrape_token_file(own).read_text()}"}
    with TestClient(create_app(own)) as c:
        assert c.get("/metrics", headers=scrape).status_code == 200
        assert c.get("/metrics", headers={"Authorization": "Bearer not-it"}).status_code == 401
        # the token opens /metrics only
        assert c.get(f"{API}/prices/live", headers=scrape).status_code == 401


def test_rate_limit_answers_429_with_retry_after(own: Settings) -> None:
    limited = own.model_copy(
        update={
            "security": own.security.model_copy(
                update={"rate_limit_per_minute": 60, "rate_limit_burst": 3, "rate_limit_exempt": []}
            )
        }
    )
    with TestClient(create_app(limited)) as c:
        answers = [c.get("/health") for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert int(answers[-1].headers["Retry-After"]) >= 1
        # a caller with a credential has a bucket of its own
        other = {"Authorization": "Bearer some-token"}
        assert c.get("/health", headers=other).status_code == 200
    exempt = own.model_copy(
        update={"security": own.security.model_copy(update={"rate_limit_burst": 1})}
    )
    with TestClient(create_app(exempt), client=("127.0.0.1", 5000)) as c:
        assert {c.get("/health").status_code for _ in range(5)} == {200}


def test_registry_survives_restarts_and_concurrent_writers(
    settings: Settings, tmp_path: Path, registry_url: str
):
    own = secured(settings, tmp_path, registry_url=registry_url)
    with multiprocessing.get_context("spawn").Pool(4) as pool:
        assert sorted(pool.map(register_many, [(own, w) for w in range(4)])) == [0, 1, 2, 3]
    reopened = open_registry(own)  # a new engine: what a restarted service sees
    assert len(reopened.devices(market_id="IP-003")) == 80
    assert (tmp_path / "registry.db").exists() == (not registry_url)
    assert reopened.engine.dialect.name == ("postgresql" if registry_url else "sqlite")


def test_migrations_run_down_and_up_again(settings: Settings, tmp_path: Path, registry_url: str):
    own = secured(settings, tmp_path, registry_url=registry_url)
    engine = open_registry(own).engine  # migrated to the newest revision on open
    assert engine.dialect.name == ("postgresql" if registry_url else "sqlite")
    assert {"devices", "users", "alembic_version"} <= set(sa.inspect(engine).get_table_names())
    config = Config()
    config.set_main_option("script_location", MIGRATIONS)
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert set(sa.inspect(engine).get_table_names()) <= {"alembic_version"}

    reopened = open_registry(own)  # the next start migrates it up again
    _, password = reopened.register_device("IP-001", ["temperature_c"], "migrated-1")
    assert reopened.verify_device("migrated-1", password) is not None
    with engine.connect() as conn:
        version = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
    assert version == ScriptDirectory.from_config(config).get_current_head()


def test_secrets_come_from_the_environment_or_a_private_file(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    own = secured(settings, tmp_path)
    made = ensure_secret(own, "jwt_key")
    assert ensure_secret(own, "jwt_key") == made
    assert stat.S_IMODE(secrets_path(own).stat().st_mode) == 0o600
    monkeypatch.setenv(env_name("jwt_key"), "from-env")
    assert secret(own, "jwt_key") == "from-env"
    tracked = (PROJECT_ROOT / "conf" / "settings.yaml").read_text()
    assert "jwt_key" not in tracked
    assert check_password("x", "not a hash") is False


def test_notifier_tokens_come_from_secrets(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    channels = '[{"name": "ops", "url": "https://hooks.example.org/x"}]'
    monkeypatch.setenv("SMARTMARKET_ALERTS__CHANNELS", channels)
    monkeypatch.setenv(env_name("alerts.ops.token"), "s3cret-token")
    assert load_settings().alerts.channels[0].token == "s3cret-token"


def test_security_headers_and_configurable_cors(own: Settings) -> None:
    origin = "https://dash.example.org"
    with_cors = own.model_copy(
        update={"security": own.security.model_copy(update={"cors_origins": [origin]})}
    )
    with TestClient(create_app(with_cors)) as c:
        answer = c.get("/health", headers={"Origin": origin})
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["x-frame-options"] == "DENY"
        assert answer.headers["access-control-allow-origin"] == origin
        other = c.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
    with TestClient(create_app(own)) as c:  # no origins configured: no CORS at all
        assert (
            "access-control-allow-origin"
            not in c.get("/health", headers={"Origin": origin}).headers
        )
