"""What the user asks of the graph, made into intents: menu actions, gestures, drops.

:class:`EditingController` reads the selection and the graph on screen, asks what it
must (an overlay's file name, how far to stream, which base to commit into, whether to
go ahead), and hands the resulting intent to the :class:`~gui.window.edits.EditController`,
which plans, previews and runs it. It also answers the canvas while a link is dragged:
the engine's rules, through the planner's preflight, on the graph on screen.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QPointF, Signal
from PySide6.QtGui import QGuiApplication

from gui.executor import PlanExecutor
from gui.images.opening import add_image, free_node_name
from gui.planner import check_intent
from gui.planner.intents import (
    ChangeMedium,
    CloseTray,
    Commit,
    Delete,
    DetachBacking,
    ExternalSnapshot,
    OpenTray,
    SetBacking,
    SetReadOnly,
    Stream,
)
from gui.planner.options import current_options
from gui.session import SessionError
from gui.views.canvas import GraphCanvas
from gui.views.scene import GraphScene
from gui.widgets.dialogs import Prompter
from gui.window.batch import open_images_plan
from gui.window.canvas import STAGE_MODIFIER
from gui.window.connection import WindowConnection
from gui.window.edits import EditController, reasons_text
from gui.window.media import MediaTracker
from gui.window.staging import StagingController


class EditingController(QObject):
    """The window's edit actions (see the module docstring)."""

    #: a line for the status bar
    message = Signal(str)
    #: an error line for the status bar
    error = Signal(str)

    def __init__(self, scene: GraphScene, view: GraphCanvas, connection: WindowConnection,
                 edits: EditController, prompter: Prompter,
                 parent: QObject | None = None, *, staging: StagingController | None = None,
                 media: MediaTracker | None = None) -> None:
        super().__init__(parent)
        self.scene = scene
        self.view = view
        self.connection = connection
        self.edits = edits
        self.prompter = prompter
        self.staging = staging
        self.media = media
        self._pending_positions: dict[str, QPointF] = {}

    # -- the graph on screen ------------------------------------------------------------
    def selected_node(self) -> str | None:
        """The selected block node (not a backend or job), if exactly that."""
        key = self.view.selected_key()
        snap = self.scene.snapshot
        if key is None or snap is None or key not in snap.nodes \
                or snap.nodes[key].kind != "block-node":
            return None
        return key

    def chain_below(self, key: str) -> list[str]:
        snap = self.scene.snapshot
        out: list[str] = []
        cur = snap.backing(key) if snap else None
        while cur is not None and cur not in out and snap is not None:
            out.append(cur)
            cur = snap.backing(cur)
        return out

    def image_path(self, key: str) -> str:
        """The host file behind ``key`` (through its ``file`` child if its own name is json:)."""
        snap = self.scene.snapshot
        seen = 0
        while snap is not None and key in snap.nodes and seen < 8:
            fn = snap.nodes[key].filename
            if fn and not fn.startswith("json:"):
                return fn
            child = snap.child(key, "file")
            if child is None:
                return ""
            key, seen = child, seen + 1
        return ""

    def take_position(self, key: str) -> QPointF | None:
        """Where the user asked the node ``key`` to be opened (Open image here…), once."""
        return self._pending_positions.pop(key, None)

    # -- requests -----------------------------------------------------------------------
    def validate_drop(self, parent: str, target: str | None) -> tuple[bool, str]:
        """Preflight a re-point while dragging: the engine's rules on the graph on screen."""
        session = self.connection.session
        if session is None or not session.connected:
            return False, "not connected"
        staging = self._staging_now()
        try:
            # while staging, a drop is answered for the graph the staged edits leave
            ctx = (self.staging.staged_context() if staging and self.staging is not None
                   else PlanExecutor(session).context())
        except SessionError as exc:
            return False, str(exc)
        intent = SetBacking(parent, target) if target else DetachBacking(parent)
        reasons = check_intent(ctx, intent)
        if reasons:
            return False, reasons_text(reasons)
        verb = "stage" if staging else "release"
        return True, (f"{verb} to back {parent} by {target}" if target
                      else f"{verb} to detach {parent}")

    def _staging_now(self) -> bool:
        """Whether a drop now would be staged: the mode, or the modifier held."""
        if self.staging is None:
            return False
        held = QGuiApplication.queryKeyboardModifiers() & STAGE_MODIFIER
        return self.staging.enabled or bool(held)

    def request(self, intent: Any, *, destructive: bool = False, action: str = "Execute",
                dropped: bool = False) -> None:
        """Run ``intent`` (after its review), or stage it: in staging mode, or when it
        comes from a drop made with the staging modifier held."""
        if self.connection.bridge is None:
            self.error.emit("not connected")
            return
        modifier = dropped and bool(getattr(self.view, "staged_drop", lambda: False)())
        if self.staging is not None and self.staging.wants(intent, modifier):
            self.staging.add(intent)
            return
        self.edits.request(intent, destructive=destructive, action=action)

    def rebase(self, parent: str, child: str) -> None:
        self.request(SetBacking(parent, child), dropped=True)

    def drop_detach(self, parent: str) -> None:
        """A backing link dropped on empty canvas: detach it (reviewed, or staged)."""
        self.request(DetachBacking(parent), destructive=True, action="Detach", dropped=True)

    def confirm_detach(self, parent: str) -> None:
        """Detach ``parent``'s backing link; the edit's review asks before it runs."""
        self.request(DetachBacking(parent), destructive=True, action="Detach")

    # -- the node actions ---------------------------------------------------------------
    def snapshot(self, key: str | None = None) -> None:
        key = key or self.selected_node()
        snap = self.scene.snapshot
        if key is None or snap is None:
            return
        node = snap.nodes[key]
        base = self.image_path(key)
        directory = os.path.dirname(base) if base else str(Path.cwd())
        stem = (node.name.lstrip("#") or "node")
        n = 1
        while f"{stem}-snap{n}" in snap.nodes or os.path.exists(
                os.path.join(directory, f"{stem}-snap{n}.qcow2")):
            n += 1
        suggested = os.path.join(directory, f"{stem}-snap{n}.qcow2")
        filename = self.prompter.ask_text("Snapshot", f"New overlay file on top of {key}:",
                                          suggested)
        if not filename:
            return
        overlay = Path(filename).stem
        overlay = "".join(c if c.isalnum() or c in "-_." else "-" for c in overlay)[:31]
        if not overlay[:1].isalpha():
            overlay = f"snap-{overlay}"[:31]
        self.request(ExternalSnapshot(key, overlay, filename))

    def stream(self, key: str | None = None) -> None:
        key = key or self.selected_node()
        if key is None:
            return
        below = self.chain_below(key)
        if not below:
            self.error.emit(f"{key} has no backing chain to stream from")
            return
        everything = "(everything: make it standalone)"
        answer = self.prompter.choose_job(
            "Stream into this node",
            f"Copy data into {key} from the chain below, down to (not including) the base:",
            [everything, *below[1:]], 0)
        if answer is None:
            return
        base = None if answer.choice == everything else answer.choice
        self.request(Stream(key, base, speed=answer.speed))

    def commit(self, key: str | None = None) -> None:
        key = key or self.selected_node()
        if key is None:
            return
        below = self.chain_below(key)
        if not below:
            self.error.emit(f"{key} has no backing chain to commit into")
            return
        answer = self.prompter.choose_job("Commit down to…",
                                          f"Write {key}'s data (and the layers between) "
                                          "into:", below, 0)
        if answer is None:
            return
        self.request(Commit(key, answer.choice, speed=answer.speed))

    def delete(self, key: str | None = None) -> None:
        key = key or self.selected_node()
        if key is None:
            return
        # one dialog: the review names what goes (and that the image file stays)
        self.request(Delete(key), destructive=True, action="Delete")

    def toggle_read_only(self, key: str | None = None) -> None:
        key = key or self.selected_node()
        snap = self.scene.snapshot
        if key is None or snap is None:
            return
        self.request(SetReadOnly(key, not snap.nodes[key].read_only))

    def detach(self, key: str | None = None) -> None:
        key = key or self.selected_node()
        if key is not None:
            self.confirm_detach(key)

    def copy_as_qmp_text(self, key: str) -> str:
        snap = self.scene.snapshot
        assert snap is not None
        session = self.connection.session
        known = session.added_options if session is not None else {}
        return json.dumps({"execute": "blockdev-add",
                           "arguments": current_options(snap, key, known)}, indent=2)

    def copy_qmp(self, key: str | None = None) -> None:
        key = key or self.selected_node()
        if key is None:
            return
        QGuiApplication.clipboard().setText(self.copy_as_qmp_text(key))
        self.message.emit(f"copied blockdev-add for {key}")

    # -- images -------------------------------------------------------------------------
    def ask_open_image(self, at: QPointF | None = None) -> None:
        path = self.prompter.open_file("Open image")
        if path:
            self.open_image(path, at)

    def open_images(self, paths: list[str]) -> None:
        """Open several images (the command line's) as one edit: one review, in order."""
        snap = self.scene.snapshot
        taken: set[str] = set(snap.nodes) if snap is not None else set()
        intents = []
        for path in paths:
            name = free_node_name(path, taken)
            try:
                intents.append(add_image(path, name))
            except Exception as exc:  # ImageError and OSError: say what is wrong
                self.error.emit(str(exc))
                self.prompter.error("Cannot open image", str(exc))
                continue
            taken.add(name)
        if not intents:
            return
        if len(intents) == 1:
            self.request(intents[0])
            return
        try:
            ctx = PlanExecutor(self._session()).context()
        except SessionError as exc:
            self.error.emit(str(exc))
            return
        self.edits.request_plan(open_images_plan(ctx, intents),
                                lambda again: open_images_plan(again, intents))

    def _session(self) -> Any:
        session = self.connection.session
        if session is None:
            raise SessionError("not connected")
        return session

    def open_image(self, path: str, at: QPointF | None = None) -> None:
        """Open ``path`` (with its chain) as a new node, placed at ``at`` if given."""
        snap = self.scene.snapshot
        name = free_node_name(path, snap.nodes if snap is not None else ())
        try:
            intent = add_image(path, name)
        except Exception as exc:  # ImageError and OSError: say what is wrong with the file
            self.error.emit(str(exc))
            self.prompter.error("Cannot open image", str(exc))
            return
        if at is not None:
            self._pending_positions[name] = at
        self.request(intent)

    # -- undo, jobs ---------------------------------------------------------------------
    def undo(self) -> None:
        if self.connection.is_connected and self.edits.undo_stack.canUndo():
            self.edits.undo()

    def redo(self) -> None:
        if self.connection.is_connected and self.edits.undo_stack.canRedo():
            self.edits.redo()

    # -- removable media ----------------------------------------------------------------
    def media_request(self, key: str, what: str) -> None:
        """A media action on the drive ``key``: open, close, eject, force-eject, insert."""
        drive = self.media.drive(key) if self.media is not None else None
        if drive is None:
            self.error.emit(f"{key} is not a drive with removable media")
            return
        device = drive.device
        if what == "open":
            self.request(OpenTray(device))
        elif what == "close":
            self.request(CloseTray(device))
        elif what in ("eject", "force-eject"):
            self.request(ChangeMedium(device, None, force=what == "force-eject"),
                         action="Eject")
        else:
            choice = self.prompter.ask_medium(drive.label, drive.medium)
            if choice is None:
                return
            self.request(ChangeMedium(device, choice.filename, choice.format,
                                      choice.read_only_mode))

    def job_verb(self, job_id: str, verb: str) -> None:
        """Pause/resume/cancel/complete a job (job verbs, not graph edits)."""
        session = self.connection.session
        if session is None:
            return
        self.connection.spawn(session.execute(f"job-{verb}", {"id": job_id}),
                              f"{verb} job {job_id}")
