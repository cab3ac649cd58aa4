"""The MQTT broker's password and ACL files, generated from the device registry.

Every active device gets one password-file line (the registry's PBKDF2 hash, Mosquitto's ``$7$``
format) and may publish only under ``<topic_root>/<market>/devices/<device>/#``; the bridge's
service account may only read ``<topic_root>/#`` and the broker's own numbers, ``$SYS/broker/#``.
Revoked devices have no line at all. After each registry change the files are rewritten
atomically and the embedded Mosquitto re-reads them on SIGHUP — no restart, no dropped sessions.
"""

from __future__ import annotations

import contextlib
import fcntl
import getpass
import logging
import os
import signal
from pathlib import Path

import psutil

from lakehouse.config.secrets import ensure_secret
from lakehouse.config.settings import Settings
from lakehouse.domain.accounts.registry import BrokerAccount, Registry, hash_password, open_registry

log = logging.getLogger(__name__)

BRIDGE_SECRET = "mqtt.bridge_password"
#: the bridge's broker account (its MQTT client id, ``producers.bridge_client_id``, is separate)
BRIDGE_USER = "smartmarket-bridge"
#: the broker's numbers (Mosquitto's ``$SYS`` tree), read by the bridge for its metrics
BROKER_SYS_TOPICS = "$SYS/broker/#"


def broker_home(settings: Settings) -> Path:
    """Where the embedded Mosquitto keeps its configuration, files and pid."""
    return settings.paths.data_dir / "mosquitto"


def password_file(settings: Settings) -> Path:
    return broker_home(settings) / "passwd"


def acl_file(settings: Settings) -> Path:
    return broker_home(settings) / "acl"


def pid_file(settings: Settings) -> Path:
    return broker_home(settings) / "mosquitto.pid"


def bridge_credentials(settings: Settings) -> tuple[str, str]:
    """User name and password of the bridge's broker account (generated once, kept secret)."""
    return BRIDGE_USER, ensure_secret(settings, BRIDGE_SECRET)


def render(accounts: list[BrokerAccount]) -> tuple[str, str]:
    """The password file and the ACL file granting exactly these accounts."""
    passwd = "".join(f"{a.username}:{a.password_hash}\n" for a in accounts)
    acl = []
    for a in accounts:
        acl.append(f"user {a.username}")
        acl += [f"topic write {t}" for t in a.write] + [f"topic read {t}" for t in a.read]
        acl.append("")
    return passwd, "\n".join(acl)


def _replace(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(text)
    tmp.chmod(0o600)
    tmp.replace(path)


def write_broker_files(settings: Settings, registry: Registry) -> int:
    """Rewrite the password and ACL files from the registry; returns the number of accounts."""
    root = settings.mqtt.topic_root
    bridge_user, bridge_password = bridge_credentials(settings)
    bridge = BrokerAccount(
        bridge_user, hash_password(bridge_password), read=(f"{root}/#", BROKER_SYS_TOPICS)
    )
    home = broker_home(settings)
    home.mkdir(parents=True, exist_ok=True)
    with (home / ".sync.lock").open("a") as lock, contextlib.ExitStack() as stack:
        fcntl.flock(lock, fcntl.LOCK_EX)  # read-and-write as one step: the last writer is newest
        stack.callback(fcntl.flock, lock, fcntl.LOCK_UN)
        accounts = [bridge, *registry.broker_accounts(root)]
        passwd, acl = render(accounts)
        _replace(password_file(settings), passwd)
        _replace(acl_file(settings), acl)
    return len(accounts)


def reload_broker(settings: Settings) -> bool:
    """SIGHUP the embedded Mosquitto so it re-reads its password and ACL files; False when it
    does not run here (an external broker reloads its copy of the files itself)."""
    try:
        broker = psutil.Process(int(pid_file(settings).read_text().strip()))
        if broker.name() != "mosquitto":  # a stale pid file: never signal a stranger
            return False
        broker.send_signal(signal.SIGHUP)
    except (OSError, ValueError, psutil.Error):
        return False
    return True


def sync_broker(settings: Settings, registry: Registry) -> int:
    """Registry → broker files → broker reload; the number of accounts written."""
    count = write_broker_files(settings, registry)
    reloaded = reload_broker(settings)
    log.info("broker credentials synced", extra={"accounts": count, "reloaded": reloaded})
    return count


def broker_auth_lines(settings: Settings) -> list[str]:
    """The embedded Mosquitto's configuration lines for TLS, authentication and ACLs (with
    ``security.mqtt_auth``: anonymous access off, the files written from the registry now)."""
    m = settings.mqtt
    lines = [f"pid_file {pid_file(settings)}"]
    if m.broker_cert and m.broker_key:
        lines += [f"certfile {m.broker_cert}", f"keyfile {m.broker_key}"]
    if not settings.security.mqtt_auth:
        return [*lines, "allow_anonymous true"]
    write_broker_files(settings, open_registry(settings))
    return [
        *lines,
        "allow_anonymous false",
        f"password_file {password_file(settings)}",
        f"acl_file {acl_file(settings)}",
    ]


def broker_config(settings: Settings, bind: str) -> str:
    """The whole ``mosquitto.conf``: one listener on ``bind`` (empty: every interface, as in a
    container), the authentication and ACL lines, persistence and the ``$SYS`` numbers in the
    broker's folder. The embedded Mosquitto and the Compose stack's run this same file."""
    home = broker_home(settings)
    listener = f"listener {settings.mqtt.port} {bind}".rstrip()
    return "\n".join(
        [
            listener,
            *broker_auth_lines(settings),
            "persistence true",
            f"persistence_location {home}/",
            "autosave_interval 10",
            "max_queued_messages 1000000",
            "max_inflight_messages 1000",
            "sys_interval 5",  # $SYS/broker numbers, the bridge's metrics, every 5 s
            f"user {getpass.getuser()}",  # dropped to when started as root, ignored otherwise
            "log_dest stdout",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "",
        ]
    )
