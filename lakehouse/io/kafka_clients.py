"""How every Kafka client of the platform reaches the cluster: bootstrap servers and security.

One mapping of the ``kafka`` settings, in the two dialects the platform speaks: librdkafka
(confluent-kafka: producers, the bridge, API ingest, admin and test consumers) and the Java
client under Spark's Kafka source (``kafka.``-prefixed options). The SASL password is a secret
(``kafka.sasl_password``: ``SMARTMARKET_SECRET_KAFKA__SASL_PASSWORD`` or the secrets file), never
a setting.
"""

from __future__ import annotations

from pathlib import Path

from lakehouse.config.secrets import secret
from lakehouse.config.settings import ConfigError, KafkaSettings, Settings

PASSWORD_SECRET = "kafka.sasl_password"

_LOGIN_MODULES = {
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


def _sasl(settings: Settings) -> tuple[str, str, str] | None:
    """(mechanism, username, password) when the protocol uses SASL, else None."""
    k = settings.kafka
    if not k.security_protocol.startswith("SASL_"):
        return None
    password = secret(settings, PASSWORD_SECRET)
    if not k.sasl_username or password is None:
        raise ConfigError(
            f"kafka.security_protocol {k.security_protocol} needs kafka.sasl_username and the "
            f"secret {PASSWORD_SECRET} (SMARTMARKET_SECRET_KAFKA__SASL_PASSWORD or the secrets "
            "file, see docs/cluster.md)"
        )
    return k.sasl_mechanism, k.sasl_username, password


def _pem(path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read the Kafka client certificate or key {path}: {exc}") from exc


def _uses_ssl(k: KafkaSettings) -> bool:
    return k.security_protocol in ("SSL", "SASL_SSL")


def client_config(settings: Settings) -> dict[str, str]:
    """librdkafka options every confluent-kafka client starts from."""
    k = settings.kafka
    conf = {"bootstrap.servers": k.bootstrap, "security.protocol": k.security_protocol}
    if sasl := _sasl(settings):
        mechanism, username, password = sasl
        conf |= {"sasl.mechanism": mechanism, "sasl.username": username, "sasl.password": password}
    if _uses_ssl(k):
        files = {
            "ssl.ca.location": k.ssl_ca,
            "ssl.certificate.location": k.ssl_cert,
            "ssl.key.location": k.ssl_key,
        }
        conf |= {key: str(path) for key, path in files.items() if path}
        if not k.ssl_check_hostname:
            conf["ssl.endpoint.identification.algorithm"] = "none"
    return conf


def spark_options(settings: Settings) -> dict[str, str]:
    """The same connection as options of Spark's Kafka source (Java client names, prefixed
    ``kafka.``). Certificates are PEM: the CA as the trust store, the client certificate and
    key read into a PEM key store."""
    k = settings.kafka
    conf = {"bootstrap.servers": k.bootstrap, "security.protocol": k.security_protocol}
    if sasl := _sasl(settings):
        mechanism, username, password = sasl
        conf |= {
            "sasl.mechanism": mechanism,
            "sasl.jaas.config": f'{_LOGIN_MODULES[mechanism]} required username="{username}" '
            f'password="{password}";',
        }
    if _uses_ssl(k):
        if k.ssl_ca:
            conf |= {"ssl.truststore.type": "PEM", "ssl.truststore.location": str(k.ssl_ca)}
        if k.ssl_cert and k.ssl_key:
            conf |= {
                "ssl.keystore.type": "PEM",
                "ssl.keystore.certificate.chain": _pem(k.ssl_cert),
                "ssl.keystore.key": _pem(k.ssl_key),
            }
        if not k.ssl_check_hostname:
            conf["ssl.endpoint.identification.algorithm"] = ""
    return {f"kafka.{key}": value for key, value in conf.items()}
