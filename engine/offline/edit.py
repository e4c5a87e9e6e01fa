"""Editing chains on disk: rebase (safe/unsafe), flatten, stream into the top, commit.

Each edit does what the named ``qemu-img`` command does, through
:mod:`engine.formats` only, and returns an :class:`EditResult` carrying that command
line (so the GUI can show it) and any warning the user must see.

* :func:`rebase` safe mode (``qemu-img rebase -b NEW``): wherever the overlay holds no
  data of its own and the old backing chain reads differently from the new one, the old
  content is written into the overlay first; then the header is rewritten. The guest
  view of the overlay is unchanged. Unsafe mode (``-u``) rewrites the header only.
* :func:`stream_into_top` = safe rebase onto no backing file (``qemu-img rebase -b ''``).
* :func:`flatten` writes the chain's guest view into a new image (``qemu-img convert``).
* :func:`commit` copies what the layers above BASE define into BASE
  (``qemu-img commit``); committing into the immediate backing file then empties the
  top (unless ``drop=False``, ``-d``); committing through several layers (``-b``) leaves
  the upper images alone, like qemu-img.

Progress is reported as ``progress(done_bytes, total_bytes)`` on the caller's thread.
Failures raise :class:`OfflineEditError` (or the :class:`ImageError` of the file).
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from engine.formats import (
    ChainReader,
    allocation_map,
    close_chain,
    create_qcow2,
    create_raw,
    full_backing_filename,
    open_chain,
    open_image,
)
from engine.formats.errors import BackingChainError, ImageError
from engine.formats.image import UNALLOCATED, Image
from engine.graph.drivers import ENGINE_IMAGE_DRIVERS
from engine.offline.bulk import (
    CHUNK,
    Buffer,
    Op,
    WritePipeline,
    give_back,
    nonzero_runs,
    take_buffer,
    units,
    windows,
)
from engine.offline.commands import commit_command, convert_command, rebase_command
from engine.offline.inspect import Fix

Progress = Callable[[int, int], None]


class OfflineEditError(ImageError):
    """An offline edit was refused or could not be done; nothing was changed."""


@dataclass(frozen=True, slots=True)
class EditResult:
    """What an offline edit did: the equivalent command, warnings, bytes copied."""

    command: str
    changed: tuple[str, ...]
    copied_bytes: int = 0
    warnings: tuple[str, ...] = ()


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)


def _probe_format(path: str, who: str) -> str:
    try:
        with open_image(path) as img:
            return img.format
    except ImageError as exc:
        raise OfflineEditError(f"cannot open the new backing file: {exc}", who) from exc


@functools.lru_cache(maxsize=8)
def _zeros(n: int) -> bytes:
    return bytes(n)


def _tick(progress: Progress | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


# -- rebase -------------------------------------------------------------------------------

def rebase(image: str | os.PathLike[str], backing_file: str | None,
           backing_format: str | None = None, *, safe: bool = True, fmt: str | None = None,
           progress: Progress | None = None) -> EditResult:
    """Point ``image``'s backing link at ``backing_file`` (None or '' = no backing file).

    ``backing_file`` is written to the header as given; a relative name is resolved
    against the image's directory (as QEMU does). ``backing_format`` None probes it.
    Safe mode keeps the guest content; unsafe mode rewrites only the header and says so
    in the result's warnings.
    """
    path = os.fspath(image)
    backing_file = backing_file or None
    new_path = full_backing_filename(path, backing_file) if backing_file else None
    if new_path is not None:
        if _same_file(new_path, path):
            raise OfflineEditError(
                f"cannot make '{backing_file}' the backing file of itself", path)
        if backing_format is None:
            backing_format = _probe_format(new_path, path)
    if safe:
        return _safe_rebase(path, backing_file, new_path, backing_format, fmt, progress)
    with open_image(path, fmt, writable=True) as img:
        _require_backing_support(img)
        old = img.backing_file
        img.set_backing(backing_file, backing_format if backing_file else None)
        img.flush()
        command = rebase_command(path, img.format, backing_file, backing_format, safe=False)
    _tick(progress, 1, 1)
    warning = (f"Unsafe rebase: only the header of {os.path.basename(path)} was rewritten "
               f"(backing '{old or ''}' -> '{backing_file or ''}'). Guest data was not "
               f"compared: wherever the image holds no data of its own, the guest now reads "
               f"{'the new backing file' if backing_file else 'zeros'}.")
    return EditResult(command, (path,), 0, (warning,))


def _require_backing_support(img: Image) -> None:
    if img.format != "qcow2":
        raise OfflineEditError(f"{img.format} images cannot have a backing file", img.path)


def _safe_rebase(path: str, backing_file: str | None, new_path: str | None,
                 backing_format: str | None, fmt: str | None,
                 progress: Progress | None) -> EditResult:
    try:
        old_chain = open_chain(path, fmt, writable=True)
    except BackingChainError as exc:
        raise OfflineEditError(
            f"the current backing chain cannot be read ({exc.message}), so its content "
            f"cannot be kept; use unsafe mode to rewrite only the header", path) from exc
    new_chain: list[Image] = []
    try:
        top = old_chain[0]
        _require_backing_support(top)
        if new_path is not None:
            try:
                new_chain = open_chain(new_path, backing_format)
            except ImageError as exc:
                raise OfflineEditError(f"cannot open the new backing chain: {exc}",
                                       path) from exc
            if any(_same_file(im.path, path) for im in new_chain):
                raise OfflineEditError(
                    f"'{backing_file}' has {os.path.basename(path)} in its own backing "
                    f"chain: the new link would create a loop", path)
        old_reader = ChainReader(old_chain[1:]) if len(old_chain) > 1 else None
        new_reader = ChainReader(new_chain) if new_chain else None
        suspects = _differing_candidates(top, old_chain[1:], new_chain)
        copied = _copy_differences(top, old_reader, new_reader, suspects, progress)
        top.set_backing(backing_file, backing_format if backing_file else None)
        top.flush()
        command = rebase_command(path, top.format, backing_file, backing_format, safe=True)
    finally:
        close_chain(new_chain)
        close_chain(old_chain)
    return EditResult(command, (path,), copied)


def _above_common(old: list[Image], new: list[Image]) -> tuple[list[Image], list[Image]]:
    """The layers of each chain above the first image both chains share (if any).

    Below a shared image both chains read the same bytes, so only ranges that a layer
    above it defines can differ (this is how qemu-img rebase avoids reading them).
    """
    for j, n_img in enumerate(new):
        for i, o_img in enumerate(old):
            if _same_file(o_img.path, n_img.path):
                return old[:i], new[:j]
    return old, new


def _differing_candidates(top: Image, old: list[Image],
                          new: list[Image]) -> list[tuple[int, int]]:
    """Guest ranges where the old and the new backing may read differently.

    Those are the ranges some layer above the shared part defines (data or zero), plus
    any range past the end of such a layer (it reads zeros there, not what is below).
    Merged, sorted ``(start, end)`` pairs within the top's size.
    """
    size = top.virtual_size
    old_above, new_above = _above_common(old, new)
    ranges: list[tuple[int, int]] = []
    for img in (*old_above, *new_above):
        inside = min(size, img.virtual_size)
        if inside:
            ranges += [(e.start, e.end) for e in img.block_status(0, inside)
                       if e.state != UNALLOCATED]
        if inside < size:
            ranges.append((inside, size))
    ranges.sort()
    merged: list[tuple[int, int]] = []
    for a, b in ranges:
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _copy_differences(top: Image, old: ChainReader | None, new: ChainReader | None,
                      suspects: list[tuple[int, int]], progress: Progress | None) -> int:
    """Write into ``top`` every unallocated cluster where old and new backing differ.

    Only the ``suspects`` ranges are read; everywhere else both read the same. The
    top's own allocation is read first (the writes below only fill clusters it does
    not allocate, so it stays true while they run); a cluster whose old content is all
    zeros is written as zeros.
    """
    size = top.virtual_size
    unit = top.cluster_size or 512
    holes = [(e.start, e.end) for a, b in windows(suspects, size, unit, gap=0)
             for e in top.block_status(a, b - a) if e.state == UNALLOCATED]
    copied = 0
    top.begin_write_back()       # metadata once, at the flush: a crash only leaks clusters
    try:
        new_buf = take_buffer(CHUNK)
        with WritePipeline(top) as pipe:
            for a, b in windows(holes, size, unit, gap=0):
                n = b - a
                old_buf = pipe.buffer()
                _fill(old, a, old_buf.view[:n])
                _fill(new, a, new_buf.view[:n])
                ops = _differences(old_buf, new_buf, a, n, unit)
                if ops:
                    pipe.submit(old_buf, ops)
                    copied += sum(op[3] - op[2] for op in ops)
                else:
                    pipe.release(old_buf)
                _tick(progress, b, size)
        give_back(new_buf)
        top.flush()
    finally:
        top.end_write_back()
    _tick(progress, size, size)
    return copied


def _fill(reader: ChainReader | None, offset: int, view: memoryview) -> None:
    if reader is None:
        view[:] = _zeros(len(view))
    else:
        reader.fill(offset, view)


def _differences(old: Buffer, new: Buffer, base: int, length: int, unit: int) -> list[Op]:
    """Writes of the units where ``old`` and ``new`` differ: old's data, or zeros."""
    ops: list[Op] = []
    for a, b in units(base, base + length, unit):
        s, e = a - base, b - base
        if old.same(new, s, e):
            continue
        kind = "zero" if old.zero(s, e) else "data"
        if ops and ops[-1][0] == kind and _op_end(ops[-1]) == a:
            last = ops[-1]
            ops[-1] = (kind, last[1], last[2], last[3] + (e - s)) if kind == "zero" \
                else (kind, last[1], last[2], e)
        else:
            ops.append((kind, a, 0, e - s) if kind == "zero" else (kind, a, s, e))
    return ops


def _op_end(op: Op) -> int:
    kind, offset, a, b = op
    return offset + (b if kind == "zero" else b - a)


def stream_into_top(image: str | os.PathLike[str], *, fmt: str | None = None,
                    progress: Progress | None = None) -> EditResult:
    """Copy the whole backing chain into ``image`` and drop its backing file."""
    return rebase(image, None, None, safe=True, fmt=fmt, progress=progress)


# -- flatten ------------------------------------------------------------------------------

def flatten(image: str | os.PathLike[str], output: str | os.PathLike[str], *,
            fmt: str | None = None, output_format: str = "qcow2", overwrite: bool = False,
            progress: Progress | None = None) -> EditResult:
    """Write the guest view of ``image``'s chain into a new standalone image ``output``."""
    path, out_path = os.fspath(image), os.fspath(output)
    if output_format not in ENGINE_IMAGE_DRIVERS:
        raise OfflineEditError(f"unsupported output format '{output_format}'", out_path)
    if os.path.exists(out_path) and not overwrite:
        raise OfflineEditError("the output file already exists", out_path)
    chain = open_chain(path, fmt)
    try:
        if any(_same_file(im.path, out_path) for im in chain if os.path.exists(out_path)):
            raise OfflineEditError("the output file is part of the chain being flattened",
                                   out_path)
        top = chain[0]
        size = top.virtual_size
        tmp = _temp_beside(out_path)
        try:
            if output_format == "qcow2":
                create_qcow2(tmp, size, cluster_size=top.cluster_size or 65536)
            else:
                create_raw(tmp, size)
            reader = ChainReader(chain)
            data = [(e["start"], e["start"] + e["length"]) for e in allocation_map(chain)
                    if e["data"]]      # zero or unallocated: a fresh image reads zeros
            with open_image(tmp, output_format, writable=True) as out:
                out.begin_write_back()    # metadata once, at the flush (a new file)
                try:
                    copied = _copy_nonzero(reader, out, data, size, progress)
                    out.flush()
                finally:
                    out.end_write_back()
            os.replace(tmp, out_path)
        except BaseException:
            _unlink_quietly(tmp)
            raise
        command = convert_command(path, top.format, out_path, output_format)
    finally:
        close_chain(chain)
    _tick(progress, size, size)
    return EditResult(command, (out_path,), copied)


def _copy_nonzero(reader: ChainReader, out: Image, data: list[tuple[int, int]], size: int,
                  progress: Progress | None) -> int:
    """Copy the guest bytes of ``data`` into ``out`` but the units of all zeros (the
    output stays sparse, as qemu-img convert leaves it); the bytes written."""
    unit = out.cluster_size or 4096
    copied = 0
    with WritePipeline(out) as pipe:
        for a, b in windows(data, size, unit):
            buf = pipe.buffer()
            reader.readinto(a, buf.view[:b - a])
            ops: list[Op] = [("data", s, s - a, e - a)
                             for s, e in nonzero_runs(buf, a, b - a, unit)]
            if ops:
                pipe.submit(buf, ops)
                copied += sum(e - s for _k, _o, s, e in ops)
            else:
                pipe.release(buf)
            _tick(progress, b, size)
    return copied


def _temp_beside(path: str) -> str:
    """A new empty file beside ``path``, created with the mode any new file gets here
    (0666 less the umask, as qemu-img's files): renamed over ``path``, it is that file.
    (``tempfile.mkstemp`` makes it 0600, and a flattened image stayed unreadable to the
    group that reads every other image.)"""
    directory = os.path.dirname(os.path.abspath(path))
    while True:
        tmp = os.path.join(directory, f".blockgraph-{secrets.token_hex(6)}.tmp")
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return tmp


def _unlink_quietly(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


# -- commit -------------------------------------------------------------------------------

def commit(image: str | os.PathLike[str], base: str | os.PathLike[str] | None = None, *,
           fmt: str | None = None, drop: bool = True,
           progress: Progress | None = None) -> EditResult:
    """Copy what the layers above ``base`` define into ``base`` (default: the backing file).

    Committing into the immediate backing file empties ``image`` afterwards unless
    ``drop`` is False; with a deeper ``base`` no upper image is changed.
    """
    path = os.fspath(image)
    chain = open_chain(path, fmt)
    try:
        if len(chain) < 2:
            raise OfflineEditError("the image has no backing file to commit into", path)
        if base is None:
            depth = 1
        else:
            base_path = os.fspath(base)
            found = [i for i, im in enumerate(chain)
                     if i > 0 and (_same_file(im.path, base_path)
                                   or im.path == base_path)]
            if not found:
                raise OfflineEditError(
                    f"'{base_path}' is not in the backing chain of {os.path.basename(path)}",
                    path)
            depth = found[0]
        target = chain[depth]
        top = chain[0]
        if target.virtual_size < top.virtual_size:
            raise OfflineEditError(
                f"{os.path.basename(target.path)} ({target.virtual_size} bytes) is smaller "
                f"than {os.path.basename(path)} ({top.virtual_size} bytes); resize it first",
                target.path)
        above = chain[:depth]
        reader = ChainReader(chain)
        copied = 0
        with open_image(target.path, target.format, writable=True) as out:
            out.begin_write_back()        # metadata once, at the flush below
            try:
                copied = _copy_present(reader, out, allocation_map(above),
                                       top.virtual_size, progress)
                out.flush()
            finally:
                out.end_write_back()
        empty_top = depth == 1 and drop
        top_info = (top.virtual_size, top.cluster_size, getattr(top, "version", 3),
                    _refcount_bits(top), top.backing_file, top.backing_format)
        command = commit_command(path, top.format, None if base is None else os.fspath(base),
                                 drop=drop or base is not None)
    finally:
        close_chain(chain)
    if empty_top:
        _make_empty(path, *top_info)
    _tick(progress, top_info[0], top_info[0])
    changed = (target.path, path) if empty_top else (target.path,)
    return EditResult(command, changed, copied)


def _copy_present(reader: ChainReader, out: Image, entries: list[dict[str, Any]],
                  size: int, progress: Progress | None) -> int:
    """Write every range the map's layers define into ``out``: data as it reads, zero
    ranges as zeros (what qemu-img commit does); the bytes handled."""
    copied = 0
    with WritePipeline(out) as pipe:
        for entry in entries:
            if not entry["present"]:
                continue
            start, end = entry["start"], entry["start"] + entry["length"]
            if entry["zero"]:
                pipe.submit(None, [("zero", start, 0, end - start)])
            else:
                for a, b in windows([(start, end)], size, 1, gap=0):
                    buf = pipe.buffer()
                    reader.readinto(a, buf.view[:b - a])
                    pipe.submit(buf, [("data", a, 0, b - a)])
            copied += end - start
            _tick(progress, end, size)
    return copied


def _refcount_bits(img: Image) -> int:
    header = getattr(img, "header", None)
    return int(getattr(header, "refcount_bits", 16))


def _make_empty(path: str, size: int, cluster_size: int | None, version: int,
                refcount_bits: int, backing_file: str | None,
                backing_format: str | None) -> None:
    """Replace ``path`` by an empty qcow2 with the same settings and backing link.

    This is what qemu-img's commit does to the top (the file returns to the fresh
    four-cluster layout); the new file is written beside it and renamed over it.
    """
    tmp = _temp_beside(path)
    try:
        mode = os.stat(path).st_mode & 0o7777
        create_qcow2(tmp, size, backing_file=backing_file, backing_format=backing_format,
                     cluster_size=cluster_size or 65536, version=version,
                     refcount_bits=refcount_bits)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        _unlink_quietly(tmp)
        raise


# -- fixes --------------------------------------------------------------------------------

def apply_fix(fix: Fix, *, progress: Progress | None = None) -> EditResult:
    """Carry out a :class:`~engine.offline.inspect.Fix` offered for a broken link."""
    result = rebase(fix.image, fix.backing_file, fix.backing_format, safe=fix.safe,
                    fmt=fix.image_format, progress=progress)
    if fix.warning and fix.warning not in result.warnings:
        return EditResult(result.command, result.changed, result.copied_bytes,
                          (*result.warnings, fix.warning))
    return result
