"""``blockgraph qemu``: the bundled engine started from a QEMU command line.

:mod:`.opts` reads QEMU's option syntaxes, :mod:`.cmdline` sorts a command line into
what the engine models, what it accepts without effect and what it does not model,
:mod:`.drive` turns ``-drive`` into nodes with QEMU's legacy rules, :mod:`.build`
applies a command line to an :class:`engine.qmp.Engine`, :mod:`.hmp` answers the
human monitor commands the tests use, and :mod:`.cli` is the launcher itself.
"""
