"""Price file formats: how the columns of a CSV become the fields of a price event.

A format is a YAML file in ``formats/`` of the configuration folder (its name is the file's stem):

```yaml
description: Badan Pangan Nasional consumer-price panel export (one file per city)
layout: long                 # long: one price per row; wide: one column per date
detect: [timestamp, komoditas, satuan, harga, harga_kemarin]   # header columns that identify it
columns: {observed_at: timestamp, commodity: komoditas, price: harga, unit: satuan}
values: {source: bapanas}    # fields every row gets (the command line's --set adds to these)
skip_rows: {column: no, pattern: "^[IVX]+$"}   # optional: rows left out (e.g. category totals)
previous: {price: harga_kemarin, observed_at: tanggal_kemarin}  # optional: yesterday's columns
```

Column names are compared in normal form (``Harga Kemarin`` = ``harga_kemarin``). In a ``wide``
file every column whose header is a date holds that day's prices, and ``observed_at``/``price``
have no column. The command line adds ``--map field=Column`` and ``--set field=value`` on top of
the format named with ``--format`` or detected from the header (the most specific ``detect``
wins); without either a file must be in the long format. ``previous`` names columns that repeat
an earlier day's price: they are cross-checked against that day's row of the same file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import yaml

from lakehouse.catalog.reference import normal_form
from lakehouse.config.settings import ConfigError
from lakehouse.config.yaml_text import parse_yaml

FIELDS = ("observed_at", "market_id", "region", "commodity", "price", "unit", "source")
REQUIRED = {"long": ("observed_at", "market_id", "commodity", "price"), "wide": ("market_id",)}
Layout = Literal["long", "wide"]


class FormatError(ConfigError):
    """A format (from conf/formats/ or the command line) cannot be used."""


@dataclass(frozen=True)
class SkipRows:
    column: str
    pattern: re.Pattern[str]


@dataclass(frozen=True)
class PriceFormat:
    name: str
    description: str = ""
    layout: Layout = "long"
    detect: frozenset[str] = frozenset()
    columns: dict[str, str] = field(default_factory=dict)  # event field → header column
    values: dict[str, str] = field(default_factory=dict)  # event field → value of every row
    skip_rows: SkipRows | None = None
    previous: dict[str, str] = field(default_factory=dict)  # price/observed_at → header column

    def missing(self, header: list[str]) -> list[str]:
        """Required fields that neither a column of ``header`` nor a fixed value gives."""
        required = REQUIRED[self.layout] + (("commodity",) if self.layout == "wide" else ())
        return [
            f
            for f in dict.fromkeys(required)
            if f not in self.values and self.columns.get(f) not in header
        ]


def _field_map(entries: dict, where: str) -> dict[str, str]:
    unknown = set(entries) - set(FIELDS)
    if unknown:
        raise FormatError(f"{where}: unknown field(s) {sorted(unknown)}; fields: {FIELDS}")
    return {k: str(v) for k, v in entries.items()}


def _format(name: str, spec: dict, where: str) -> PriceFormat:
    layout = spec.get("layout", "long")
    if layout not in REQUIRED:
        raise FormatError(f"{where}: layout must be long or wide, not {layout!r}")
    columns = {k: normal_form(v) for k, v in _field_map(spec.get("columns", {}), where).items()}
    skip = spec.get("skip_rows")
    return PriceFormat(
        name=name,
        description=spec.get("description", ""),
        layout=layout,
        detect=frozenset(normal_form(c) for c in spec.get("detect", columns.values())),
        columns=columns,
        values=_field_map(spec.get("values", {}), where),
        skip_rows=SkipRows(normal_form(skip["column"]), re.compile(skip["pattern"]))
        if skip
        else None,
        previous={
            k: normal_form(v) for k, v in _field_map(spec.get("previous", {}), where).items()
        },
    )


def read_formats(folder: Path) -> dict[str, PriceFormat]:
    """The named formats of ``folder`` (``formats/`` of the configuration folder) by name."""
    found = {}
    for path in sorted(folder.glob("*.yaml")):
        try:
            spec = parse_yaml(path.read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise FormatError(f"cannot read format {path}: {exc}") from exc
        found[path.stem] = _format(path.stem, spec, str(path))
    return found


def detect(header: list[str], known: dict[str, PriceFormat]) -> PriceFormat | None:
    """The most specific of the ``known`` formats whose ``detect`` columns are all in
    ``header``."""
    matching = [f for f in known.values() if f.detect and f.detect <= set(header)]
    return max(matching, key=lambda f: len(f.detect), default=None)


def _pairs(items: list[str], option: str, shape: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise FormatError(f"{option} {item!r}: write {option} {shape}")
        pairs[key.strip()] = value.strip()
    return _field_map(pairs, option)


@dataclass(frozen=True)
class FormatChoice:
    """What the command line asked for: a named format and/or column mappings and values."""

    name: str | None = None
    maps: tuple[str, ...] = ()
    sets: tuple[str, ...] = ()

    def resolve(
        self, header: list[str], known: dict[str, PriceFormat]
    ) -> tuple[PriceFormat | None, str]:
        """The format for a file with ``header`` among the ``known`` named formats (None: not a
        price file we know) and how it was chosen, in words."""
        maps = {
            k: normal_form(v) for k, v in _pairs(list(self.maps), "--map", "FIELD=COLUMN").items()
        }
        sets = _pairs(list(self.sets), "--set", "FIELD=VALUE")
        if self.name:
            if self.name not in known:
                raise FormatError(
                    f"--format {self.name!r}: no such format in formats/ of the configuration "
                    f"folder (known: {', '.join(known)})"
                )
            base, how = known[self.name], f"format {self.name} (--format)"
        elif found := detect(header, known):
            base, how = found, f"format {found.name} (detected from the header)"
        elif maps or sets:
            base, how = known["long"], "format long"
        else:
            return None, ""
        if maps or sets:
            how += " with " + " ".join(
                [f"--map {k}={v}" for k, v in maps.items()]
                + [f"--set {k}={v}" for k, v in sets.items()]
            )
        columns = {k: v for k, v in {**base.columns, **maps}.items() if k not in sets}
        return replace(base, columns=columns, values={**base.values, **sets}), how
