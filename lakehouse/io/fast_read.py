"""What the read side without Spark (``lakehouse.io.lake``, delta-rs) hands its readers — the
API, the DuckDB query engine, the ML jobs, the notifier: every read in one Arrow layout
(``plain``), whatever writer and version wrote the files; conditions that hold on any layout;
the data files a commit added."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import unquote

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from deltalake import DeltaTable

from lakehouse.config.settings import Settings
from lakehouse.config.storage import join, parquet_source

Columns = Sequence[str] | None  # some of a table's columns (None: all)


class TableMissing(LookupError):
    """The table has not been written yet (the pipeline has not produced it)."""


def sql_strings(values: Sequence[str]) -> str:
    """``values`` as the SQL string literals of an ``IN (…)`` list or a comparison of a
    ``LakeTable.where`` condition (quotes doubled)."""
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def plain_type(kind: pa.DataType) -> pa.DataType:
    """The one Arrow layout every reader of this module gets for ``kind``: strings and binaries
    as plain (32-bit offset) arrays whatever a writer chose — delta-rs writes ``string_view``,
    other writers ``large_string`` or dictionaries, and Arrow's kernels (sorting, grouping)
    do not take every layout — lists as plain lists, timestamps as microseconds in UTC;
    nested types likewise, all the way down."""
    if pa.types.is_dictionary(kind):
        return plain_type(kind.value_type)
    if pa.types.is_string_view(kind) or pa.types.is_large_string(kind):
        return pa.string()
    if pa.types.is_binary_view(kind) or pa.types.is_large_binary(kind):
        return pa.binary()
    if pa.types.is_timestamp(kind):
        return pa.timestamp("us", tz="UTC")
    if pa.types.is_map(kind):
        return pa.map_(plain_type(kind.key_type), plain_type(kind.item_type))
    if (
        pa.types.is_list(kind)
        or pa.types.is_large_list(kind)
        or pa.types.is_list_view(kind)
        or pa.types.is_large_list_view(kind)
    ):
        return pa.list_(plain_type(kind.value_type))
    if pa.types.is_struct(kind):
        return pa.struct([f.with_type(plain_type(f.type)) for f in kind])
    return kind


def _list_of_view(chunk: pa.Array) -> pa.Array:
    """A list view as the plain list of the same values (Arrow 25's cast between the two
    writes a short offsets buffer)."""
    sizes = pc.fill_null(pc.list_value_length(chunk), 0).to_numpy().astype(np.int64)
    offsets = pa.array(np.concatenate([[0], np.cumsum(sizes)]), pa.int64())
    values = pc.list_flatten(chunk)
    return pa.LargeListArray.from_arrays(offsets, values, mask=chunk.is_null())


def _plain_column(column: pa.ChunkedArray, dictionary: bool) -> pa.ChunkedArray:
    kind, wanted = column.type, plain_type(column.type)
    if pa.types.is_list_view(kind) or pa.types.is_large_list_view(kind):
        column = pa.chunked_array(
            [_list_of_view(c) for c in column.chunks], pa.large_list(kind.value_field)
        )
    if pa.types.is_timestamp(kind) and kind.tz is None:  # naive: a writer's UTC wall time
        column = pc.assume_timezone(column, "UTC")
    if pa.types.is_dictionary(kind):  # its values made plain first (a view cannot be taken)
        column = column.cast(pa.dictionary(kind.index_type, wanted))
        return column if dictionary else column.cast(wanted)
    if dictionary and pa.types.is_string(wanted):
        return pc.dictionary_encode(column.cast(wanted))
    return column if kind == wanted else column.cast(wanted)


def plain(table: pa.Table, dictionary: Columns = None) -> pa.Table:
    """``table`` in the layout of ``plain_type``, with the columns named in ``dictionary``
    dictionary-encoded (of string values): the one place a read's layout is settled, so every
    caller — the API's views, the notifier, the metrics — gets the same types from any writer
    (delta-rs MERGE or append, Spark) and any version of them."""
    encoded = set(dictionary or ())
    columns = [_plain_column(table[f.name], f.name in encoded) for f in table.schema]
    if all(c.type == f.type for c, f in zip(columns, table.schema, strict=True)):
        return table
    return pa.Table.from_arrays(columns, names=table.column_names)


#: a condition on a column, as pyarrow's and delta-rs' ``filters`` take it: ``("state", "=",
#: "in_transit")``, ``("silver_batch_id", ">=", 7)``, ``("commodity", "in", ["beras"])``
Condition = tuple[str, str, Any]

_COMPARISONS = {
    "=": pc.Expression.__eq__,
    "==": pc.Expression.__eq__,
    "!=": pc.Expression.__ne__,
    "<": pc.Expression.__lt__,
    "<=": pc.Expression.__le__,
    ">": pc.Expression.__gt__,
    ">=": pc.Expression.__ge__,
}


def _condition(name: str, op: str, value: Any) -> pc.Expression:
    """One condition as an expression that holds whatever layout a file has the column in: a
    string column is compared as a plain string (Arrow has no kernel comparing a file's
    ``string_view``, as delta-rs MERGE writes it, with a string literal)."""
    values = value if op in ("in", "not in") else [value]
    column = pc.field(name)
    if values and all(isinstance(v, str) for v in values):
        column = column.cast(pa.string())
    if op in ("in", "not in"):
        found = column.isin(list(values))
        return ~found if op == "not in" else found
    return _COMPARISONS[op](column, value)


def rows_of(
    delta: DeltaTable, columns: Columns = None, where: Sequence[Condition] = ()
) -> pa.Table:
    """The rows of an opened table (only ``columns`` when given) where every condition of
    ``where`` holds, in the layout of ``plain``: the one read of a whole table, so no caller
    meets a writer's layout."""
    condition = None
    for name, op, value in where:
        one = _condition(name, op, value)
        condition = one if condition is None else condition & one
    chosen = list(columns) if columns else None
    return plain(delta.to_pyarrow_dataset().to_table(columns=chosen, filter=condition))


def file_rows(
    settings: Settings, root: str, add: dict[str, Any], columns: Columns, dictionary: Columns
) -> pa.Table:
    """The rows of one added data file (an ``add`` action) of the table at ``root``, with its
    partition values as columns (partition columns of the registry are dates). Of ``columns``,
    those the file holds (a file written before a column was added has not got it:
    concatenated with newer files, it reads null)."""
    partitions = add.get("partitionValues") or {}
    path, filesystem = parquet_source(settings, join(root, unquote(add["path"])))
    with pq.ParquetFile(path, filesystem=filesystem, read_dictionary=dictionary) as file:
        held = file.schema_arrow.names
        rows = file.read(columns=None if columns is None else [c for c in columns if c in held])
    for name, value in partitions.items():  # unless the writer kept them in the file too
        if (columns is None or name in columns) and name not in held:
            column = pa.array([value] * rows.num_rows, pa.string())
            rows = rows.append_column(name, column.cast(pa.date32()))
    return plain(rows, dictionary)


def changes_data(action: dict[str, Any]) -> bool:
    """Whether a commit's action adds or removes rows (files that only re-arrange data, like
    OPTIMIZE's, do not)."""
    if "cdc" in action:
        return True
    change = action.get("add") or action.get("remove")
    return bool(change) and change.get("dataChange", True)


def added_files(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The data files a commit's ``actions`` added (``changes_data``)."""
    return [a["add"] for a in actions if "add" in a and changes_data(a)]
