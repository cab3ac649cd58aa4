"""What the data is: the event schemas (``events``), the table registry (``tables``), the
operations metrics (``ops_metrics``) and the configuration folder (``conf``: the reference data,
quality and alert rules and report formats of ``paths.conf_dir``, each read once). May import
``lakehouse.config``."""
