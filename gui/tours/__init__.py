"""Guided tours of QMP block operations: the tour files' model, the runner, their windows.

Qt-free: :mod:`~gui.tours.model` (tours as data, read from ``resources/tours``) and
:mod:`~gui.tours.runner` (a tour run step by step against a script peer). With Qt:
:mod:`~gui.tours.panel` (the dock that steps through a tour), :mod:`~gui.tours.window`
(``blockgraph tour NAME``) and :mod:`~gui.tours.teaching` (the editor's menu entries for
tours, the offline window and the live-vs-disk comparison). Importing the package loads
nothing.
"""
