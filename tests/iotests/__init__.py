"""QEMU's own block tests (tests/qemu-iotests) run against real QEMU and blockgraph.

The tests are GPL code from Debian's source package of the installed QEMU; they are
fetched into the user's cache directory (:mod:`tests.iotests.qemu_source`) and run
from there, never copied into the project.
"""
