"""The C allocator's settings for the server process (glibc's malloc).

A huge message is read on the event loop in pieces of 64 KiB, put together on the
worker thread into one string of up to 64 MiB, and freed when answered. With glibc's
defaults each such string is a fresh mapping (its 16,000 pages faulted in on first
touch and unmapped when freed), and the pieces' frees shrink the heap again and again;
both are kernel work done under the process's memory-map lock or the heap's lock,
while the thread doing it may be preempted on a busy machine. The event loop, which
allocates and frees for every read and reply, then waits for that lock holding the
interpreter's — every client waits with it.

So the server's threads share one heap (:data:`ARENAS`), take every allocation from
it (no mapping of its own, however large), and keep up to :data:`KEEP_FREE` of freed
memory at its top for the next messages instead of giving it back at once: after the
first huge message, the next ones reuse pages already mapped. The memory bound is
unchanged (what is kept is what the largest messages needed), and memory beyond
:data:`KEEP_FREE` still goes back to the kernel.

Elsewhere than glibc this does nothing.
"""

from __future__ import annotations

import ctypes
import ctypes.util

#: free memory the heap keeps at its top before giving it back (mallopt M_TRIM_THRESHOLD)
KEEP_FREE = 128 << 20
#: heaps ("arenas") the process's threads share (mallopt M_ARENA_MAX)
ARENAS = 1

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_M_ARENA_MAX = -8


def tune_for_server() -> bool:
    """Apply the settings above; False where the C library has no ``mallopt``."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    settings = ((_M_TRIM_THRESHOLD, KEEP_FREE), (_M_MMAP_MAX, 0), (_M_ARENA_MAX, ARENAS))
    return all([mallopt(option, value) for option, value in settings])
