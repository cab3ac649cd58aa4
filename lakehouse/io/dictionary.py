"""The data dictionary: every table of the registry with its layer, size, version, last update
and columns (type from the Delta table, meaning from ``lakehouse.catalog.tables``).

``describe`` reads the live tables with delta-rs (no Spark); ``markdown`` renders the static part
(tables, meanings, partitioning, keys) for ``docs/data-dictionary.md``, between ``DOC_START`` and
``DOC_END``, so the page never drifts from the registry (a test checks it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from lakehouse.catalog.tables import TABLES, Table, arrow_schema
from lakehouse.config.settings import Settings
from lakehouse.io.fast_read import TableMissing
from lakehouse.io.lake import Lakehouse, LakeTable

DOC_START = "<!-- data-dictionary:start (generated: ./run.sh tables --docs) -->"
DOC_END = "<!-- data-dictionary:end -->"


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # Delta type of the written table, else the declared DDL type, else ""
    meaning: str


@dataclass(frozen=True)
class TableInfo:
    table: Table
    rows: int | None  # None: not written yet
    version: int | None
    last_update: datetime | None
    columns: tuple[Column, ...]


def _type_name(delta_type: object) -> str:
    """Short SQL-like name of a delta-rs type: ``string``, ``array<string>``,
    ``map<string,double>``."""
    kind = getattr(delta_type, "type", None)
    if kind == "array":
        return f"array<{_type_name(delta_type.element_type)}>"
    if kind == "map":
        return f"map<{_type_name(delta_type.key_type)},{_type_name(delta_type.value_type)}>"
    if kind == "struct":
        fields = ",".join(f"{f.name}:{_type_name(f.type)}" for f in delta_type.fields)
        return f"struct<{fields}>"
    return str(kind)


def _declared_types(table: Table) -> dict[str, str]:
    return {f.name: str(f.type) for f in arrow_schema(table)} if table.schema else {}


def describe(bound: LakeTable) -> TableInfo:
    """What the dictionary says about one table, live."""
    table = bound.table
    try:
        delta = bound.open()
    except TableMissing:
        types = _declared_types(table)
        columns = tuple(Column(n, types.get(n, ""), m) for n, m in table.meanings.items())
        return TableInfo(table, None, None, None, columns)
    fields = delta.schema().fields
    written = {f.name for f in fields}
    columns = tuple(
        Column(f.name, _type_name(f.type), table.meanings.get(f.name, "")) for f in fields
    ) + tuple(Column(n, "", m) for n, m in table.meanings.items() if n not in written)
    (last,) = delta.history(1)
    return TableInfo(
        table,
        rows=delta.count(),
        version=delta.version(),
        last_update=datetime.fromtimestamp(last["timestamp"] / 1000, UTC),
        columns=columns,
    )


def describe_all(settings: Settings) -> list[TableInfo]:
    lake = Lakehouse(settings)
    return [describe(lake[table]) for table in TABLES.values()]


def text(infos: list[TableInfo]) -> str:
    """The dictionary for a terminal: a summary line per table, then its columns."""
    blocks = []
    for info in infos:
        t = info.table
        state = (
            "not written yet"
            if info.version is None
            else f"{info.rows:,} rows · version {info.version} · "
            f"updated {info.last_update:%Y-%m-%d %H:%M:%S} UTC"
        )
        width = max(len(c.name) for c in info.columns)
        type_width = max(len(c.type) for c in info.columns)
        lines = [f"{t.qualified_name}  [{t.layer}]  {state}", f"  {t.description}"]
        lines += [
            f"    {c.name:<{width}}  {c.type:<{type_width}}  {c.meaning or '(no description)'}"
            for c in info.columns
        ]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _cell(value: str) -> str:
    return value.replace("|", "\\|")


def markdown() -> str:
    """The data dictionary page: an overview table, then each table's columns."""
    lines = [
        "| table | meaning | partitioned by | keys |",
        "|---|---|---|---|",
        *[
            f"| `{t.qualified_name}` | {_cell(t.description)} | {', '.join(t.partition_by)} "
            f"| {', '.join(t.keys)} |"
            for t in TABLES.values()
        ],
        "",
    ]
    for t in TABLES.values():
        lines += [
            f"<details><summary><code>{t.qualified_name}</code> — {len(t.columns)} columns"
            "</summary>",
            "",
            "| column | meaning |",
            "|---|---|",
            *[f"| `{name}` | {_cell(meaning)} |" for name, meaning in t.meanings.items()],
            "",
            "</details>",
            "",
        ]
    return "\n".join(lines).rstrip() + "\n"


def doc_section(doc: str) -> str:
    """The generated part of the page's text (between the markers)."""
    start, end = doc.index(DOC_START) + len(DOC_START), doc.index(DOC_END)
    return doc[start:end].strip("\n") + "\n"


def update_doc(path: Path) -> bool:
    """Rewrite the generated part of the page at ``path``; True if it changed."""
    doc = path.read_text(encoding="utf-8")
    start, end = doc.index(DOC_START) + len(DOC_START), doc.index(DOC_END)
    updated = f"{doc[:start]}\n{markdown()}{doc[end:]}"
    path.write_text(updated, encoding="utf-8")
    return updated != doc
