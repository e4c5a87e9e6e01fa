"""ENOSPC and EIO in the middle of image writes, header rewrites and image creation.

Each test first counts how many file writes (or syncs) the operation makes, then
repeats it once per point, failing that call (and every later one: a full disk
stays full). After each interrupted run: the error names the cause, ``qemu-img
check`` finds no corruption, and the guest view (read by ``qemu-img``, not by the
engine) is unchanged outside the request and, inside it, each cluster holds either
all old or all new data — never a mix, never garbage.
"""

from __future__ import annotations

import contextlib
import errno
import shutil
from pathlib import Path

import pytest

from engine.formats import create_qcow2, fileio, open_image
from engine.formats.errors import ImageError, ImageIOError
from tests.faults.support import Counter, NthCall, check_intact, guest_bytes
from tests.support.qemu import create, info, qemu_io

CLUSTER = 4096
SIZE = 1 << 20


@pytest.fixture
def chain(tmp_path: Path) -> Path:
    """base.raw (patterned) <- top.qcow2 (some clusters written): a golden copy."""
    create(tmp_path / "base.raw", SIZE, fmt="raw")
    qemu_io(tmp_path / "base.raw", "write -P 0x11 0 1M", fmt="raw")
    create(tmp_path / "top.qcow2", SIZE, backing="base.raw", backing_fmt="raw",
           options=f"cluster_size={CLUSTER}")
    qemu_io(tmp_path / "top.qcow2", "write -P 0x22 8k 8k", "write -P 0x23 600k 4k")
    return tmp_path


def _fresh(chain: Path, n: int) -> Path:
    work = chain / f"run{n}"
    work.mkdir()
    shutil.copyfile(chain / "base.raw", work / "base.raw")
    shutil.copyfile(chain / "top.qcow2", work / "top.qcow2")
    return work / "top.qcow2"


def _write(path: Path, offset: int, data: bytes) -> None:
    """Write and close; an error from either is raised (the file is closed regardless)."""
    img = open_image(path, writable=True)
    try:
        img.write(offset, data)
    except BaseException:
        with contextlib.suppress(ImageError):
            img.close()
        raise
    img.close()


def _clusters_old_or_new(before: bytes, after: bytes, offset: int, data: bytes) -> None:
    end = offset + len(data)
    assert after[:offset] == before[:offset]
    assert after[end:] == before[end:]
    new = before[:offset] + data + before[end:]
    first = offset // CLUSTER * CLUSTER
    for c in range(first, end, CLUSTER):
        got = after[c:c + CLUSTER]
        assert got in (before[c:c + CLUSTER], new[c:c + CLUSTER]), \
            f"cluster at {c:#x} is neither old nor new data"


# a write that needs copy-on-write at both ends, a new L2 table and new refcounts
OFFSET, DATA = 0x5_0800, bytes([0x5A]) * (3 * CLUSTER)


@pytest.mark.engine_writes_damaged_images
@pytest.mark.parametrize("op,err", [("write", errno.ENOSPC), ("write", errno.EIO),
                                    ("flush", errno.EIO)])
def test_qcow2_write_interrupted_at_every_point(chain: Path, op: str, err: int) -> None:
    before = guest_bytes(chain / "top.qcow2")
    probe = _fresh(chain, 0)
    counter = Counter(str(probe), op)
    with fileio.faults(counter):
        _write(probe, OFFSET, DATA)
    assert counter.seen >= (3 if op == "write" else 1), counter
    assert guest_bytes(probe)[OFFSET:OFFSET + len(DATA)] == DATA

    for k in range(1, counter.seen + 1):
        path = _fresh(chain, k)
        fault = NthCall(str(path), op, k, err, sticky=err == errno.ENOSPC)
        with fileio.faults(fault), pytest.raises(ImageIOError) as exc:
            _write(path, OFFSET, DATA)
        assert fault.fired, f"point {k} was never reached"
        assert exc.value.errno == err
        assert __import__("os").strerror(err) in str(exc.value)
        check_intact(path)
        _clusters_old_or_new(before, guest_bytes(path), OFFSET, DATA)


@pytest.mark.parametrize("op", ["write", "flush"])
def test_header_rewrite_interrupted_at_every_point(chain: Path, op: str) -> None:
    """set_backing (what stream/commit do at completion): old header or new, never torn."""
    shutil.copyfile(chain / "base.raw", chain / "other-base.raw")
    new_name = "other-base.raw"
    probe = _fresh(chain, 0)
    shutil.copyfile(chain / "base.raw", probe.parent / new_name)
    counter = Counter(str(probe), op)
    with fileio.faults(counter):
        img = open_image(probe, writable=True)
        img.set_backing(new_name, "raw")
        img.close()
    assert info(probe)["backing-filename"] == new_name
    assert counter.seen >= 1

    for k in range(1, counter.seen + 1):
        path = _fresh(chain, k)
        shutil.copyfile(chain / "base.raw", path.parent / new_name)
        fault = NthCall(str(path), op, k, errno.EIO, sticky=False)
        img = open_image(path, writable=True)
        with fileio.faults(fault), pytest.raises(ImageIOError) as exc:
            img.set_backing(new_name, "raw")
            img.close()
        with contextlib.suppress(ImageError):
            img.close()
        assert fault.fired
        assert "Input/output error" in str(exc.value)
        check_intact(path)
        assert info(path)["backing-filename"] in ("base.raw", new_name)


@pytest.mark.engine_writes_damaged_images
def test_image_creation_on_a_full_disk_reports_enospc(tmp_path: Path) -> None:
    path = tmp_path / "new.qcow2"
    counter = Counter(str(path), "write")
    with fileio.faults(lambda p, o, off, n: counter(p, o, off, n) if path.exists() else None):
        create_qcow2(path, SIZE)
    check_intact(path)
    assert counter.seen >= 2
    for k in range(1, counter.seen + 1):
        path.unlink()
        fault = NthCall(str(path), "write", k, errno.ENOSPC)

        def hook(p: str, o: str, off: int, n: int, fault: NthCall = fault) -> None:
            if path.exists():
                fault(p, o, off, n)

        with fileio.faults(hook), pytest.raises(ImageIOError) as exc:
            create_qcow2(path, SIZE)
        assert exc.value.errno == errno.ENOSPC
        assert f"Could not create '{path}'" in str(exc.value)
        assert "No space left on device" in str(exc.value)
