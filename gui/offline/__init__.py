"""Image files on disk without QEMU, in a window: chains, broken links, fixes, offline edits.

:mod:`~gui.offline.window` is the window (``blockgraph offline IMAGE…``, or the editor's
File → Inspect images on disk…); the chains, problems and edits themselves are the
engine's (:mod:`engine.offline`).
"""
