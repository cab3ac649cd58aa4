"""Structured logging: one JSON object per line, quiet by default.

``SMARTMARKET_LOG_LEVEL`` sets the level of the platform's own loggers (default INFO); third-party
libraries log at WARNING. Extra context goes in ``extra={...}`` and becomes JSON fields.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from time import monotonic

_STANDARD_ATTRS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
_OWN_PACKAGES = ("lakehouse", "producers", "streaming_jobs", "ml", "serving_api", "scripts")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD_ATTRS})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def configure_logging(default_level: str = "INFO", stream=sys.stderr) -> None:  # noqa: ANN001
    """Install the JSON handler on the root logger (idempotent). Services log at INFO; the
    command line passes WARNING so that only what the user must see is printed."""
    root = logging.getLogger()
    if any(isinstance(h.formatter, JsonFormatter) for h in root.handlers):
        return
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    level = os.environ.get("SMARTMARKET_LOG_LEVEL", default_level).upper()
    for package in _OWN_PACKAGES:
        logging.getLogger(package).setLevel(level)


class Laps:
    """Seconds spent in each step of a piece of work (a micro-batch), for its log line."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._last = monotonic()

    def __call__(self, step: str) -> None:
        now = monotonic()
        self.seconds[step] = round(now - self._last, 3)
        self._last = now
