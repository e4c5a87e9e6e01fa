"""The editor window (Qt): ``blockgraph`` with no subcommand.

:mod:`~gui.window.app` starts it on qasync's loop; :mod:`~gui.window.main_window` is the
window, put together from its parts (actions and menus, docks, the connection, the
editing controller — see there). Importing the package loads nothing.
"""
