"""Timing helpers of the benchmarks."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def timed(method: Callable[..., Any], into: list[float]) -> Callable[..., Any]:
    """``method`` recording how long each call took."""

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        began = time.monotonic()
        try:
            return method(*args, **kwargs)
        finally:
            into.append(time.monotonic() - began)

    return wrapper
