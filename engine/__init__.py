"""blockgraph's bundled engine: a pure-Python model of QEMU's block layer.

Layers (bottom up): ``engine.formats`` reads and writes qcow2/raw image files;
``engine.graph`` holds the block graph and the rules QEMU applies to it; the
command layer answers QMP-shaped ``execute(name, arguments)`` calls; the server
speaks QMP on a socket. Nothing here imports Qt.
"""

__version__ = "0.1.0"
