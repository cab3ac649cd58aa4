"""Reading and writing: Delta through Spark (``delta_io``) and delta-rs (``table_writes``,
``fast_read``), Kafka (``kafka_clients``, ``kafka_io``), the SparkSession (``spark``), status
files, SQL over the tables (``query``, ``spark_catalog``), the data dictionary and table upkeep.
May import ``lakehouse.config`` and ``lakehouse.catalog``."""
