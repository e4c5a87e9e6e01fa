"""qemu-storage-daemon 7.2 and the engine side by side, each on its own copy of the
images: commands run on both with equal replies, guest reads and writes on a node of
each (an NBD export of the daemon's node, the engine node's own I/O) that report the
errno a request failed with."""

from __future__ import annotations

import contextlib
import errno
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.formats.errors import ImageIOError
from tests.support import guest
from tests.support.differential import EnginePeer
from tests.support.qemu import QemuStorageDaemon


class Peers:
    """The daemon and the engine, each in its own copy of the images."""

    def __init__(self, tmp_path: Path, setup: Callable[[Path], None]) -> None:
        self.dirs = {}
        for name in ("qsd", "engine"):
            d = tmp_path / name
            d.mkdir()
            setup(d)
            self.dirs[name] = d
        self.qsd = QemuStorageDaemon(self.dirs["qsd"]).start()
        self.engine = EnginePeer()
        self.events: dict[str, list[dict[str, Any]]] = {"qsd": [], "engine": []}
        self.engine.engine.add_listener(self.events["engine"].append)

    def both(self, command: str, arguments: dict[str, Any] | None = None
             ) -> list[dict[str, Any]]:
        """Run a command on both; their replies must be equal."""
        replies = []
        for name, peer in (("qsd", self.qsd), ("engine", self.engine)):
            args = _subst(arguments, str(self.dirs[name]))
            replies.append(peer.execute(command, args))
        assert replies[0] == replies[1], f"{command}: qsd={replies[0]} engine={replies[1]}"
        return replies

    def jobs(self) -> list[list[dict[str, Any]]]:
        keys = ("device", "type", "len", "offset", "busy", "paused", "status", "io-status",
                "speed")
        return [[{k: j[k] for k in keys} for j in peer.execute("query-block-jobs")["return"]]
                for peer in (self.qsd, self.engine)]

    def wait_for(self, condition: Any, what: str, seconds: float = 30) -> None:
        deadline = time.monotonic() + seconds
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}: {self.jobs()}")
            with contextlib.suppress(TimeoutError):
                self.events["qsd"].extend(self.qsd.events(wait=0.02))

    def concluded(self, name: str, job: str) -> bool:
        if name == "qsd":
            self.events["qsd"].extend(self.qsd.events())
        return any(e["event"] == "JOB_STATUS_CHANGE" and e["data"] == {
            "id": job, "status": "concluded"} for e in self.events[name])

    def close(self) -> None:
        self.qsd.stop()
        self.engine.close()

    def write(self, node: str, offset: int, data: bytes) -> list[int]:
        """Write ``data`` as a guest on both; the errno each failed with (0: none)."""
        return [_errno(lambda p=peer: guest.write_data(p, node, offset, data))
                for peer in (self.qsd, self.engine)]

    def read(self, node: str, offset: int, length: int) -> list[bytes | int]:
        """Read as a guest on both: the bytes, or the errno the read failed with."""
        out: list[bytes | int] = []
        for peer in (self.qsd, self.engine):
            got: list[bytes] = []
            err = _errno(lambda p=peer, g=got: g.append(guest.read(p, node, offset, length)))
            out.append(err or got[0])
        return out


def _errno(action: Callable[[], object]) -> int:
    """0 when ``action`` succeeds; else the errno its request failed with (the NBD client
    asserts a zero error and names the errno it got)."""
    try:
        action()
    except (OSError, ImageIOError) as exc:
        return exc.errno or errno.EIO
    except AssertionError as exc:
        text = str(exc)
        if "failed: errno " not in text:
            raise
        return int(text.rsplit("errno ", 1)[1].split()[0])
    return 0


def _subst(value: Any, d: str) -> Any:
    if isinstance(value, str):
        return value.replace("{dir}", d)
    if isinstance(value, dict):
        return {k: _subst(v, d) for k, v in value.items()}
    if isinstance(value, list):
        return [_subst(v, d) for v in value]
    return value
