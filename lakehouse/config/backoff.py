"""The wait before the next try of something that failed several times in a row."""

from __future__ import annotations


def backoff_seconds(failures: int, first: float, most: float) -> float:
    """The wait after ``failures`` failures in a row: 1, 2, 4, … × ``first``, at most ``most``."""
    return min(first * 2 ** max(failures - 1, 0), most)
