"""The language of an answer (``serving_api.language``): ``?lang``, else Accept-Language, else
Indonesian; an alert served in one language."""

from __future__ import annotations

import pytest

from serving_api.language import localized_alert, preferred_language


@pytest.mark.parametrize(
    ("lang", "header", "chosen"),
    [
        (None, None, "id"),
        (None, "", "id"),
        ("en", None, "en"),
        ("id", "en-US,en;q=0.9", "id"),
        (None, "en-US,en;q=0.9,id;q=0.8", "en"),
        (None, "id-ID,id;q=0.9,en-US;q=0.8", "id"),
        (None, "fr-FR, en;q=0.4, id;q=0.6", "id"),
        (None, "en;q=0, id;q=0.1", "id"),  # q=0: not wanted
        (None, "en;q=0", "id"),
        (None, "in", "id"),  # Indonesian's former code
        (None, "de, fr", "id"),
        (None, "EN", "en"),
        (None, "en;q=abc, id;q=0.5", "id"),  # a broken quality counts as 0
    ],
)
def test_preferred_language(lang, header, chosen) -> None:
    assert preferred_language(lang, header) == chosen


def test_an_alert_is_served_in_one_language() -> None:
    row = {"alert_id": "a", "message_id": "Harga naik 12,0 %", "message_en": "Price up 12.0%"}
    assert localized_alert(row, "en") == {
        "alert_id": "a",
        "message": "Price up 12.0%",
        "lang": "en",
    }
    assert localized_alert(row, "id")["message"] == "Harga naik 12,0 %"
