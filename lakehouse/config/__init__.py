"""Configuration: the typed settings (``settings``), secrets, structured logging, retry waits
(``backoff``), the errors every package may raise and where the lakehouse lives (``storage``).
Imports nothing else of the project."""
