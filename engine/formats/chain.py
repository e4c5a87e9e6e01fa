"""Backing chains on disk: opening them, reading the guest view, mapping allocation.

For the tools (``blockgraph info``, the offline view): the engine's graph holds its
chains as nodes instead. Backing names are resolved the way QEMU does it
(:mod:`engine.formats.backing_names`): absolute names as they are, relative ones
against the directory part of the overlay's path as it was given, ``file:`` names
as host files, and ``json:{…}`` names by the options they hold (a ``file`` child and,
when given, their own ``backing``).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

from engine.formats.backing_names import (
    JSON_PREFIX,
    BackingNameError,
    full_backing_filename,
    json_options,
    strip_file_protocol,
)
from engine.formats.errors import BackingChainError, ImageError, ImageIOError
from engine.formats.hostfile import open_host_file
from engine.formats.image import (
    DATA,
    UNALLOCATED,
    ZERO,
    BackingReader,
    Image,
    file_error,
    zero_fill,
)
from engine.formats.probe import open_image as open_one_image
from engine.formats.probe import open_image_on
from engine.formats.store import WindowStore
from engine.qdict import qdict_sorted

__all__ = ["ChainReader", "allocation_map", "backing_host_path", "close_chain",
           "full_backing_filename", "open_chain", "open_image"]

_UNSET: Any = object()


@dataclass
class _Link:
    """Where the next image of a chain is: a host path, a format, for ``json:`` names
    the backing they state themselves (a dict, None for none, or unset) and a raw
    window (``offset``/``size``) they describe."""

    path: str
    fmt: str | None
    backing: Any = _UNSET
    offset: int = 0
    size: int | None = None
    window: bool = False

    def window_name(self) -> str:
        """The window's filename as QEMU reports it (its full options)."""
        opts: dict[str, Any] = {"driver": "raw", "offset": self.offset,
                                "file": {"driver": "file", "filename": self.path}}
        if self.size is not None:
            opts["size"] = self.size
        return JSON_PREFIX + json.dumps(qdict_sorted(opts))


def _identity(path: str) -> tuple[int, int] | str:
    try:
        st = os.stat(path)
        return (st.st_dev, st.st_ino)
    except (OSError, ValueError):   # ValueError: a NUL byte; open_image reports it
        return path


def _link_from_options(opts: dict[str, Any], fmt: str | None, where: str) -> _Link:
    """A chain link from node options: a format over a ``file`` node, or a ``file``."""
    driver = fmt or opts.get("driver")
    if driver == "file":
        filename = opts.get("filename")
        if not isinstance(filename, str):
            raise BackingChainError(f"Backing file '{where}' names no file", where)
        return _Link(filename, None)
    child = opts.get("file")
    if not isinstance(child, dict) or child.get("driver") != "file" or \
            not isinstance(child.get("filename"), str):
        raise BackingChainError(f"Backing file '{where}' is not an image on a host file "
                                "(not supported here)", where)
    window = driver == "raw" and ("offset" in opts or "size" in opts)
    extra = [k for k in opts if k not in ("driver", "file", "backing", "node-name",
                                          "read-only", *(("offset", "size") if window else ()))]
    if extra:
        raise BackingChainError(f"Backing file '{where}' uses options not supported here: "
                                f"{', '.join(sorted(extra))}", where)
    return _Link(child["filename"], driver if driver in ("qcow2", "raw") else None,
                 opts.get("backing", _UNSET), int(opts.get("offset", 0)),
                 int(opts["size"]) if "size" in opts else None, window)


def backing_link(overlay: Image, name: str, fmt: str | None) -> _Link:
    """Where the backing file named ``name`` in ``overlay``'s header is."""
    if name.startswith(JSON_PREFIX):
        try:
            opts = json_options(name)
        except BackingNameError as exc:
            raise BackingChainError(f"Could not open backing file '{name}': {exc}",
                                    overlay.path) from exc
        return _link_from_options(opts, fmt, name)
    full = full_backing_filename(overlay.path, name)
    host = strip_file_protocol(full)
    if host is None:
        raise BackingChainError(f"Could not open backing file '{full}': Unknown protocol",
                                overlay.path)
    return _Link(host, fmt)


def backing_host_path(overlay_path: str, name: str) -> str:
    """The host file a header's backing name opens: a path joined as QEMU joins it,
    the file behind a ``file:`` name or a ``json:`` name's options; a name that names no
    host file comes back as it is (opening it then fails with a clear error)."""
    if name.startswith(JSON_PREFIX):
        try:
            return _link_from_options(json_options(name), None, name).path
        except (BackingNameError, BackingChainError):
            return name
    full = full_backing_filename(overlay_path, name)
    return strip_file_protocol(full) or full


def _next_link(img: Image, link: _Link) -> _Link | None:
    """The link below ``img``: the backing its json: options stated, else its header."""
    if link.backing is not _UNSET:
        if link.backing is None or link.backing == "":
            return None
        if isinstance(link.backing, dict):
            return _link_from_options(link.backing, None, img.path)
        raise BackingChainError(f"Backing reference '{link.backing}' cannot be opened "
                                "without a running engine", img.path)
    if not img.backing_file:
        return None
    return backing_link(img, img.backing_file, img.backing_format)


def open_chain(path: str | os.PathLike[str], fmt: str | None = None, *,
               writable: bool = False) -> list[Image]:
    """Open an image and every backing file below it; top first.

    Backing files are opened read-only with the format named in their overlay's
    header (probed when absent). A missing or unreadable backing file, or a file
    that appears twice (a loop), raises :class:`BackingChainError` naming it; every
    image opened so far is closed again.
    """
    images: list[Image] = []
    seen: dict[tuple[int, int] | str, str] = {}
    link: _Link | None = _Link(os.fspath(path), fmt)
    try:
        while link is not None:
            current = link.path
            if images:
                ident = _identity(current)
                if ident in seen:
                    raise BackingChainError(
                        f"Backing file '{current}' creates a loop: it is the same file as "
                        f"'{seen[ident]}'", images[-1].path)
            img = _open_layer(link, writable and not images, images)
            images.append(img)
            seen[_identity(current)] = current
            link = _next_link(img, link)
        for i in range(len(images) - 1):
            below = ChainReader(images[i + 1:])
            images[i].backing_reader = below.fill
            images[i].backing_zero = below.reads_zero
        return images
    except BaseException:
        for img in images:
            img.close()
        raise


def _open_layer(link: _Link, writable: bool, above: list[Image]) -> Image:
    path = link.path
    try:
        if link.window:
            return _open_window(link, writable)
        return open_one_image(path, link.fmt, writable=writable)
    except ImageIOError as exc:
        if not above:
            raise
        raise BackingChainError(f"Could not open backing file '{path}': {exc.message}",
                                above[-1].path) from exc
    except ImageError as exc:
        if not above:
            raise
        raise BackingChainError(f"Could not open backing file '{path}': {exc}",
                                above[-1].path) from exc


def _open_window(link: _Link, writable: bool) -> Image:
    """A raw window of a host file, as a ``json:`` backing name describes one."""
    try:
        store = open_host_file(link.path, writable=writable)
    except OSError as exc:
        raise file_error(exc, link.path, f"Could not open '{link.path}'") from exc
    return open_image_on(WindowStore(store, link.offset, link.size, link.window_name()),
                         "raw", writable, owns_store=True)


def open_image(path: str | os.PathLike[str], fmt: str | None = None,
               writable: bool = False) -> Image:
    """Open one image file; a writable one reads its backing chain (opened on first
    need) for the parts of clusters a write does not cover."""
    img = open_one_image(path, fmt, writable=writable)
    if writable and img.backing_file:
        lazy = _LazyBacking(img)
        img.backing_reader = lazy.fill
        img.backing_zero = lazy.reads_zero
    return img


class _LazyBacking:
    """The chain below an image, opened the first time a write needs it."""

    def __init__(self, img: Image) -> None:
        self.img = img
        self.reader: ChainReader | None = None

    def _open(self) -> ChainReader | None:
        if self.reader is None:
            link = _next_link(self.img, _Link(self.img.path, self.img.format))
            if link is None:
                return None
            chain = open_chain(link.path, link.fmt)
            self.img.closers.append(lambda: close_chain(chain))
            self.reader = ChainReader(chain)
        return self.reader

    def fill(self, offset: int, view: memoryview) -> None:
        reader = self._open()
        if reader is None:
            zero_fill(view)
        else:
            reader.fill(offset, view)

    def reads_zero(self, offset: int, length: int) -> bool:
        reader = self._open()
        return reader is None or reader.reads_zero(offset, length)


def close_chain(images: list[Image]) -> None:
    for img in images:
        img.close()


class ChainReader:
    """The guest view of a chain: each byte comes from the topmost layer defining it."""

    def __init__(self, images: list[Image]) -> None:
        if not images:
            raise ValueError("a chain needs at least one image")
        self.images = images

    @property
    def virtual_size(self) -> int:
        return self.images[0].virtual_size

    def read(self, offset: int, length: int) -> bytes:
        top = self.images[0]
        top.check_request(offset, length)
        buf = bytearray(length)
        self._read(0, offset, memoryview(buf), prezeroed=True)
        return bytes(buf)

    def readinto(self, offset: int, view: memoryview) -> None:
        self.images[0].check_request(offset, len(view))
        self._read(0, offset, view, prezeroed=False)

    def fill(self, offset: int, view: memoryview) -> None:
        """Like readinto, but past the chain's end reads zeros instead of failing.

        This is what an overlay sees below itself (its backing may be shorter).
        """
        self._read(0, offset, view, prezeroed=False)

    def reads_zero(self, offset: int, length: int) -> bool:
        """Whether the chain reads as zeros over the range by allocation alone (zero
        ranges, ranges no layer allocates, ranges past a layer's end), as QEMU's block
        status says; data is data whatever it holds."""
        work = [(0, offset, length)]
        while work:
            level, off, n = work.pop()
            if level >= len(self.images):
                continue
            img = self.images[level]
            inside = max(0, min(n, img.virtual_size - off))
            for ext in img.block_status(off, inside) if inside else ():
                if ext.state == UNALLOCATED:
                    work.append((level + 1, ext.start, ext.length))
                elif ext.state != ZERO:
                    return False
        return True

    def _read(self, depth: int, offset: int, view: memoryview, prezeroed: bool) -> None:
        """Each layer fills what it defines; what it leaves goes to the next one down
        (a work list, not recursion: chains may be thousands deep)."""
        work = [(depth, offset, view)]
        while work:
            level, off, v = work.pop()
            if level >= len(self.images):
                if not prezeroed:
                    zero_fill(v)
                continue
            img = self.images[level]
            inside = max(0, min(len(v), img.virtual_size - off))
            if inside < len(v) and not prezeroed:
                zero_fill(v[inside:])     # past this layer's end: zeros (QEMU does so)
            if inside:
                img.readinto(off, v[:inside], _defer_to(work, level + 1), prezeroed=prezeroed)


def _defer_to(work: list[tuple[int, int, memoryview]], level: int) -> BackingReader:
    """A backing reader that leaves each range to ``level`` on the work list."""
    def defer(offset: int, view: memoryview) -> None:
        work.append((level, offset, view))
    return defer


def allocation_map(images: list[Image]) -> list[dict[str, Any]]:
    """What ``qemu-img map --output=json`` reports for the chain's top image.

    Each entry: start, length, depth, present, zero, data and, when the range is
    backed by host data in the layer at ``depth``, offset.
    """
    entries: list[dict[str, Any]] = []

    def emit(start: int, length: int, depth: int, present: bool, zero: bool, data: bool,
             offset: int | None) -> None:
        if entries:
            p = entries[-1]
            if (p["depth"] == depth and p["present"] == present and p["zero"] == zero
                    and p["data"] == data and ("offset" in p) == (offset is not None)
                    and (offset is None or p["offset"] + p["length"] == offset)
                    and p["start"] + p["length"] == start):
                p["length"] += length
                return
        e: dict[str, Any] = {"start": start, "length": length, "depth": depth,
                             "present": present, "zero": zero, "data": data}
        if offset is not None:
            e["offset"] = offset
        entries.append(e)

    # a stack of things to do, in order: walk a range at a depth, or emit an extent
    # (no recursion: a chain may be thousands deep)
    todo: list[tuple[Any, ...]] = []
    if images[0].virtual_size:
        todo.append(("walk", 0, 0, images[0].virtual_size))
    while todo:
        item = todo.pop()
        if item[0] == "emit":
            emit(*item[1:])
            continue
        _, depth, start, length = item
        img = images[depth]
        inside = max(0, min(length, img.virtual_size - start))
        steps: list[tuple[Any, ...]] = []
        if inside:
            for ext in img.block_status(start, inside):
                if ext.state == UNALLOCATED:
                    if depth + 1 < len(images):
                        steps.append(("walk", depth + 1, ext.start, ext.length))
                    else:
                        steps.append(("emit", ext.start, ext.length, depth, False, True,
                                      False, None))
                else:
                    steps.append(("emit", ext.start, ext.length, depth, True,
                                  ext.state == ZERO, ext.state == DATA,
                                  None if ext.compressed else ext.offset))
        if inside < length:
            steps.append(("emit", start + inside, length - inside, depth, False, True,
                          False, None))
        todo.extend(reversed(steps))
    return entries
