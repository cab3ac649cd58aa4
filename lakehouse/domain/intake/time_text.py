"""Times as people write them in price reports, supply files and headlines' dates: ISO 8601 or
day first (``21/03/2025 08:30``); a time without an offset is local."""

from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

_DAY_FIRST = re.compile(r"(\d{1,2})[/-](\d{1,2})[/-](\d{4})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2}))?)?")


def parse_time(text: str, tz: ZoneInfo) -> datetime:
    """ISO-8601 date or date-time, or ``dd/mm/yyyy [HH:MM[:SS]]``; a time without an offset is
    local time in ``tz``."""
    s = text.strip()
    if match := _DAY_FIRST.fullmatch(s):
        day, month, year, hour, minute, second = match.groups()
        parsed = datetime(
            int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0)
        )
    else:
        try:
            parsed = datetime.fromisoformat(s)
        except ValueError:
            raise ValueError(f"not a date/time: {text!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=tz)
