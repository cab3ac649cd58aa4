"""What a healthy stack's service logs never hold: a traceback, or a line at ERROR (or worse).

The first-run journey test and ``bench first_hour`` read the logs of ``./run.sh up``'s services
(``data/logs``) for it: a failure inside a service is told, never hidden behind "healthy"."""

from __future__ import annotations

import re
from pathlib import Path

#: a Python traceback, a JVM or log4j line at ERROR, or a structured (JSON) line at ERROR or above
FAULT = re.compile(r'Traceback|\bERROR\b|"level": ?"(error|critical)"')


def faults(log_dir: Path) -> list[str]:
    """Every line of the logs in ``log_dir`` (rotated ones too) that ``FAULT`` matches, as
    ``file: line`` (the line cut at 300 characters)."""
    return [
        f"{path.name}: {line[:300]}"
        for path in sorted(log_dir.glob("*.log*"))
        for line in path.read_text(errors="replace").splitlines()
        if FAULT.search(line)
    ]
