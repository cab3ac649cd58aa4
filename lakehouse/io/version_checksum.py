"""Delta version checksums (``_delta_log/N.crc``) for the commits delta-rs makes.

Spark's Delta reads a table's protocol and metadata from the checksum of the version it loads.
Without one it replays the log since the last checkpoint in a Spark job of its own, whose
generated code carries the version as a literal: every new version compiled a new ~1 200-line
class and ran that job. Spark writes a checksum with each of its commits; delta-rs (the
pipeline's appends and MERGEs after a table's first, Spark-made, commit) writes none, so every
version the gold query's Delta source or a Spark read loaded paid for both.

``write_checksum`` derives a commit's checksum from the one before it and the commit's own
actions, as Delta does after its commits ("incremental" checksums): the file count and bytes, the
newest protocol and metadata, the app transactions. A commit it cannot account for exactly — no
checksum before it, a removed file without its size, an action it does not know — gets none, and
Spark reads that version as before; the chain starts again at Spark's next commit."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from lakehouse.catalog.tables import Table
from lakehouse.config.settings import Settings
from lakehouse.config.storage import exists, read_text, write_text

#: what a derived checksum carries over and updates (the rest of Spark's — the file size
#: histogram, the list of files — is optional and left out)
CARRIED = (
    "tableSizeBytes",
    "numFiles",
    "numMetadata",
    "numProtocol",
    "setTransactions",
    "domainMetadata",
)
#: the fields without which a checksum is no base to derive the next from
REQUIRED = frozenset({"tableSizeBytes", "numFiles", "metadata", "protocol"})


def checksum_file(table: Table, settings: Settings, version: int) -> str:
    """The checksum file of ``version``, beside its commit file (``Table.log``)."""
    return table.log(settings, version).removesuffix(".json") + ".crc"


def next_checksum(previous: dict[str, Any], actions: Iterable[dict[str, Any]]) -> dict | None:
    """The checksum of a version from its predecessor's and its commit's ``actions`` (the
    commit file's lines, parsed); None when they do not determine it."""
    if not previous.keys() >= REQUIRED:
        return None
    out = {k: previous[k] for k in (*CARRIED, "metadata", "protocol") if k in previous}
    for action in actions:
        ((kind, body),) = action.items()
        if kind == "add":
            out["numFiles"] += 1
            out["tableSizeBytes"] += body["size"]
        elif kind == "remove":
            if body.get("size") is None:
                return None
            out["numFiles"] -= 1
            out["tableSizeBytes"] -= body["size"]
        elif kind in ("metaData", "protocol"):
            out["metadata" if kind == "metaData" else kind] = body
        elif kind == "txn" and "setTransactions" in out:
            kept = [t for t in out["setTransactions"] if t["appId"] != body["appId"]]
            out["setTransactions"] = [*kept, body]
        elif (kind == "commitInfo" and "inCommitTimestamp" not in body) or kind == "cdc":
            continue  # neither counts: change-data files are not the table's files
        else:
            return None
    return out


def write_checksum(table: Table, settings: Settings, version: int) -> bool:
    """Write the checksum of ``version`` of ``table``, a commit delta-rs has just made, when the
    version before it has one and it has none yet; whether it was written."""
    if exists(settings, checksum_file(table, settings, version)):
        return False  # Spark's commit, or ours written already
    previous = read_text(settings, checksum_file(table, settings, version - 1))
    commit = read_text(settings, table.log(settings, version))
    if previous is None or commit is None:
        return False
    actions = (json.loads(line) for line in commit.splitlines() if line.strip())
    checksum = next_checksum(json.loads(previous), actions)
    if checksum is None:
        return False
    write_text(settings, checksum_file(table, settings, version), json.dumps(checksum))
    return True
