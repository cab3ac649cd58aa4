"""Errors a person can act on: one JSON shape ``{"detail": "...", "choices": [...]}``, and the
request-validation errors of FastAPI rewritten into the same plain sentences."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from lakehouse.catalog.conf import Conf
from lakehouse.catalog.reference import NATIONAL


class ApiError(Exception):
    """An answer other than 2xx, with a message and optionally the valid choices."""

    def __init__(self, status_code: int, detail: str, choices: Iterable[str] | None = None) -> None:
        super().__init__(detail)
        self.status_code = status_code
        self.detail = detail
        self.choices = sorted(choices) if choices is not None else None


def unknown(kind: str, value: str, valid: Iterable[str]) -> ApiError:
    """404 for a name that is not one of ``valid``, with the closest match suggested."""
    valid = list(valid)
    close = difflib.get_close_matches(value, valid, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    return ApiError(status.HTTP_404_NOT_FOUND, f"unknown {kind} {value!r}{hint}", valid)


def _resolved(kind: str, name: str | None, found: str | None, valid: Iterable[str]) -> str | None:
    """``found`` (what ``name`` resolved to), or the 404 of an unknown ``kind``; None stays."""
    if name is None:
        return None
    if found is None:
        raise unknown(kind, name, valid)
    return found


def resolve_commodity(conf: Conf, name: str | None) -> str | None:
    """The catalogue id of a commodity as people write it (``Bawang Merah`` → ``bawang_merah``)."""
    found = conf.commodity_id(name) if name is not None else None
    return _resolved("commodity", name, found, conf.commodities)


def resolve_market(conf: Conf, market_id: str | None) -> str | None:
    if market_id is None or market_id in conf.markets:
        return market_id
    raise unknown("market_id", market_id, conf.markets)


def resolve_province(conf: Conf, name: str | None) -> str | None:
    """The province's name as tables hold it, from its name, an alias or its BPS code
    (``jakarta``, ``31`` → ``DKI Jakarta``)."""
    found = conf.province_name(name) if name is not None else None
    valid = [p.name for p in conf.provinces.values()] + [NATIONAL]
    return _resolved("province", name, found, valid)


def resolve_regency(conf: Conf, name: str | None) -> str | None:
    """The official code (PP.RR) of a regency or city from its code, official name or its
    markets' city (``32.71``, ``Kota Bogor``, ``bogor`` → ``32.71``); a 404's choices are the
    regencies with markets."""
    found = conf.regency_code(name) if name is not None else None
    return _resolved("regency", name, found, conf.regency_markets)


def _sentence(error: dict[str, Any]) -> str:
    where = error.get("loc", ())
    if where and where[0] in ("query", "path", "header"):
        place = f"{where[0]} parameter {'.'.join(str(p) for p in where[1:])!r}"
    elif where and where[0] == "body":
        place = "body" + "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in where[1:])
    else:
        place = ".".join(str(p) for p in where) or "request"
    message = error.get("msg", "is invalid")
    given = error.get("input")
    shown = f" (got {given!r})" if isinstance(given, (str, int, float)) else ""
    return f"{place}: {message}{shown}"


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the same shape."""

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> JSONResponse:
        body: dict[str, Any] = {"detail": exc.detail}
        if exc.choices is not None:
            body["choices"] = exc.choices
        return JSONResponse(body, status_code=exc.status_code)

    @app.exception_handler(RequestValidationError)
    async def invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        sentences = [_sentence(e) for e in exc.errors()]
        return JSONResponse(
            {"detail": "; ".join(sentences[:10]) or "invalid request", "errors": sentences},
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
        )
