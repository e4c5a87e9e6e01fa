"""Pausing Python's cyclic garbage collector around bulk work.

Opening a long backing chain or building the scene of a big graph allocates tens of
thousands of objects that all survive; meanwhile the collector would walk every
live object again and again (a fifth or more of such work here). Reference counting
still frees whatever dies; the collector resumes, as usual, once the work is done.
Nested or concurrent pauses are fine: only the outermost one that disabled the
collector enables it again.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Run the ``with`` block without cyclic garbage collection."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()
