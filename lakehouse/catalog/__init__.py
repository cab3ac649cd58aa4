"""What the data is: the event schemas (``events``), the table registry (``tables``), the
operations metrics (``ops_metrics``) and the reference data, quality rules and report formats
read from ``conf/``. May import ``lakehouse.config``."""
