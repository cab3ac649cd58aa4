"""The command lines of the core: the analyst's (``./run.sh query``, ``tables``, ``maintain``)
and the ledger's. May import every other package of ``lakehouse``."""
