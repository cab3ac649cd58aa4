"""What the platform knows about markets: price metrics, the price ledger, report and news
parsing, the supply chain, the device and user registry (its migrations with it) and the MQTT
broker's credentials. May import ``lakehouse.config``, ``lakehouse.catalog`` and
``lakehouse.io``."""
