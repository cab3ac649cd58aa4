"""The languages the platform answers in: alert messages, impact verdicts, briefs."""

from __future__ import annotations

from typing import Literal, get_args

Language = Literal["id", "en"]
LANGUAGES: tuple[str, ...] = get_args(Language)
DEFAULT_LANGUAGE: Language = "id"
