"""Removable media: the drives with trays (ide-cd, scsi-cd, floppy), read and changed.

The block graph does not say which drives have trays, whether a tray is open or what
medium is in it: ``query-block`` does. :class:`MediaTracker` asks it when the session
connects, when the set of backends changes, after ``DEVICE_TRAY_MOVED`` and after a
media edit (not on every refresh: its reply nests every layer of every disk's chain),
and keeps one :class:`Drive` per backend. The window marks each removable drive's card
with its tray and medium and offers, on the drive's card: open and close the tray,
eject, insert and change the medium (read-only mode: retain, read-only, read-write) —
each an intent the planner plans (:class:`~gui.planner.intents.OpenTray`,
:class:`~gui.planner.intents.CloseTray`, :class:`~gui.planner.intents.ChangeMedium`).

It also names backends readably for the window (:meth:`MediaTracker.labels`): a
device's id, else its QOM path shortened to the part that tells devices apart; an
export by its id.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from PySide6.QtCore import QObject, Signal

from engine.graph.snapshot import BLOCK_BACKEND, GraphSnapshot, anonymous_backend_key
from gui.session import SessionError
from gui.session.client import background_traffic
from gui.views.text import readable_device
from gui.widgets.canvas_marks import CanvasMarks, Mark
from gui.window.bridge import SessionBridge

_SOURCE = "media"


@dataclass(frozen=True, slots=True)
class Drive:
    """A VM drive as ``query-block`` reports it."""

    key: str                 # backend:NAME in the graph
    device: str              # what media commands take as ``id`` (qdev id or QOM path)
    qdev: str
    removable: bool
    tray_open: bool | None
    locked: bool
    medium: str | None       # the inserted image's file name (None: empty)
    read_only: bool = False

    @property
    def label(self) -> str:
        return readable_device(self.qdev or self.device)

    def state_text(self) -> str:
        """"tray open · empty", "tray closed · cd.iso (read-only)"…"""
        tray = {True: "tray open", False: "tray closed", None: "no tray"}[self.tray_open]
        medium = "empty" if self.medium is None else os.path.basename(self.medium) + (
            " (read-only)" if self.read_only else "")
        return f"{tray} · {medium}" + (" · locked" if self.locked else "")


def drives_from(reply: Any) -> dict[str, Drive]:
    """The drives of a ``query-block`` reply, by the graph key of their backend."""
    out: dict[str, Drive] = {}
    for entry in reply or []:
        if not isinstance(entry, Mapping):
            continue
        device, qdev = str(entry.get("device", "")), str(entry.get("qdev", ""))
        name = device or qdev
        if not name:
            continue
        inserted = entry.get("inserted")
        medium = None
        ro = False
        if isinstance(inserted, Mapping):
            medium = str(inserted.get("file", "")) or None
            ro = bool(inserted.get("ro", False))
        tray = entry.get("tray_open")
        out[f"backend:{name}"] = Drive(
            key=f"backend:{name}", device=qdev or device, qdev=qdev,
            removable=bool(entry.get("removable", False)),
            tray_open=bool(tray) if tray is not None else None,
            locked=bool(entry.get("locked", False)), medium=medium, read_only=ro)
    return out


class MediaTracker(QObject):
    """The drives of the current session (see the module docstring)."""

    changed = Signal()

    def __init__(self, marks: CanvasMarks, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.marks = marks
        self.drives: dict[str, Drive] = {}
        self.exports: dict[str, str] = {}      # backend key -> export id
        self._bridge: SessionBridge | None = None
        self._backends: frozenset[str] = frozenset()
        self._task: asyncio.Task[Any] | None = None
        self._again = False

    def attach(self, bridge: SessionBridge) -> None:
        """Follow a new session (its drives replace the old ones)."""
        self._bridge = bridge
        self._backends = frozenset()
        self.drives = {}
        self.exports = {}
        self.marks.clear_source(_SOURCE)
        bridge.graphChanged.connect(self.graph_changed)
        bridge.qmpEvent.connect(self._event)
        snapshot = bridge.session.snapshot
        if snapshot is not None:
            self.graph_changed(snapshot)
        self.changed.emit()

    def detach(self) -> None:
        self._bridge = None
        self.drives = {}
        self.exports = {}
        self.marks.clear_source(_SOURCE)
        self.changed.emit()

    def graph_changed(self, snapshot: GraphSnapshot) -> None:
        backends = frozenset(k for k, n in snapshot.nodes.items() if n.kind == BLOCK_BACKEND)
        if backends != self._backends:
            self._backends = backends
            self.refresh()

    def _event(self, event: Mapping[str, Any]) -> None:
        if event.get("event") in ("DEVICE_TRAY_MOVED", "DEVICE_DELETED",
                                  "BLOCK_EXPORT_DELETED"):
            self.refresh()

    def refresh(self) -> None:
        """Read the drives again soon (one read at a time; one more if asked meanwhile)."""
        bridge = self._bridge
        if bridge is None:
            return
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = bridge.spawn(self._read(bridge), "read the drives")

    async def _read(self, bridge: SessionBridge) -> None:
        while True:
            self._again = False
            session = bridge.session
            caps = session.capabilities
            if not session.connected or caps is None:
                return
            drives: dict[str, Drive] = {}
            exports: dict[str, str] = {}
            with contextlib.suppress(SessionError), background_traffic():
                if caps.has("query-block"):
                    drives = drives_from(await session.execute("query-block"))
                if caps.has("query-block-exports"):
                    for exp in await session.execute("query-block-exports") or []:
                        key = anonymous_backend_key(str(exp.get("node-name", "")))
                        exports[key] = str(exp.get("id"))
            if bridge is not self._bridge:
                return
            self.drives, self.exports = drives, exports
            self._show()
            if not self._again:
                return

    def _show(self) -> None:
        self.marks.clear_source(_SOURCE)
        for key, drive in self.drives.items():
            if drive.removable:
                color = "#1f9d55" if drive.medium and not drive.tray_open else "#6b7280"
                self.marks.set_mark(key, _SOURCE, Mark(drive.state_text(), color,
                                                       tooltip=f"{drive.label}: "
                                                       f"{drive.state_text()}"
                                                       + (f"\n{drive.medium}"
                                                          if drive.medium else "")))
        self.changed.emit()

    def drive(self, key: str) -> Drive | None:
        return self.drives.get(key)

    def labels(self) -> dict[str, str]:
        """Readable names of backends: drives by device, exports by id."""
        out = {k: f"{d.label} (VM drive)" for k, d in self.drives.items()}
        out.update({k: f"export {e}" for k, e in self.exports.items()})
        return out
