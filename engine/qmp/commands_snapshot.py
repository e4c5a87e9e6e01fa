"""QMP commands for external snapshots and ``transaction``.

The work is :mod:`engine.jobs.snapshots` (QEMU's checks come from
:mod:`engine.graph.rules`); here are the commands' shapes and their all-or-nothing
transactions: each command, and a whole ``transaction``, runs in one graph
transaction, so the first refusal undoes every change.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.jobs.errors import JobCommandError
from engine.jobs.snapshots import snapshot, snapshot_sync
from engine.qmp.registry import command
from engine.qmp.schema import Enum, ListOf, Str, Struct, Union, members

if TYPE_CHECKING:
    from engine.qmp.engine import Engine

BlockdevSnapshot = Struct("BlockdevSnapshot", members({"node": Str(), "overlay": Str()}))
BlockdevSnapshotSync = Struct("BlockdevSnapshotSync", members({
    "*device": Str(), "*node-name": Str(), "snapshot-file": Str(),
    "*snapshot-node-name": Str(), "*format": Str(),
    "*mode": Enum("NewImageMode", ["existing", "absolute-paths"]),
}))

ACTION_TYPES = ("abort", "block-dirty-bitmap-add", "block-dirty-bitmap-remove",
                "block-dirty-bitmap-clear", "block-dirty-bitmap-enable",
                "block-dirty-bitmap-disable", "block-dirty-bitmap-merge", "blockdev-backup",
                "blockdev-snapshot", "blockdev-snapshot-internal-sync",
                "blockdev-snapshot-sync", "drive-backup")
TransactionAction = Union(
    "TransactionAction",
    members({"type": Enum("TransactionActionKind", ACTION_TYPES)}),
    discriminator="type",
    variants={
        "abort": members({"*data": Struct("Abort", ())}),
        "blockdev-snapshot": members({"data": BlockdevSnapshot}),
        "blockdev-snapshot-sync": members({"data": BlockdevSnapshotSync}),
    })
TRANSACTION = Struct("transaction", members({
    "actions": ListOf(TransactionAction),
    "*properties": Struct("TransactionProperties", members({
        "*completion-mode": Enum("ActionCompletionMode", ["individual", "grouped"])})),
}))


def _run_action(engine: Engine, action: Any, args: dict[str, Any]) -> Any:
    """One snapshot action in its own graph transaction; a refusal changes nothing."""
    with engine.graph.transaction():
        action(engine.graph, args)
    return {}


@command("blockdev-snapshot", BlockdevSnapshot)
def blockdev_snapshot(engine: Engine, args: dict[str, Any]) -> Any:
    return _run_action(engine, snapshot, args)


@command("blockdev-snapshot-sync", BlockdevSnapshotSync)
def blockdev_snapshot_sync(engine: Engine, args: dict[str, Any]) -> Any:
    return _run_action(engine, snapshot_sync, args)


@command("transaction", TRANSACTION)
def transaction(engine: Engine, args: dict[str, Any]) -> Any:
    """All actions or none: the first failure rolls every change back."""
    graph = engine.graph
    with graph.transaction():
        for action in args["actions"]:
            kind = action["type"]
            if kind == "abort":
                raise JobCommandError("Transaction aborted using Abort action")
            if kind == "blockdev-snapshot":
                snapshot(graph, action["data"])
            elif kind == "blockdev-snapshot-sync":
                snapshot_sync(graph, action["data"])
            else:
                raise JobCommandError(
                    f"Transaction action '{kind}' is not supported by the bundled engine")
    return {}
