"""Chains built with QEMU's own tools, for comparing offline edits with qemu-img."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.qemu import create, qemu_io

MIB = 1 << 20


def build_chain(d: Path) -> Path:
    """base <- mid <- top (4 MiB), plus alt.qcow2 (another base) and a v2 twist.

    base: 0xaa over [0, 1M), a zero cluster at 2M; mid: 0xbb at 1M+64k, zeroes over
    [256k, 320k) hiding base data; top: 0xcc at 3M+128k and a zero cluster at 512k.
    alt: 0xdd over [0, 512k) and 0xee at 3.5M.
    """
    d.mkdir(parents=True, exist_ok=True)
    create(d / "base.qcow2", "4M")
    qemu_io(d / "base.qcow2", "write -P 0xaa 0 1M", "write -z 2M 64k")
    create(d / "mid.qcow2", "4M", backing="base.qcow2")
    qemu_io(d / "mid.qcow2", "write -P 0xbb 1M 64k", "write -z 256k 64k")
    create(d / "top.qcow2", "4M", backing="mid.qcow2")
    qemu_io(d / "top.qcow2", "write -P 0xcc 3M 128k", "write -z 512k 64k")
    create(d / "alt.qcow2", "4M")
    qemu_io(d / "alt.qcow2", "write -P 0xdd 0 512k", "write -P 0xee 3584k 64k")
    return d


@pytest.fixture(scope="session")
def built_chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_chain(tmp_path_factory.mktemp("chain") / "built")


@pytest.fixture
def chain_dirs(tmp_path: Path, built_chain: Path) -> tuple[Path, Path, Path]:
    """Three identical copies: ours (edited by blockgraph), ref (by qemu-img), orig."""
    orig = tmp_path / "orig"
    shutil.copytree(built_chain, orig)
    ours = tmp_path / "ours"
    ref = tmp_path / "ref"
    shutil.copytree(orig, ours)
    shutil.copytree(orig, ref)
    return ours, ref, orig
