"""``--root`` under attack: files and directories swapped for symlinks while commands run.

Whoever can write inside the root can replace a name there between the engine's
check and its open, or after a file was opened and before the engine opens it again
(read-write for a job, or to create and truncate it). Here a thread does exactly that,
over and over, for every command that takes a file name:

- ``blockdev-add`` (``file``'s ``filename``, an image's ``file.filename``, a backing
  file named by an image header), with the file and with its directory swapped;
- ``blockdev-create`` (the ``file`` driver creates and truncates in its job thread);
- ``blockdev-snapshot-sync``, alone and as a ``transaction`` action (drive-style
  creation of the overlay);
- ``block-commit`` and ``block-stream`` that reopen an image read-write;
- ``blockdev-change-medium`` and ``blockdev-reopen`` (read-only to read-write).

Each name in the root alternates between the real file (or directory) and a symlink
to a sentinel of the same kind outside the root. In every second iteration the test
also swaps the name itself after the image was opened and before the command that
reopens it, so that the "opened once, never again by path" promise is tested
whether or not the thread hits the window.

An escape is an iteration after which anything happened in the directory outside:
``inotify`` reports every open, access, change and creation there (so "nothing
outside is opened" is checked by the kernel, not by wrapping Python's functions),
and the sentinels' bytes and metadata are compared as well. The count of escapes is
in the failure message. ``ROOT_RACE_ITERATIONS`` sets the iterations per command.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import os
import shutil
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from engine.qmp import Engine
from engine.qmp.errors import QMPError
from tests.support.qemu import create, qemu_io

ITERATIONS = int(os.environ.get("ROOT_RACE_ITERATIONS", "40"))
MIB = 1 << 20

# -- the kernel's view of the outside directory ---------------------------------------
_IN_ALL_EVENTS = 0xFFF        # access, modify, attrib, close, open, move, create, delete
_EVENT = struct.Struct("iIII")


class Inotify:
    """Every event on files in a directory and its subdirectories, read without blocking."""

    def __init__(self, directory: Path) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        self.fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1")
        for d in [directory, *(p for p in directory.rglob("*") if p.is_dir())]:
            if libc.inotify_add_watch(self.fd, os.fsencode(d), _IN_ALL_EVENTS) < 0:
                os.close(self.fd)
                raise OSError(ctypes.get_errno(), "inotify_add_watch")

    def events(self) -> list[tuple[int, str]]:
        """(mask, name) of every event since the last call."""
        out: list[tuple[int, str]] = []
        while True:
            try:
                data = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return out
            pos = 0
            while pos < len(data):
                _, mask, _, length = _EVENT.unpack_from(data, pos)
                name = data[pos + _EVENT.size:pos + _EVENT.size + length].rstrip(b"\0")
                out.append((mask, name.decode(errors="replace")))
                pos += _EVENT.size + length

    def close(self) -> None:
        os.close(self.fd)


def _fingerprint(directory: Path) -> dict[str, tuple[Any, ...]]:
    out: dict[str, tuple[Any, ...]] = {}
    for p in sorted(directory.rglob("*")):
        st = p.lstat()
        digest = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else ""
        out[str(p.relative_to(directory))] = (st.st_mode, st.st_size, st.st_mtime_ns,
                                              st.st_ino, digest)
    return out


# -- the swapper ----------------------------------------------------------------------
@dataclass
class Swap:
    """``name`` in the root alternates between its real self and a symlink to
    ``outside``: a file (``real``, a hard link kept beside it), a directory (moved
    aside to ``real`` and back) or nothing (``real`` is None)."""

    name: Path
    outside: Path
    real: Path | None
    directory: bool = False

    def to_symlink(self) -> None:
        if self.directory and self.real is not None and not self.name.is_symlink():
            with contextlib.suppress(FileNotFoundError):
                os.rename(self.name, self.real)
        tmp = self.name.with_name(f".{self.name.name}.l{threading.get_ident()}")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        tmp.symlink_to(self.outside)
        try:
            os.replace(tmp, self.name)
        except OSError:                          # a directory made meanwhile: leave it
            tmp.unlink()

    def to_real(self) -> None:
        if self.real is None or self.directory:
            with contextlib.suppress(FileNotFoundError, IsADirectoryError, PermissionError):
                if self.name.is_symlink() or self.real is None:
                    self.name.unlink()
            if self.directory and self.real is not None:
                with contextlib.suppress(FileNotFoundError, OSError):
                    os.rename(self.real, self.name)
            return
        tmp = self.name.with_name(f".{self.name.name}.r{threading.get_ident()}")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        os.link(self.real, tmp)                  # the same inode as the real file
        os.replace(tmp, self.name)


class Swapper:
    """A thread flipping every swap, as fast as it can, until stopped."""

    def __init__(self, swaps: list[Swap]) -> None:
        self.swaps = swaps
        self.flips = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            for s in self.swaps:
                with contextlib.suppress(FileNotFoundError):
                    s.to_symlink()
                    s.to_real()
                self.flips += 1

    def __enter__(self) -> Swapper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        for s in self.swaps:
            s.to_real()


# -- the scenes -----------------------------------------------------------------------
@dataclass
class Scene:
    """A root, an outside directory, the images for one command."""

    root: Path
    outside: Path
    templates: Path
    swaps: list[Swap] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)

    def image(self, name: str, *, size: str = "1M", fmt: str = "qcow2",
              backing: str | None = None, data: str | None = None) -> Path:
        """A template image (made once), copied into the root for each iteration."""
        t = self.templates / name
        if not t.exists():
            create(t, size, fmt=fmt, backing=backing, backing_fmt="qcow2")
            if data:
                qemu_io(t, data, fmt=fmt)
        return t

    def fresh(self, *names: str) -> None:
        """Copies of the templates in the root (and their ``.real`` twins), put in
        place by rename: the name may be a symlink out at this moment."""
        for n in names:
            tmp = self.root / f".{n}.fresh"
            shutil.copyfile(self.templates / n, tmp)
            os.replace(tmp, self.root / f"{n}.real")
            os.link(self.root / f"{n}.real", tmp)
            os.replace(tmp, self.root / n)
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()           # renaming onto the same inode leaves it

    def swap_file(self, name: str, *, exists: bool = True) -> Swap:
        """``name`` flips between its real file and a symlink to outside/<name>."""
        real = self.root / f"{name}.real" if exists else None
        s = Swap(self.root / name, self.outside / name, real)
        self.swaps.append(s)
        return s

    def swap_dir(self, name: str) -> Swap:
        """Directory ``name`` flips between itself (moved aside to ``.name.d`` while
        the symlink stands) and a symlink to outside/<name>."""
        (self.root / name).mkdir()
        (self.outside / name).mkdir()
        s = Swap(self.root / name, self.outside / name, self.root / f".{name}.d",
                 directory=True)
        self.swaps.append(s)
        return s



def _run_job(scene: Scene, engine: Engine, command: str, args: dict[str, Any]) -> None:
    """Start a job and see it to its end (completing it when ready)."""
    if not _try(scene, engine, command, args):
        return
    job = args["job-id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        jobs = {j["id"]: j for j in engine.execute("query-jobs")}
        status = jobs.get(job, {}).get("status")
        if status is None:
            return
        if status == "ready":
            with contextlib.suppress(QMPError):
                engine.execute("job-complete", {"id": job})
        elif status == "concluded":
            engine.execute("job-dismiss", {"id": job})
            return
        time.sleep(0.001)
    raise AssertionError(f"{command}: job {job} did not finish")


def _try(scene: Scene, engine: Engine, command: str, args: dict[str, Any]) -> bool:
    """True if the command succeeded; a QMP error is an answer, anything else a crash."""
    try:
        engine.execute(command, args)
    except QMPError:
        return False
    except Exception as exc:   # the engine must answer, not raise
        scene.crashes.append(f"{command}: {exc!r}")
        return False
    return True


def _qcow2(name: str, filename: str, **extra: Any) -> dict[str, Any]:
    return {"driver": "qcow2", "node-name": name,
            "file": {"driver": "file", "filename": filename}, **extra}


Step = Callable[[Engine, Scene, int], None]


def _add_file(scene: Scene) -> Step:
    scene.image("f.raw", fmt="raw", data="write -P 0x11 0 1M")
    scene.fresh("f.raw")
    scene.swap_file("f.raw")

    def step(engine: Engine, _: Scene, __: int) -> None:
        _try(scene, engine, "blockdev-add", {"driver": "file", "node-name": "f",
                                      "filename": str(scene.root / "f.raw")})
        _try(scene, engine, "blockdev-add", {"driver": "raw", "node-name": "r",
                                      "file": {"driver": "file",
                                               "filename": str(scene.root / "f.raw")}})
    return step


def _add_qcow2_in_swapped_dir(scene: Scene) -> Step:
    scene.image("img.qcow2")
    scene.swap_dir("d")
    shutil.copyfile(scene.templates / "img.qcow2", scene.root / "d" / "img.qcow2")
    shutil.copyfile(scene.templates / "img.qcow2", scene.outside / "d" / "img.qcow2")

    def step(engine: Engine, _: Scene, __: int) -> None:
        _try(scene, engine, "blockdev-add", _qcow2("q", str(scene.root / "d" / "img.qcow2")))
    return step


def _add_header_backing(scene: Scene) -> Step:
    scene.image("base.qcow2")
    scene.image("top.qcow2", backing="base.qcow2")
    shutil.copyfile(scene.templates / "top.qcow2", scene.root / "top.qcow2")
    scene.fresh("base.qcow2")
    scene.swap_file("base.qcow2")

    def step(engine: Engine, _: Scene, __: int) -> None:
        _try(scene, engine, "blockdev-add", _qcow2("top", str(scene.root / "top.qcow2")))
    return step


def _create_file(scene: Scene) -> Step:
    scene.swap_file("new.raw", exists=False)

    def step(engine: Engine, _: Scene, i: int) -> None:
        _run_job(scene, engine, "blockdev-create", {
            "job-id": f"c{i}", "options": {"driver": "file", "size": MIB,
                                           "filename": str(scene.root / "new.raw")}})
    return step


def _create_in_swapped_dir(scene: Scene) -> Step:
    scene.swap_dir("cd")

    def step(engine: Engine, _: Scene, i: int) -> None:
        _run_job(scene, engine, "blockdev-create", {
            "job-id": f"c{i}", "options": {"driver": "file", "size": MIB,
                                           "filename": str(scene.root / "cd" / "n.raw")}})
        for d in ("cd", ".cd.d"):      # never through the symlink
            with contextlib.suppress(OSError):
                fd = os.open(scene.root / d, os.O_DIRECTORY | os.O_NOFOLLOW)
                try:
                    os.unlink("n.raw", dir_fd=fd)
                finally:
                    os.close(fd)
    return step


def _snapshot_sync(transaction: bool) -> Callable[[Scene], Step]:
    def setup(scene: Scene) -> Step:
        scene.image("a.qcow2")
        scene.fresh("a.qcow2")
        scene.swap_file("snap.qcow2", exists=False)

        def step(engine: Engine, _: Scene, __: int) -> None:
            scene.fresh("a.qcow2")
            _try(scene, engine, "blockdev-add", _qcow2("a", str(scene.root / "a.qcow2")))
            data = {"node-name": "a", "snapshot-file": str(scene.root / "snap.qcow2"),
                    "snapshot-node-name": "s", "format": "qcow2"}
            if transaction:
                _try(scene, engine, "transaction",
                     {"actions": [{"type": "blockdev-snapshot-sync", "data": data}]})
            else:
                _try(scene, engine, "blockdev-snapshot-sync", data)
        return step
    return setup


def _commit(scene: Scene) -> Step:
    scene.image("cbase.qcow2")
    scene.image("ctop.qcow2", backing="cbase.qcow2", data="write -P 0x77 0 512k")
    scene.fresh("cbase.qcow2", "ctop.qcow2")
    swap = scene.swap_file("cbase.qcow2")

    def step(engine: Engine, _: Scene, i: int) -> None:
        scene.fresh("cbase.qcow2", "ctop.qcow2")
        _try(scene, engine, "blockdev-add", _qcow2("top", str(scene.root / "ctop.qcow2")))
        if i % 2:
            swap.to_symlink()          # opened read-only; now reopened read-write
        _run_job(scene, engine, "block-commit", {"job-id": f"k{i}", "device": "top"})
    return step


def _stream(scene: Scene) -> Step:
    scene.image("sbase.qcow2", data="write -P 0x55 0 512k")
    scene.image("smid.qcow2", backing="sbase.qcow2")
    scene.image("stop.qcow2", backing="smid.qcow2")
    scene.fresh("sbase.qcow2", "smid.qcow2", "stop.qcow2")
    swap = scene.swap_file("smid.qcow2")

    def step(engine: Engine, _: Scene, i: int) -> None:
        scene.fresh("sbase.qcow2", "smid.qcow2", "stop.qcow2")
        _try(scene, engine, "blockdev-add", _qcow2("top", str(scene.root / "stop.qcow2")))
        if i % 2:
            swap.to_symlink()
        nodes = {n["file"]: n["node-name"] for n in engine.execute("query-named-block-nodes")
                 if n["drv"] == "qcow2"}
        mid = next((v for k, v in nodes.items() if k.endswith("smid.qcow2")), None)
        if mid is not None:            # intermediate stream: the middle image read-write
            _run_job(scene, engine, "block-stream", {"job-id": f"s{i}", "device": mid})
    return step


def _change_medium(scene: Scene) -> Step:
    scene.image("m.qcow2")
    scene.fresh("m.qcow2")
    scene.swap_file("m.qcow2")

    def step(engine: Engine, _: Scene, __: int) -> None:
        _try(scene, engine, "x-blockgraph-device-add", {"id": "cd0", "removable": True})
        _try(scene, engine, "blockdev-change-medium", {"id": "cd0", "format": "qcow2",
                                                "filename": str(scene.root / "m.qcow2")})
        _try(scene, engine, "blockdev-change-medium", {"id": "cd0",
                                                "filename": str(scene.root / "m.qcow2")})
    return step


def _reopen(scene: Scene) -> Step:
    scene.image("ro.qcow2")
    scene.fresh("ro.qcow2")
    swap = scene.swap_file("ro.qcow2")

    def step(engine: Engine, _: Scene, i: int) -> None:
        scene.fresh("ro.qcow2")
        name = str(scene.root / "ro.qcow2")
        _try(scene, engine, "blockdev-add", {"driver": "qcow2", "node-name": "q", "read-only": True,
                                      "file": {"driver": "file", "node-name": "f",
                                               "filename": name}})
        if i % 2:
            swap.to_symlink()
        _try(scene, engine, "blockdev-reopen", {"options": [
            {"driver": "qcow2", "node-name": "q", "read-only": False, "file": "f"}]})
        _try(scene, engine, "blockdev-reopen", {"options": [
            {"driver": "file", "node-name": "f", "filename": name, "read-only": False}]})
    return step


SCENES: dict[str, Callable[[Scene], Step]] = {
    "blockdev-add file": _add_file,
    "blockdev-add dir": _add_qcow2_in_swapped_dir,
    "blockdev-add header backing": _add_header_backing,
    "blockdev-create": _create_file,
    "blockdev-create dir": _create_in_swapped_dir,
    "blockdev-snapshot-sync": _snapshot_sync(transaction=False),
    "transaction snapshot-sync": _snapshot_sync(transaction=True),
    "block-commit": _commit,
    "block-stream": _stream,
    "blockdev-change-medium": _change_medium,
    "blockdev-reopen": _reopen,
}


def _sentinels(scene: Scene) -> None:
    """outside/<name> for every swapped name: a file of the same kind with known bytes."""
    for s in scene.swaps:
        if s.outside.exists() or s.directory:
            continue
        t = scene.templates / s.name.name
        if t.exists():
            shutil.copyfile(t, s.outside)
        else:
            s.outside.write_bytes(b"sentinel " * 4096)


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Let the threads interleave often (the windows are a few bytecodes wide)."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


@pytest.mark.parametrize("command", list(SCENES))
def test_swapping_names_for_symlinks_never_reaches_outside(
        tmp_path: Path, command: str, fast_switching: None) -> None:
    scene = Scene(tmp_path / "root", tmp_path / "outside", tmp_path / "templates")
    for d in (scene.root, scene.outside, scene.templates):
        d.mkdir()
    step = SCENES[command](scene)
    _sentinels(scene)
    before = _fingerprint(scene.outside)
    watch = Inotify(scene.outside)
    escapes: list[tuple[int, list[tuple[int, str]]]] = []
    try:
        with Swapper(scene.swaps) as swapper:
            for i in range(ITERATIONS):
                engine = Engine(root=scene.root)
                try:
                    step(engine, scene, i)
                finally:
                    engine.close()
                events = watch.events()
                if events:
                    escapes.append((i, events))
        assert swapper.flips > 0
    finally:
        watch.close()
    after = _fingerprint(scene.outside)
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    assert not escapes and not changed and not scene.crashes, (
        f"{command}: {len(escapes)} escapes in {ITERATIONS} iterations, "
        f"{len(scene.crashes)} crashes ({scene.crashes[:2]}) "
        f"(first: iteration {escapes[0][0] if escapes else '-'}, "
        f"events {escapes[0][1][:5] if escapes else '-'}); outside changed: {changed}")
