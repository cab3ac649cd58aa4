"""The registry of devices and users (their keys, roles and alert subscriptions), the MQTT
broker's credentials derived from it, and its Alembic migrations."""
