"""Backing chains: opening them, reading the guest view, mapping allocation.

Names are resolved the way QEMU does it: an absolute backing name is used as
is; a relative one is joined to the *directory part of the overlay's path as it
was given* (not the CWD, and not normalised), so ``sub/ov.qcow2`` naming
``../base.qcow2`` gives ``sub/../base.qcow2``.
"""

from __future__ import annotations

import os
from typing import Any

from engine.formats.errors import BackingChainError, ImageError, ImageIOError
from engine.formats.image import DATA, UNALLOCATED, ZERO, Image, zero_fill
from engine.formats.probe import open_image


def full_backing_filename(overlay_path: str, backing_name: str) -> str:
    """QEMU's path_combine: the backing name as seen from the overlay's directory."""
    if os.path.isabs(backing_name) or not backing_name:
        return backing_name
    slash = overlay_path.rfind("/")
    return overlay_path[:slash + 1] + backing_name if slash >= 0 else backing_name


def _identity(path: str) -> tuple[int, int] | str:
    try:
        st = os.stat(path)
        return (st.st_dev, st.st_ino)
    except (OSError, ValueError):   # ValueError: a NUL byte; open_image reports it
        return path


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
    current, current_fmt = os.fspath(path), fmt
    try:
        while True:
            if images:
                ident = _identity(current)
                if ident in seen:
                    raise BackingChainError(
                        f"Backing file '{current}' creates a loop: it is the same file as "
                        f"'{seen[ident]}'", images[-1].path)
            try:
                img = open_image(current, current_fmt, writable=writable and not images)
            except ImageIOError as exc:
                if not images:
                    raise
                raise BackingChainError(
                    f"Could not open backing file '{current}': {exc.message}",
                    images[-1].path) from exc
            except ImageError as exc:
                if not images:
                    raise
                raise BackingChainError(
                    f"Could not open backing file '{current}': {exc}", images[-1].path,
                ) from exc
            images.append(img)
            seen[_identity(current)] = current
            if not img.backing_file:
                for i in range(len(images) - 1):
                    images[i].backing_reader = ChainReader(images[i + 1:]).fill
                return images
            current = full_backing_filename(img.path, img.backing_file)
            current_fmt = img.backing_format
    except BaseException:
        for img in images:
            img.close()
        raise


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

    def _read(self, depth: int, offset: int, view: memoryview, prezeroed: bool) -> None:
        if depth >= len(self.images):
            if not prezeroed:
                zero_fill(view)
            return
        img = self.images[depth]
        inside = max(0, min(len(view), img.virtual_size - offset))
        if inside < len(view) and not prezeroed:
            zero_fill(view[inside:])     # past this layer's end: zeros (QEMU does so)
        if inside:
            def backing(off: int, v: memoryview) -> None:
                self._read(depth + 1, off, v, prezeroed)

            img.readinto(offset, view[:inside], backing, prezeroed=prezeroed)


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

    def walk(depth: int, start: int, length: int) -> None:
        img = images[depth]
        inside = max(0, min(length, img.virtual_size - start))
        if inside:
            for ext in img.block_status(start, inside):
                if ext.state == UNALLOCATED:
                    if depth + 1 < len(images):
                        walk(depth + 1, ext.start, ext.length)
                    else:
                        emit(ext.start, ext.length, depth, False, True, False, None)
                else:
                    emit(ext.start, ext.length, depth, True, ext.state == ZERO,
                         ext.state == DATA, None if ext.compressed else ext.offset)
        if inside < length:
            emit(start + inside, length - inside, depth, False, True, False, None)

    if images[0].virtual_size:
        walk(0, 0, images[0].virtual_size)
    return entries
