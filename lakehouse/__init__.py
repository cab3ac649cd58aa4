"""Shared core of the platform, in five packages, each importing only the ones above it here:

- ``config``: settings, secrets, logging, errors and where the lakehouse lives (storage);
- ``catalog``: the event schemas, the table registry, the operations metrics and the reference
  data and rules read from ``conf/``;
- ``io``: Delta through Spark (``delta_io``) and delta-rs (``table_writes``, ``fast_read``),
  Kafka, the SparkSession, status files, SQL over the tables, the data dictionary, upkeep;
- ``domain``: what the platform knows about markets — price metrics, the ledger, report and
  news parsing, supply chain, the device registry and broker credentials;
- ``cli``: the analyst's and the ledger's command lines.

``tests/test_layers.py`` checks the order. Nothing here imports the packages built on it
(``producers``, ``streaming_jobs``, ``ml``, ``serving_api``, ``scripts``).
"""
