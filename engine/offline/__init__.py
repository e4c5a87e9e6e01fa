"""Offline chains: image files edited directly, with no QEMU and no engine process.

This is what ``qemu-img`` does to a backing chain, done with :mod:`engine.formats`:

* :func:`inspect_chain` — the layers of a chain, which layer holds which data, and a
  broken link (missing backing file, wrong backing format, loop) with the fixes that
  apply to it (:mod:`engine.offline.inspect`);
* :func:`rebase` — re-point a backing link; *safe* mode keeps the guest content (copies
  into the overlay whatever differs between the old and the new backing, like
  ``qemu-img rebase -b NEW``), *unsafe* mode only rewrites the header string (like
  ``qemu-img rebase -u``); :func:`flatten` (like ``qemu-img convert``) and
  :func:`stream_into_top` (``qemu-img rebase -b ''``); :func:`commit` (like
  ``qemu-img commit``) — all in :mod:`engine.offline.edit`, all with a progress callback,
  and each returning the equivalent ``qemu-img`` command line;
* :func:`offline_snapshot` — a :class:`~engine.graph.snapshot.GraphSnapshot` of image
  files, so the editor's canvas draws a chain on disk like a live graph;
* :func:`compare_with_disk` — a live graph against the headers on disk.
"""

from engine.offline.compare import Difference, compare_with_disk
from engine.offline.edit import (
    EditResult,
    OfflineEditError,
    apply_fix,
    commit,
    flatten,
    rebase,
    stream_into_top,
)
from engine.offline.inspect import ChainReport, Fix, Layer, LinkProblem, inspect_chain
from engine.offline.snapshot import offline_snapshot

__all__ = [
    "ChainReport",
    "Difference",
    "EditResult",
    "Fix",
    "Layer",
    "LinkProblem",
    "OfflineEditError",
    "apply_fix",
    "commit",
    "compare_with_disk",
    "flatten",
    "inspect_chain",
    "offline_snapshot",
    "rebase",
    "stream_into_top",
]
