"""The language of an answer: ``?lang=id|en``, else the first of them the request's
``Accept-Language`` header prefers, else Indonesian — and an alert in that one language."""

from __future__ import annotations

from typing import Any

from lakehouse.catalog.languages import DEFAULT_LANGUAGE, LANGUAGES, Language

#: ``gold.alerts``' message columns by language (``streaming_jobs.alerts.messages.alert_rows``)
MESSAGE_COLUMNS = {language: f"message_{language}" for language in LANGUAGES}
#: language tags that name one of ours ("in": Indonesian's former ISO 639 code)
_ALIASES = {"in": "id"}


def preferred_language(lang: str | None, accept_language: str | None) -> Language:
    """``lang`` when given (one of ``LANGUAGES``), else the language of ``LANGUAGES`` the
    ``Accept-Language`` header ranks highest (``en-US,en;q=0.9,id;q=0.8`` → ``en``; quality 0:
    not wanted), else ``DEFAULT_LANGUAGE``."""
    if lang in LANGUAGES:
        return lang  # type: ignore[return-value]
    ranked: list[tuple[float, int, Language]] = []
    for position, part in enumerate((accept_language or "").split(",")):
        tag, *params = (p.strip() for p in part.split(";"))
        primary = tag.lower().split("-")[0]
        primary = _ALIASES.get(primary, primary)
        if primary not in LANGUAGES:
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > 0:
            ranked.append((-quality, position, primary))  # type: ignore[arg-type]
    return min(ranked)[2] if ranked else DEFAULT_LANGUAGE


def localized_alert(alert: dict[str, Any], language: str) -> dict[str, Any]:
    """A ``gold.alerts`` row as the API serves it: its ``message`` in ``language`` (and
    ``lang``) instead of the message columns of every language."""
    served = {k: v for k, v in alert.items() if k not in MESSAGE_COLUMNS.values()}
    return {**served, "message": alert.get(MESSAGE_COLUMNS[language]), "lang": language}
