"""One line for people: what an intent will do, as plans, previews and the undo stack say it."""

from __future__ import annotations

from typing import Any

from engine.graph.snapshot import GraphSnapshot
from gui.planner.intents import (
    AddImage,
    ChangeMedium,
    CloseTray,
    Commit,
    Delete,
    DetachBacking,
    ExternalSnapshot,
    InsertMedium,
    OpenTray,
    RemoveMedium,
    SetBacking,
    SetReadOnly,
    Stream,
)


# one case per kind of intent, read top to bottom like a table: cutting it would only
# scatter the sentences
def describe(graph: GraphSnapshot, intent: Any) -> str:  # noqa: C901
    """The one-line human summary of an intent."""
    match intent:
        case SetBacking(node, backing):
            old = graph.backing(node) if node in graph.nodes else None
            return (f"Re-point the backing of {node} from {old} to {backing}" if old
                    else f"Set the backing of {node} to {backing}")
        case DetachBacking(node):
            old = graph.backing(node) if node in graph.nodes else None
            return f"Detach {node} from its backing {old}" if old else f"Detach {node}'s backing"
        case SetReadOnly(node, ro):
            return f"Make {node} {'read-only' if ro else 'read-write'}"
        case ExternalSnapshot(node, overlay, filename):
            return f"Snapshot {node} into new overlay {overlay} ({filename})"
        case Stream(node, base):
            source = "the whole chain" if base is None else "above " + base
            return f"Stream into {node} from {source}"
        case Commit(top, base):
            return f"Commit {top} into {base or 'the bottom of its chain'}"
        case Delete(node):
            return f"Delete node {node}"
        case AddImage(name, filename, fmt, with_chain, backing=str(backing)):
            return f"Open {filename} ({fmt}) as {name}, backed by {backing}"
        case AddImage(name, filename, fmt, with_chain):
            chain = "with its backing chain" if with_chain else "without backing"
            return f"Open {filename} ({fmt}) as {name}, {chain}"
        case ChangeMedium(device, None):
            return f"Eject the medium of {device}"
        case ChangeMedium(device, filename):
            return f"Insert {filename} into {device}"
        case OpenTray(device):
            return f"Open the tray of {device}"
        case CloseTray(device):
            return f"Close the tray of {device}"
        case RemoveMedium(device):
            return f"Remove the medium of {device}"
        case InsertMedium(device, node):
            return f"Insert node {node} into {device}"
    return repr(intent)
