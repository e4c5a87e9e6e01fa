"""Direct I/O for a job's bulk data: written to the disk, not through the page cache.

A job copying hundreds of MiB writes each byte once and reads none of it back. Through
the page cache every byte first costs a fresh page (on a virtual machine whose idle
memory the host has taken back, that page fault is most of the cost, and it varies
tenfold from run to run), then a writeback at the job's flush. With ``O_DIRECT`` the
buffer goes straight to the device at disk speed, the page cache keeps what the
machine was using, and the flush only has the device cache left to empty — what
``qemu-img convert -t none`` and ``cache.direct=on`` do in QEMU.

Only whole aligned pieces qualify (offset, length and buffer address on
:data:`ALIGN`); everything else, and every file system that refuses ``O_DIRECT``,
takes the ordinary path. Writes still go through :mod:`engine.formats.fileio`, so
injected faults apply to them too.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Sequence

from engine.formats import fileio
from engine.formats.hostfile import HostFile
from engine.formats.store import ByteStore

#: alignment asked of offsets, lengths and buffers (a page: safe for 512 B and 4 KiB disks)
ALIGN = 4096
IOV_MAX = 1024


def _address(buf: memoryview) -> int | None:
    if buf.readonly or not buf.c_contiguous:
        return None
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))


def aligned(offset: int, bufs: Sequence[memoryview]) -> bool:
    """Whether ``bufs`` written at ``offset`` meet O_DIRECT's alignment rules."""
    if offset % ALIGN:
        return False
    for buf in bufs:
        if len(buf) % ALIGN:
            return False
        address = _address(buf)
        if address is None or address % ALIGN:
            return False
    return True


class DirectWriter:
    """A second, ``O_DIRECT`` descriptor on an open image file, opened on first use.

    Stores that are not host files (a node above the file) take the ordinary path.
    """

    def __init__(self, store: ByteStore) -> None:
        self._store = store
        self._fd: int | None = None
        self.unsupported = store.fd is None

    def writev(self, offset: int, bufs: list[memoryview]) -> bool:
        """Write ``bufs`` at ``offset`` directly; False when it cannot (use the page cache).

        An I/O error other than a refusal of direct I/O itself is raised as OSError.
        """
        if self.unsupported or not aligned(offset, bufs):
            return False
        if self._fd is None:
            try:
                # the same open file, whatever its path names now
                self._fd = self._store.direct_fd()
            except OSError:
                self.unsupported = True
                return False
        if isinstance(self._store, HostFile):
            self._store.unsynced = True     # the file's next sync makes these durable
        for i in range(0, len(bufs), IOV_MAX):
            part = bufs[i:i + IOV_MAX]
            total = sum(len(b) for b in part)
            try:
                n = fileio.pwritev(self._fd, part, offset)
            except OSError as exc:
                if exc.errno == errno.EINVAL and i == 0:
                    self.unsupported = True     # the file system wants other alignment
                    return False
                raise
            if n < total:       # rare (a signal, a nearly full disk): finish it buffered
                rest = _after(part, n)
                done = n
                while rest:
                    done += self._store.pwritev(rest, offset + done)
                    rest = _after(part, done)
            offset += total
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _after(bufs: list[memoryview], n: int) -> list[memoryview]:
    """What is left of ``bufs`` once their first ``n`` bytes are written."""
    out = []
    for buf in bufs:
        if n >= len(buf):
            n -= len(buf)
            continue
        out.append(buf[n:])
        n = 0
    return out
