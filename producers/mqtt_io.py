"""MQTT client set-up shared by the device simulator and the bridge (TLS when configured)."""

from __future__ import annotations

import paho.mqtt.client as mqtt

from lakehouse.config.settings import Settings


def make_client(
    settings: Settings,
    client_id: str = "",
    *,
    persistent: bool = False,
    manual_ack: bool = False,
    credentials: tuple[str, str] | None = None,
) -> mqtt.Client:
    """An MQTT 3.1.1 client for the configured broker; ``persistent`` keeps the session (and
    the QoS 1 messages queued for it) across disconnects; ``credentials`` = (user, password)."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=not persistent,
        protocol=mqtt.MQTTv311,
        manual_ack=manual_ack,
    )
    if credentials:
        client.username_pw_set(*credentials)
    m = settings.mqtt
    if m.tls_ca:
        client.tls_set(
            ca_certs=str(m.tls_ca),
            certfile=str(m.tls_cert) if m.tls_cert else None,
            keyfile=str(m.tls_key) if m.tls_key else None,
        )
    return client
