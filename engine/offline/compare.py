"""A live graph against the chain on disk: where memory and headers disagree.

QEMU changes backing links in memory (``blockdev-reopen``, ``blockdev-snapshot``) without
touching image headers; only jobs (stream, commit) and ``change-backing-file`` rewrite
them. A graph edited live therefore differs from what the files say, and a restart of
the peer would bring the header's chain back. :func:`compare_with_disk` lists those
differences for every format node whose image file can be named:

``link``
    the node's backing child in memory is not the file its header names (or one of
    the two has none);
``header``
    the header string on disk is not the one the peer reported (the file was rewritten
    behind the peer's back, or the peer has not re-read it);
``missing``
    the node's image file no longer exists.
``unreadable``
    the file exists but is not a usable image.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from engine.formats import full_backing_filename, open_image
from engine.formats.errors import ImageError
from engine.graph.drivers import ENGINE_IMAGE_DRIVERS, filtered_role
from engine.graph.snapshot import GraphSnapshot, NodeInfo


@dataclass(frozen=True, slots=True)
class Difference:
    """One disagreement between the live graph (``live``) and the disk (``disk``)."""

    node: str
    kind: str
    live: str | None
    disk: str | None
    message: str


def image_path(filename: str) -> str | None:
    """The host file behind a node's filename, plain or ``json:{...file.filename}``."""
    if not filename:
        return None
    if not filename.startswith("json:"):
        return filename if "://" not in filename else None
    try:
        opts = json.loads(filename[len("json:"):])
    except ValueError:
        return None
    while isinstance(opts, dict):
        if "filename" in opts and isinstance(opts["filename"], str):
            return opts["filename"]
        opts = opts.get("file")
    return None


def _same(a: str | None, b: str | None) -> bool:
    if a is None or b is None:
        return a is b
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _live_backing(snapshot: GraphSnapshot, key: str) -> NodeInfo | None:
    """The node's backing child, looking through filters (a job's, blkdebug…) to the
    image below, each by the child it passes requests to."""
    child = snapshot.backing(key)
    seen = set()
    while child is not None and child not in seen:
        seen.add(child)
        info = snapshot.nodes[child]
        role = filtered_role(info.driver)
        if role is None:
            return info
        child = snapshot.child(child, role)
    return None


def compare_with_disk(snapshot: GraphSnapshot) -> list[Difference]:
    """Every difference between the live graph's format nodes and their image headers."""
    diffs: list[Difference] = []
    for info in snapshot.block_nodes():
        if info.driver not in ENGINE_IMAGE_DRIVERS:
            continue
        path = image_path(info.filename)
        if path is None:
            continue
        name = info.name or info.key
        if not os.path.exists(path):
            diffs.append(Difference(info.key, "missing", path, None,
                                    f"{name}: its image file {path} no longer exists"))
            continue
        try:
            with open_image(path, info.driver) as img:
                disk_backing, disk_format = img.backing_file, img.backing_format
        except ImageError as exc:
            diffs.append(Difference(info.key, "unreadable", path, None,
                                    f"{name}: {exc}"))
            continue
        if info.driver == "qcow2" and (info.header_backing or None) != (disk_backing or None):
            diffs.append(Difference(
                info.key, "header", info.header_backing, disk_backing,
                f"{name}: the peer read the header backing '{info.header_backing or ''}', "
                f"but the file now says '{disk_backing or ''}'"))
        live = _live_backing(snapshot, info.key)
        live_path = image_path(live.filename) if live is not None else None
        disk_path = full_backing_filename(path, disk_backing) if disk_backing else None
        if live is not None and live_path is None:
            continue     # a backing node without a file (null-co, ...): nothing to compare
        if not _same(live_path, disk_path):
            live_txt = (f"{live.name or live.key} ({live_path})" if live is not None
                        else "no backing")
            disk_txt = f"'{disk_backing}'" if disk_backing else "no backing file"
            diffs.append(Difference(
                info.key, "link", live_path, disk_path,
                f"{name}: in memory its backing is {live_txt}; on disk the header names "
                f"{disk_txt}. The in-memory link is lost when the image is reopened "
                f"from its header"))
        del disk_format
    return diffs
