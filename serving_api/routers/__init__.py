"""HTTP and WebSocket routes: thin — validate, look up a prepared view, answer."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Query, Response

from serving_api.language import Language
from serving_api.models import Error

JSON = "application/json"
API_PREFIX = "/api/v1"

#: error answers every read route documents
READ_ERRORS: dict[int | str, dict] = {
    401: {"model": Error, "description": "missing or unknown X-API-Key (api.open_reads off)"},
    403: {"model": Error, "description": "the key's role may not read"},
    404: {"model": Error, "description": "unknown commodity, market or province"},
    422: {"model": Error, "description": "a parameter is malformed or out of range"},
}


#: the language of an answer's messages (``serving_api.language.preferred_language``)
Lang = Annotated[
    Language | None,
    Query(
        description="the language of the messages: id (Indonesian) or en; without it the "
        "Accept-Language header's, else Indonesian"
    ),
]
AcceptLanguage = Annotated[str | None, Header(include_in_schema=False)]

TOTAL_HEADER = "X-Total-Count"  # a list endpoint's count of matching items, whatever the page


def json_bytes(body: bytes, total: int | None = None) -> Response:
    """An answer already encoded (prepared views keep their JSON); ``total``: how many items
    match whatever the page, in the ``TOTAL_HEADER``."""
    headers = None if total is None else {TOTAL_HEADER: str(total)}
    return Response(content=body, media_type=JSON, headers=headers)
