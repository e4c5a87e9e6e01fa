"""Concurrent clients with good and bad commands: no failure, no fd leak, graph intact.

The full-size run (10,000 commands, beside qemu-storage-daemon) is the benchmark
``tests/bench/bench_server.py``; this is the same script, smaller.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.server.load import run_load
from tests.server.support import RawClient, ServeProcess
from tests.support.qemu import check, create

pytestmark = pytest.mark.qemu

CLIENTS = 8
COMMANDS = 800


def _graph(c: RawClient) -> tuple[object, object]:
    return (c.cmd("query-named-block-nodes", {"flat": True})["return"],
            c.cmd("x-debug-query-block-graph")["return"])


def test_load_eight_clients(tmp_path: Path) -> None:
    base = create(tmp_path / "base.qcow2", "1M")
    images = [create(tmp_path / f"c{i}.qcow2", "1M") for i in range(CLIENTS)]
    with ServeProcess(tmp_path) as srv:
        with RawClient(srv.socket_path) as c:
            c.negotiate()
            assert c.cmd("blockdev-add", {"driver": "qcow2", "node-name": "base", "file": {
                "driver": "file", "filename": str(base)}}) == {"return": {}}
            before = _graph(c)
        fds_before = srv.settled_fds()
        table_before = srv.fd_table()

        result = run_load(srv.socket_path, images, COMMANDS)

        assert result.failures == []
        assert result.commands == COMMANDS
        assert {"malformed", "stray", "unknown", "wrong-type", "blockdev-add",
                "blockdev-del"} <= set(result.kinds)
        # every client has closed its connection: once the server has closed its
        # ends, it holds exactly the descriptors it held before the load
        assert srv.settled_fds(at_most=fds_before) == fds_before, (
            table_before, srv.fd_table())
        with RawClient(srv.socket_path) as c:
            c.negotiate()
            assert _graph(c) == before
    for img in (base, *images):
        check(img)

