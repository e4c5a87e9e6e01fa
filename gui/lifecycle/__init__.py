"""The life of a window's process: whether it can start, how it is asked to stop, how it ends.

Shared by every command that opens a window (the editor, the tour window, the offline
window): :mod:`~gui.lifecycle.display` says whether a screen is there to open one on,
:mod:`~gui.lifecycle.signals` turns Ctrl+C and SIGTERM into a window close,
:mod:`~gui.lifecycle.shutdown` quietens what is left when Qt ends its loop by itself, and
:mod:`~gui.lifecycle.event_loop` runs a window on qasync's loop until it has closed.
"""
