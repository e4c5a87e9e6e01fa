"""Opening beneath a root: openat2 and the component walk agree on every case.

Symlinks inside the root are followed, ``..`` works while it stays inside, and every
way out (absolute names, ``..`` above the root, symlinks out, absolute symlinks, a
dangling symlink that would create a file outside, a magic link) is refused with
EACCES without anything outside being opened or created.
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.formats import beneath
from engine.formats.beneath import open_beneath
from engine.formats.hostfile import HostFS, NotRegularFile


@pytest.fixture
def tree(tmp_path: Path) -> Iterator[tuple[int, Path, Path]]:
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "dir").mkdir(parents=True)
    outside.mkdir()
    (root / "file").write_bytes(b"inside")
    (root / "dir" / "deep").write_bytes(b"deep")
    (outside / "secret").write_bytes(b"secret")
    (root / "to-file").symlink_to("file")
    (root / "dir" / "up").symlink_to("../file")
    (root / "to-dir").symlink_to("dir")
    (root / "out").symlink_to("../outside/secret")
    (root / "out-dir").symlink_to("../outside")
    (root / "abs").symlink_to(root / "file")
    (root / "dangling-in").symlink_to("dir/made")
    (root / "dangling-out").symlink_to("../outside/made")
    (root / "loop").symlink_to("loop")
    (root / "magic").symlink_to("/proc/self/cwd")
    fd = os.open(root, os.O_PATH | os.O_DIRECTORY)
    try:
        yield fd, root, outside
    finally:
        os.close(fd)


def _read(root_fd: int, rel: str, walk: bool) -> bytes:
    fd = open_beneath(root_fd, rel, os.O_RDONLY, use_openat2=not walk)
    try:
        return os.pread(fd, 100, 0)
    finally:
        os.close(fd)


class _EagainFirst:
    """libc whose first ``n`` syscalls fail with EAGAIN, as openat2 does on a name with
    ``..`` while a rename runs anywhere on the machine; then the real call."""

    def __init__(self, n: int, real: ctypes.CDLL) -> None:
        self.left, self.real = n, real
        self.calls = 0

    def syscall(self, *args: object) -> int:
        self.calls += 1
        if self.left:
            self.left -= 1
            ctypes.set_errno(errno.EAGAIN)
            return -1
        return int(self.real.syscall(*args))


@pytest.mark.parametrize("eagains", [2, 1000], ids=["then-openat2", "then-walk"])
def test_openat2_refusing_with_eagain_is_tried_again_then_walked(
        tree: tuple[int, Path, Path], monkeypatch: pytest.MonkeyPatch, eagains: int) -> None:
    """A concurrent rename elsewhere must not fail an open: tried again, and if the
    kernel keeps saying EAGAIN, the walk resolves the name (still beneath the root)."""
    libc = _EagainFirst(eagains, beneath._libc)
    monkeypatch.setattr(beneath, "_libc", libc)
    assert _read(tree[0], "dir/../file", walk=False) == b"inside"
    with pytest.raises(PermissionError):
        _read(tree[0], "dir/../../outside/secret", walk=False)
    assert libc.calls >= 3


@pytest.mark.parametrize("walk", [False, True], ids=["openat2", "walk"])
@pytest.mark.parametrize(("rel", "data"), [
    ("file", b"inside"), ("./file", b"inside"), ("dir/deep", b"deep"),
    ("dir/../file", b"inside"), ("to-file", b"inside"), ("dir/up", b"inside"),
    ("to-dir/deep", b"deep"), ("to-dir/../file", b"inside"), ("dir//deep", b"deep"),
])
def test_names_inside_open(tree: tuple[int, Path, Path], rel: str, data: bytes,
                           walk: bool) -> None:
    assert _read(tree[0], rel, walk) == data


@pytest.mark.parametrize("walk", [False, True], ids=["openat2", "walk"])
@pytest.mark.parametrize("rel", [
    "../outside/secret", "dir/../../outside/secret", "out", "out-dir/secret", "abs",
    "/etc/hostname", "magic", "to-dir/../../outside/secret",
])
def test_ways_out_are_refused(tree: tuple[int, Path, Path], rel: str, walk: bool) -> None:
    with pytest.raises(OSError) as exc:
        _read(tree[0], rel, walk)
    assert exc.value.errno == errno.EACCES
    assert exc.value.strerror == "Permission denied"


@pytest.mark.parametrize("walk", [False, True], ids=["openat2", "walk"])
def test_creation_follows_symlinks_only_inside(tree: tuple[int, Path, Path],
                                               walk: bool) -> None:
    root_fd, root, outside = tree
    flags = os.O_RDWR | os.O_CREAT
    os.close(open_beneath(root_fd, "new", flags, use_openat2=not walk))
    os.close(open_beneath(root_fd, "dangling-in", flags, use_openat2=not walk))
    assert (root / "new").is_file() and (root / "dir" / "made").is_file()
    with pytest.raises(OSError) as exc:
        open_beneath(root_fd, "dangling-out", flags, use_openat2=not walk)
    assert exc.value.errno == errno.EACCES
    assert sorted(p.name for p in outside.iterdir()) == ["secret"]


@pytest.mark.parametrize("walk", [False, True], ids=["openat2", "walk"])
def test_errors_inside_keep_their_errno(tree: tuple[int, Path, Path], walk: bool) -> None:
    for rel, err in [("missing", errno.ENOENT), ("loop", errno.ELOOP),
                     ("file/x", errno.ENOTDIR)]:
        with pytest.raises(OSError) as exc:
            _read(tree[0], rel, walk)
        assert exc.value.errno == err, rel


def test_host_files_under_a_root(tmp_path: Path) -> None:
    """HostFS: names inside the root (as resolved or as the root was spelled) open, a
    root of "/" confines nothing, names elsewhere and FIFOs are refused."""
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "f").write_bytes(b"data")
    (tmp_path / "spelled").symlink_to("real")
    os.mkfifo(tmp_path / "real" / "fifo")
    fs = HostFS(tmp_path / "spelled")
    try:
        for name in (tmp_path / "real" / "f", tmp_path / "spelled" / "f"):
            with fs.open(str(name), writable=False) as f:
                assert f.pread(4, 0) == b"data"
        with pytest.raises(OSError) as exc:
            fs.open("/etc/hostname", writable=False)
        assert exc.value.errno == errno.EACCES
        with pytest.raises(NotRegularFile):
            fs.open(str(tmp_path / "real" / "fifo"), writable=False)
    finally:
        fs.close()
    everything = HostFS("/")
    try:
        with everything.open(str(tmp_path / "real" / "f"), writable=False) as f:
            assert f.pread(4, 0) == b"data"
    finally:
        everything.close()
