"""API bodies derived from the tables they serve: a field per ``Table`` column, its Python type
from the column's Spark type and its description from the column's meaning — so a gold table's
contract is written once, in ``lakehouse.catalog.tables``."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from lakehouse.catalog.tables import Table, Typed

_SCALARS: dict[str, type] = {
    "string": str,
    "double": float,
    "float": float,
    "int": int,
    "bigint": int,
    "boolean": bool,
    "date": date,
    "timestamp": datetime,
}
_CONTAINER = re.compile(r"(array|map)<(\w+)(?:,(\w+))?>")


def python_type(spark_type: str) -> Any:
    """The Python type of a Spark DDL type (scalars, arrays and maps of scalars)."""
    spark_type = spark_type.replace(" ", "")
    if spark_type in _SCALARS:
        return _SCALARS[spark_type]
    if (found := _CONTAINER.fullmatch(spark_type)) is None:
        raise ValueError(f"no API type for the Spark type {spark_type!r}")
    kind, first, second = found.groups()
    if kind == "array":
        return list[python_type(first)]  # type: ignore[misc]
    return dict[python_type(first), python_type(second)]  # type: ignore[misc]


def table_model(
    name: str,
    table: Table,
    fields: Sequence[str],
    required: Sequence[str] = (),
    example: dict[str, object] | None = None,
) -> type[BaseModel]:
    """A model of ``fields`` of ``table`` (each a ``Typed`` column), in that order: every field
    is present in a body; those of ``required`` are never null."""
    definitions: dict[str, Any] = {}
    for field in fields:
        column = table.columns[field]
        if not isinstance(column, Typed):
            raise TypeError(f"{table.qualified_name}.{field} has no declared type")
        kind = python_type(column.type)
        definitions[field] = (
            (kind, Field(description=column.meaning))
            if field in required
            else (kind | None, Field(description=column.meaning))
        )
    config = ConfigDict(json_schema_extra={"examples": [example]}) if example else None
    return create_model(name, __config__=config, __doc__=table.description, **definitions)
