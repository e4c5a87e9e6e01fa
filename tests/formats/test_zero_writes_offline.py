"""Zero writes on an image opened outside the graph (``open_image``, ``open_chain``)
decide partial clusters as QEMU does: by what the backing chain below says, read from
the backing file the header names. Compared with ``qemu-io`` on a copy."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.formats import open_chain, open_image
from engine.formats.image import Image
from tests.support.qemu import check, compare, create, map_json, qemu_io

pytestmark = pytest.mark.qemu

ZEROES = [(8 << 10, 4 << 10), (68 << 10, 4 << 10), (136 << 10, 4 << 10),
          (260 << 10, 4 << 10)]


def _chain(d: Path) -> None:
    create(d / "base.qcow2", "1M")
    qemu_io(d / "base.qcow2", "write -P 1 0 4k", "write -P 2 136k 4k", "write -z 256k 64k")
    create(d / "top.qcow2", "1M", backing="base.qcow2")


def _open_top(d: Path, how: str) -> tuple[Image, Callable[[], None]]:
    if how == "image":
        img = open_image(d / "top.qcow2", writable=True)
        return img, img.close

    chain = open_chain(d / "top.qcow2", writable=True)

    def close() -> None:
        for layer in chain:
            layer.close()
    return chain[0], close


@pytest.mark.parametrize("how", ["image", "chain"])
def test_partial_zero_writes_read_the_backing_chain(tmp_path: Path, how: str) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    for d in (ours, theirs):
        d.mkdir()
        _chain(d)
    img, close = _open_top(ours, how)
    try:
        for offset, length in ZEROES:
            img.write_zeroes(offset, length)
    finally:
        close()
    qemu_io(theirs / "top.qcow2", *(f"write -z {o} {n}" for o, n in ZEROES))
    assert map_json(ours / "top.qcow2") == map_json(theirs / "top.qcow2")
    assert compare(ours / "top.qcow2", theirs / "top.qcow2")
    check(ours / "top.qcow2")
    shutil.rmtree(tmp_path)
