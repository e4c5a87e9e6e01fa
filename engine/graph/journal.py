"""All-or-nothing changes: the journal behind :meth:`BlockGraph.transaction`.

Inside a transaction every change made through the graph's methods records its
inverse; an exception replays the inverses newest first, and actions that must wait
for success (closing a replaced file, adopting a reopened descriptor) run only when
the outermost transaction commits. The transaction also holds the graph's I/O lock,
so no job request runs through a half-changed graph.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from engine.graph.io.context import IOContext
from engine.graph.names import AutoNamer


class Journaled:
    """The transaction machinery of a graph (see the module docstring)."""

    namer: AutoNamer
    io: IOContext

    def __init__(self) -> None:
        self._journal: list[Callable[[], None]] | None = None
        self._on_commit: list[Callable[[], None]] = []
        #: read-only states before the current transaction changed them
        self.ro_before: dict[str, bool] = {}

    @contextlib.contextmanager
    def transaction(self, *, restore_names: bool = True) -> Iterator[None]:
        """All changes inside succeed together or are undone together.

        Nested use joins the outer transaction. ``restore_names``: also roll back the
        auto-name counter (QEMU keeps it advanced after a failed ``blockdev-add``).
        """
        if self._journal is not None:
            yield
            return
        with self.io.lock:
            self._journal, self._on_commit, self.ro_before = [], [], {}
            saved = self.namer.save()
            try:
                yield
            except BaseException:
                journal, self._journal = self._journal, None
                for undo in reversed(journal):
                    undo()
                if restore_names:
                    self.namer.restore(saved)
                self._on_commit = []
                raise
            else:
                self._journal = None
                on_commit, self._on_commit = self._on_commit, []
                for action in on_commit:
                    action()
            finally:
                self._journal = None
                self.ro_before = {}

    @property
    def in_transaction(self) -> bool:
        return self._journal is not None

    def record(self, undo: Callable[[], None]) -> None:
        """Register the inverse of a change made outside the graph's own methods."""
        if self._journal is not None:
            self._journal.append(undo)

    def on_commit(self, action: Callable[[], None]) -> None:
        """Run ``action`` when the current transaction commits (now, if there is none)."""
        if self._journal is None:
            action()
        else:
            self._on_commit.append(action)

    def set(self, obj: Any, attr: str, value: Any) -> None:
        """Set an attribute, journaled."""
        old = getattr(obj, attr)
        if old is value or old == value:
            return
        setattr(obj, attr, value)
        self.record(lambda: setattr(obj, attr, old))
