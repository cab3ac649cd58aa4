"""Alert subscriptions: who gets which alert (place, commodity, rule family, severity), e-mail
through a real SMTP server on loopback (aiosmtpd) exactly once across a notifier restart, a
refusing server recorded as a failed delivery with its reason, the daily digest, and the API
(a user manages their own, an admin anyone's; bad input is a 4xx)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller
from deltalake import DeltaTable
from fastapi.testclient import TestClient

from lakehouse.catalog.conf import conf_of
from lakehouse.catalog.tables import GOLD_SUBSCRIPTION_DELIVERIES
from lakehouse.config.settings import AlertSettings, NotifierChannel, Settings
from lakehouse.domain.accounts.registry import NotFound, RegistryError, open_registry
from lakehouse.domain.accounts.subscriptions import (
    Subscription,
    SubscriptionStore,
    checked,
    matches,
    subscriptions_table,
)
from lakehouse.io.lake import Lakehouse, delivery_counts
from scripts.isolated_stack import free_ports
from serving_api.app import create_app
from streaming_jobs.alerts.notifier import Notifier, digest_due
from tests.api_samples import API, PASSWORD, token
from tests.browser import chromium, open_page, serving, watch
from tests.conftest import isolated, secured
from tests.notifier_samples import NOW, alert, write_alerts

SURABAYA = "JI-SBY-KEPUTRAN"  # Pasar Keputran, Surabaya, Jawa Timur
MEDAN = "SU-MDN-PETISAH"  # Pasar Petisah, Medan, Sumatera Utara
BOGOR = "IP-060"  # Pasar Sukasari, Bogor, Jawa Barat


def sub(conf_settings: Settings, **wish) -> Subscription:
    return checked(
        Subscription("s", "ana", wish.pop("channel", "email"), "ana@example.org", **wish),
        conf_of(conf_settings),
    )


def test_a_subscription_matches_by_place_commodity_rule_family_and_severity(conf_settings):
    conf = conf_of(conf_settings)
    east_java = sub(conf_settings, provinces=("jatim",), commodities=("Beras",), rules=("prices",))
    assert (east_java.provinces, east_java.commodities) == (("Jawa Timur",), ("beras",))
    spike = alert("a", market_id=SURABAYA, region="Jawa Timur")
    assert matches(east_java, spike, conf)
    assert not matches(east_java, spike | {"market_id": MEDAN, "region": "Sumatera Utara"}, conf)
    assert not matches(east_java, spike | {"commodity": "cabai_rawit_merah"}, conf)
    assert not matches(east_java, spike | {"rule": "temperature", "commodity": None}, conf)
    critical = replace(east_java, min_severity="critical")
    assert not matches(critical, spike, conf)
    assert matches(critical, spike | {"severity": "critical"}, conf)
    # a regency: its markets' alerts, and the alerts of its whole province (no market)
    bogor = sub(conf_settings, regencies=("bogor",), rules=("region_move", "supply"))
    assert bogor.regencies == ("32.71",)  # Kota Bogor, by its official code
    assert matches(bogor, alert("b", market_id=BOGOR, rule="region_move"), conf)
    assert not matches(bogor, alert("b", market_id="JB-BDG-KOSAMBI", rule="region_move"), conf)
    province_wide = alert("c", rule="stock_cover_low", market_id=None, region="Jawa Barat")
    assert matches(bogor, province_wide, conf)
    assert not matches(bogor, province_wide | {"region": "Bali"}, conf)
    kept_by_city = replace(bogor, regencies=("Bogor",))  # as kept before the official codes
    assert matches(kept_by_city, alert("b", market_id=BOGOR, rule="region_move"), conf)
    assert matches(kept_by_city, province_wide, conf)


@pytest.mark.parametrize(
    ("wish", "error"),
    [
        ({"provinces": ("Atlantis",)}, NotFound),
        ({"regencies": ("Gotham",)}, NotFound),
        ({"commodities": ("unobtainium",)}, NotFound),
        ({"rules": ("weather",)}, NotFound),
        ({"min_severity": "info"}, RegistryError),
        ({"channel": "telegram"}, RegistryError),  # an e-mail address is no chat id
        ({"channel": "fax"}, RegistryError),
    ],
)
def test_malformed_subscriptions_are_refused(conf_settings, wish, error):
    with pytest.raises(error):
        sub(conf_settings, **wish)


# ---- e-mail through a real SMTP server -------------------------------------------------


class Inbox:
    """An aiosmtpd handler: keeps each message with its recipients, or refuses recipients with
    ``refuse`` (an SMTP answer such as ``550 5.1.1 mailbox unavailable``)."""

    def __init__(self) -> None:
        self.mail: list[tuple[list[str], EmailMessage]] = []
        self.refuse: str | None = None

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.refuse:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        self.mail.append((list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for rcpts, m in self.mail if address in rcpts]


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    (port,) = free_ports(1)
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    yield inbox, port
    controller.stop()


def mailing(settings: Settings, tmp_path: Path, port: int, **knobs) -> Settings:
    """Own tables and registry; one e-mail channel carrying subscriptions only."""
    own = isolated(settings, tmp_path)
    own = own.model_copy(update={"paths": own.paths.model_copy(update={"data_dir": tmp_path})})
    mail = NotifierChannel(
        name="mail",
        kind="email",
        url=f"smtp://127.0.0.1:{port}",
        sender="peringatan@smartmarket.example",
        broadcast=False,
    )
    alerts = AlertSettings(channels=[mail], backoff_seconds=0.05, **knobs)
    return own.model_copy(update={"alerts": alerts})


def subscribe(settings: Settings, username: str, **wish) -> None:
    """A user subscribed by e-mail (``<username>@example.org``) — since long before the alerts
    these tests plant, which a subscription made now would not take."""
    registry = open_registry(settings)
    registry.add_user(username, "reader", PASSWORD)
    store = SubscriptionStore(registry.engine, registry.conf)
    made = store.create(Subscription("", username, "email", f"{username}@example.org", **wish))
    t = subscriptions_table
    with registry.engine.begin() as conn:
        conn.execute(
            t.update()
            .where(t.c.subscription_id == made.subscription_id)
            .values(created_at=datetime(2000, 1, 1, tzinfo=UTC))
        )
    registry.close()


def deliveries(settings: Settings) -> list[dict]:
    path = GOLD_SUBSCRIPTION_DELIVERIES.path(settings)
    return DeltaTable(path).to_pyarrow_table().to_pylist()


def test_an_alert_in_a_province_mails_its_subscribers_once_across_a_restart(
    settings, tmp_path, smtp
):
    inbox, port = smtp
    settings = mailing(settings, tmp_path, port)
    subscribe(settings, "jatim", provinces=("Jawa Timur",), commodities=("beras",))
    subscribe(settings, "sumut", provinces=("Sumatera Utara",))
    spike = alert("a-sby", market_id=SURABAYA, region="Jawa Timur")
    write_alerts(settings, [spike])
    Notifier(settings).step(NOW)
    [mail] = inbox.to("jatim@example.org")
    assert mail["Subject"] == "[WASPADA] Lonjakan harga"
    assert mail["From"] == "peringatan@smartmarket.example"
    assert "Harga Beras Medium" in mail.get_content()
    assert inbox.to("sumut@example.org") == []  # another province's subscriber: nothing

    restarted = Notifier(settings)  # a new process reads what was delivered
    restarted.step(NOW)
    write_alerts(settings, [spike, alert("a-mdn", market_id=MEDAN, region="Sumatera Utara")])
    restarted.step(NOW)
    assert len(inbox.to("jatim@example.org")) == 1  # exactly once
    assert len(inbox.to("sumut@example.org")) == 1
    rows = sorted(deliveries(settings), key=lambda r: r["subscriber"])
    assert [(r["alert_id"], r["subscriber"], r["channel"], r["delivered"]) for r in rows] == [
        ("a-sby", "jatim", "email", True),
        ("a-mdn", "sumut", "email", True),
    ]
    assert delivery_counts(Lakehouse(settings)) == {"delivered": 2, "undelivered": 0}


def test_a_refusing_smtp_server_is_a_recorded_failed_delivery_with_its_reason(
    settings, tmp_path, smtp
):
    inbox, port = smtp
    settings = mailing(settings, tmp_path, port, max_attempts=3)
    subscribe(settings, "ana", provinces=("Jawa Timur",))
    write_alerts(settings, [alert("a1", market_id=SURABAYA, region="Jawa Timur")])
    inbox.refuse = "451 4.3.0 try again later"  # a passing trouble: tried again
    notifier = Notifier(settings)
    notifier.step(NOW)
    assert notifier.pending and inbox.mail == []
    inbox.refuse = "550 5.1.1 mailbox unavailable"  # final: not tried again
    notifier.step(NOW + timedelta(seconds=1))
    assert not notifier.pending
    [row] = deliveries(settings)
    assert (row["delivered"], row["attempts"]) == (False, 2)
    assert row["last_error"] == "SMTP 550 5.1.1 mailbox unavailable"


def test_a_daily_digest_batches_the_day_s_alerts_into_one_mail(settings, tmp_path, smtp):
    inbox, port = smtp
    settings = mailing(settings, tmp_path, port, digest_hour=7)
    subscribe(settings, "ana", provinces=("Jawa Timur",), digest=True, language="en")
    morning = datetime(2026, 3, 2, 1, 30, tzinfo=UTC)  # 08:30 in Jakarta
    assert digest_due(morning, 7, settings.tz) == datetime(2026, 3, 3, 0, tzinfo=UTC)
    planted = [
        alert(f"a{i}", market_id=SURABAYA, region="Jawa Timur", updated_at=morning, **times)
        for i in (1, 2)
        for times in [{"opened_at": morning, "last_firing_at": morning}]
    ]
    write_alerts(settings, planted)
    notifier = Notifier(settings)
    notifier.step(morning + timedelta(hours=2))
    assert inbox.mail == []  # waits for 07:00
    Notifier(settings).step(datetime(2026, 3, 3, 0, 5, tzinfo=UTC))  # after a restart too
    [mail] = inbox.to("ana@example.org")
    assert mail["Subject"] == "[DAILY DIGEST] 2 alerts"
    assert mail.get_content().count("Medium rice price") == 2
    assert {(r["alert_id"], r["digest"], r["delivered"]) for r in deliveries(settings)} == {
        ("a1", True, True),
        ("a2", True, True),
    }


# ---- the API ------------------------------------------------------------------------------


def test_users_manage_their_own_subscriptions_and_admins_anyones(settings, tmp_path):
    own = secured(settings, tmp_path)
    own = own.model_copy(
        update={
            "alerts": AlertSettings(
                channels=[
                    NotifierChannel(
                        name="mail",
                        kind="email",
                        url="smtp://127.0.0.1:25",
                        sender="a@b.id",
                        to="c@d.id",
                    )
                ]
            )
        }
    )
    registry = open_registry(own)
    for user, role in (("ana", "reader"), ("budi", "operator"), ("root", "admin")):
        registry.add_user(user, role, PASSWORD)
    registry.add_user("feeder", "ingest", PASSWORD)
    with TestClient(create_app(own)) as c:
        ana, budi, root = (token(c, u) for u in ("ana", "budi", "root"))
        wish = {"channel": "email", "recipient": "ana@example.org", "provinces": ["jatim"]}
        made = c.post(f"{API}/subscriptions", json=wish, headers=ana)
        assert made.status_code == 201, made.text
        body = made.json()
        assert (body["username"], body["provinces"], body["rules"]) == ("ana", ["Jawa Timur"], [])
        path = f"{API}/subscriptions/{body['subscription_id']}"
        mine = c.get(f"{API}/subscriptions", headers=ana).json()
        assert [s["subscription_id"] for s in mine] == [body["subscription_id"]]
        # another user neither sees nor changes it; an admin does
        assert c.get(path, headers=budi).status_code == 404
        assert c.delete(path, headers=budi).status_code == 404
        assert c.get(f"{API}/subscriptions", headers=budi).json() == []
        changed = c.patch(path, json={"min_severity": "critical"}, headers=root)
        assert changed.json()["min_severity"] == "critical"
        for_budi = {**wish, "recipient": "budi@example.org", "username": "budi"}
        assert c.post(f"{API}/subscriptions", json=for_budi, headers=ana).status_code == 403
        assert c.post(f"{API}/subscriptions", json=for_budi, headers=root).status_code == 201
        assert len(c.get(f"{API}/subscriptions", headers=root).json()) == 2
        assert c.get(f"{API}/subscriptions", headers=token(c, "feeder")).status_code == 403
        assert c.get(f"{API}/subscriptions").status_code == 401
        # bad input: 4xx with a sentence, never a 5xx
        for bad, code in (
            ({**wish, "provinces": ["Atlantis"]}, 404),
            ({**wish, "recipient": "not-an-address"}, 422),
            ({**wish, "min_severity": "info"}, 422),
            ({**wish, "channel": "telegram", "recipient": "-100123"}, 422),  # no telegram channel
            ({"channel": "email"}, 422),
        ):
            answer = c.post(f"{API}/subscriptions", json=bad, headers=ana)
            assert answer.status_code == code, (bad, answer.text)
            assert answer.json()["detail"]
        assert c.delete(path, headers=ana).status_code == 204
        assert c.get(path, headers=ana).status_code == 404
        assert "/api/v1/subscriptions/{subscription_id}" in c.get("/openapi.json").json()["paths"]


def test_the_digest_hour_is_local_time(conf_settings):
    late = datetime(2026, 3, 2, 0, 30, tzinfo=UTC)  # 07:30 in Jakarta: tomorrow's digest
    assert digest_due(late, 7, conf_settings.tz) == datetime(2026, 3, 3, 0, tzinfo=UTC)
    early = datetime(2026, 3, 1, 23, 0, tzinfo=UTC)  # 06:00 in Jakarta: today's
    assert digest_due(early, 7, conf_settings.tz) == datetime(2026, 3, 2, 0, tzinfo=UTC)


def test_the_settings_page_logs_in_and_manages_subscriptions(settings, tmp_path):
    """The dashboard's #subscriptions page in a real browser: log in, subscribe, a bad
    recipient explained, remove."""
    own = mailing(settings, tmp_path, 25)
    registry = open_registry(own)
    registry.add_user("ana", "reader", PASSWORD)
    registry.close()
    with serving(own) as url, chromium() as browser:
        watched = watch(browser, url)
        page = open_page(watched, "subscriptions")
        page.fill("#login-user", "ana")
        page.fill("#login-password", PASSWORD)
        page.click("#login-form button[type=submit]")
        page.wait_for_selector("#subs-panel:not([hidden])")
        page.fill("#subs-recipient", "ana@example.org")
        page.fill("#subs-provinces", "jatim")
        page.fill("#subs-commodities", "beras")
        page.click("#subs-form button[type=submit]")
        row = page.wait_for_selector("#subs-table tbody tr")
        assert "Jawa Timur, beras" in row.inner_text()
        page.fill("#subs-recipient", "not-an-address")
        page.click("#subs-form button[type=submit]")
        error = page.wait_for_selector("[data-testid=subs-error]:not([hidden])")
        assert "is not an e-mail address" in error.inner_text()
        page.click("#subs-table button.remove")
        page.wait_for_selector("#subs-table tbody tr", state="detached")
        # the browser logs the refused request itself; nothing else went wrong
        assert [e for e in watched.errors if "status of 422" not in e] == []
    assert SubscriptionStore(open_registry(own).engine, conf_of(own)).subscriptions() == []
