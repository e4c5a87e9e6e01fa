"""What every opened image offers, whatever its format.

An :class:`Image` is one layer: its own bytes and its own allocation, interpreted
over a byte store (:mod:`engine.formats.store`: a host file, or any node that presents
bytes). It never opens its backing file; whoever holds the chain (the engine's graph,
:mod:`engine.formats.chain` for the tools) reads the guest view through
:meth:`Image.readinto` and its ``backing`` hook.
"""

from __future__ import annotations

import ctypes
import functools
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.formats.errors import ImageIOError, ImageReadOnlyError, RequestError
from engine.formats.store import ByteStore

#: state names used by :class:`Extent` (the contract's vocabulary)
DATA = "data"
ZERO = "zero"
UNALLOCATED = "unallocated"

#: ``backing(guest_offset, view)`` fills ``view`` with the backing layer's bytes
BackingReader = Callable[[int, memoryview], None]


@dataclass(frozen=True, slots=True)
class Extent:
    """A guest range with one allocation state in one layer.

    ``offset`` is the host offset of the first byte when the range is backed by
    host data (or by a preallocated zero cluster), else None; ``compressed`` marks
    compressed qcow2 clusters (no host offset).
    """

    start: int
    length: int
    state: str
    offset: int | None = None
    compressed: bool = False

    @property
    def end(self) -> int:
        return self.start + self.length


def locked(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run an Image method holding the image's lock, once a data write in flight (see
    :meth:`Image.settle_inflight`) has landed: the method may read or change its data."""
    @functools.wraps(method)
    def wrapper(self: Image, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            if self.inflight is not None:
                self.settle_inflight()
            return method(self, *args, **kwargs)
    return wrapper


def locked_metadata(method: Callable[..., Any]) -> Callable[..., Any]:
    """Run an Image method that reads only in-memory metadata holding the image's lock,
    without waiting for a data write in flight: the tables already map what it writes
    (a job that queries the allocation of the layer it writes to goes on reading its
    next chunk meanwhile)."""
    @functools.wraps(method)
    def wrapper(self: Image, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            return method(self, *args, **kwargs)
    return wrapper


def zero_fill(view: memoryview) -> None:
    """Overwrite a writable view with zeros.

    With ``memset`` in place: ``bytes(n)`` first would fault in n fresh bytes of zero
    pages and copy them (a chain read of a few MiB past a short backing spent more time
    here than reading its data)."""
    n = view.nbytes
    if not n:
        return
    try:
        target = ctypes.c_char.from_buffer(view)
    except (TypeError, ValueError):     # read-only or not contiguous: Python copies
        view[:] = bytes(len(view))
        return
    ctypes.memset(ctypes.addressof(target), 0, n)
    del target      # gives the buffer export back at once


def file_error(exc: OSError, path: str, what: str, offset: int | None = None) -> ImageIOError:
    """Turn an OSError into an ImageIOError with QEMU-like wording."""
    reason = exc.strerror or str(exc)
    return ImageIOError(f"{what}: {reason}", path, offset, errno=exc.errno)


class Image:
    """One opened image file (abstract). Subclasses: RawImage, Qcow2Image."""

    format: str = ""
    path: str
    virtual_size: int
    cluster_size: int | None = None
    backing_file: str | None = None
    backing_format: str | None = None
    writable: bool = False
    #: where copy-on-write and chain reads find what lies below this layer; open_chain
    #: sets it, otherwise a writable qcow2 opens its backing chain itself when needed
    backing_reader: BackingReader | None = None
    #: a write whose data is still being written by another thread (qcow2 write-back
    #: mode, :meth:`Qcow2Image.write_begin`); every locked method but metadata reads
    #: waits for it first
    inflight: Any = None
    #: whether ``(offset, length)`` below this layer reads as zeros by allocation alone
    #: (QEMU's block status of the backing chain), set beside ``backing_reader``; with
    #: a reader but no answer, a writer must assume data is there
    backing_zero: Callable[[int, int], bool] | None = None

    def __init__(self, store: ByteStore, writable: bool, *, owns_store: bool = True) -> None:
        self.store = store
        self.path = store.name
        self.writable = writable
        #: the image closes its store (a file it opened itself; not a graph node's)
        self.owns_store = owns_store
        #: called once the image is closed (e.g. to close a backing chain it opened)
        self.closers: list[Callable[[], None]] = []
        self.closed = False
        #: one request at a time per image: a write updates cached tables before it
        #: publishes them on disk, and job threads may read while another writes
        self.lock = threading.RLock()

    def settle_inflight(self) -> None:
        """Wait for the data write in flight and take it in (nothing to do by default)."""
        self.inflight = None

    @property
    def fd(self) -> int | None:
        """The host descriptor under the image when it sits on a plain host file."""
        return self.store.fd

    # -- reading ---------------------------------------------------------------------------
    def read(self, offset: int, length: int) -> bytes:
        """This layer's bytes; unallocated and zero ranges read as zeros."""
        self.check_request(offset, length)
        buf = bytearray(length)
        self.readinto(offset, memoryview(buf), prezeroed=True)
        return bytes(buf)

    def readinto(self, offset: int, view: memoryview, backing: BackingReader | None = None,
                 *, prezeroed: bool = False) -> None:
        """Fill ``view`` with guest bytes from ``offset``.

        Ranges this layer does not define are passed to ``backing`` (or zeroed when
        it is None). ``prezeroed`` says the caller's buffer is already zero, which
        saves clearing zero ranges again.
        """
        raise NotImplementedError

    def block_status(self, offset: int, length: int) -> list[Extent]:
        """This layer's allocation for ``[offset, offset+length)``, merged into extents."""
        raise NotImplementedError

    # -- writing ---------------------------------------------------------------------------
    def write(self, offset: int, data: bytes | bytearray | memoryview) -> None:
        raise NotImplementedError

    def write_zeroes(self, offset: int, length: int) -> None:
        raise NotImplementedError

    def set_backing(self, backing_file: str | None, backing_format: str | None) -> None:
        raise NotImplementedError

    def begin_write_back(self) -> None:
        """Defer metadata updates until the next flush (formats with metadata override)."""

    def end_write_back(self) -> None:
        """Publish deferred metadata and stop deferring; never raises."""

    def flush(self) -> None:
        """Make everything written so far durable."""
        if self.writable and not self.closed:
            try:
                self.store.sync()
            except OSError as exc:
                raise file_error(exc, self.path, "Could not flush") from exc

    @locked
    def close(self) -> None:
        if self.closed:
            return
        try:
            self.flush()
        finally:
            self.closed = True
            if self.owns_store:
                self.store.close()
            for closer in self.closers:
                closer()

    @locked
    def rebind(self, store: ByteStore) -> None:
        """Read and write through another store from now on (a node's new ``file``
        child); whoever changes the child flushes the image first."""
        if store is self.store:
            return
        self.store = store
        self.path = store.name

    @locked
    def set_writable(self, writable: bool) -> None:
        """Reopen read-write or read-only over the same store (already reopened)."""
        if writable == self.writable:
            return
        if not writable:
            self.flush()
        self.writable = writable

    def resize(self, size: int) -> None:
        """Change the virtual size (``block_resize``, a commit into a smaller base)."""
        raise ImageIOError("Image format driver does not support resize", self.path,
                           errno=95)

    def __enter__(self) -> Image:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- description -----------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """``qemu-img info --output=json`` fields for this image alone."""
        raise NotImplementedError

    @property
    def dirty(self) -> bool:
        """Refcounts may be stale (qcow2 dirty bit)."""
        return False

    @property
    def corrupt(self) -> bool:
        """The image is marked corrupt (qcow2): it is only ever opened read-only."""
        return False

    @property
    def incompatible_features(self) -> list[str]:
        """Names of the incompatible feature bits set in the header."""
        return []

    @property
    def snapshot_count(self) -> int:
        return 0

    def actual_size(self) -> int:
        """Bytes allocated on the host for the file (what qemu-img calls disk size)."""
        try:
            return self.store.allocated()
        except OSError as exc:
            raise file_error(exc, self.path, "Could not stat") from exc

    def file_size(self) -> int:
        try:
            return self.store.size()
        except OSError as exc:
            raise file_error(exc, self.path, "Could not stat") from exc

    # -- helpers ---------------------------------------------------------------------------
    def debug_event(self, name: str) -> None:
        """Announce ``name`` (one of QEMU's BlkdebugEvent names: ``l2_load``, ``l1_update``
        …) to the store below, as QEMU's format drivers do to their file child; a store
        that acts on them (a ``blkdebug`` node) has a ``debug_event`` method."""
        hook = getattr(self.store, "debug_event", None)
        if hook is not None:
            hook(name)

    def check_request(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0:
            raise RequestError(f"invalid request: offset {offset}, length {length}", self.path)
        if offset + length > self.virtual_size:
            raise RequestError(
                f"request [{offset}, {offset + length}) is beyond the end of the image "
                f"(virtual size {self.virtual_size})", self.path)

    def check_writable(self) -> None:
        if self.closed:
            raise ImageReadOnlyError("image is closed", self.path)
        if not self.writable:
            raise ImageReadOnlyError("image is opened read-only", self.path)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.path!r} {self.virtual_size} bytes>"
