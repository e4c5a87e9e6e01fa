"""Image files on this machine opened on a peer: the intent that opens one, the demo chains.

:mod:`~gui.images.opening` turns a path into an :class:`~gui.planner.intents.AddImage`
(its format read from the header, a node name made from the file name);
:mod:`~gui.images.demo` writes the demo images and opens them through the planner and
the executor, as any other edit. Qt-free.
"""
