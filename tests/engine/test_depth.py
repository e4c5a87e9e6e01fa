"""No depth limits: chains 2,000 deep and options nested 1,000 deep.

The engine keeps its own stacks wherever a graph or an options tree is walked (no
recursion), so stream, commit and the queries work on chains far deeper than the
interpreter's recursion limit. How the time grows with the depth is measured in
``tests/bench`` (``bench_graph``), not here.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from engine.formats import create_qcow2, open_chain, open_image
from engine.qmp import Engine

KiB = 1024
DEPTH = 2000
NESTED = 1000


def deep_chain(d: Path, depth: int) -> Path:
    """img0 <- img1 <- ... ; layer i writes 4 KiB at its own place."""
    for i in range(depth):
        backing = {"backing_file": f"img{i - 1}.qcow2", "backing_format": "qcow2"} if i else {}
        create_qcow2(d / f"img{i}.qcow2", 256 * KiB, cluster_size=4096, **backing)
        if i % 97 == 0 or i == depth - 1:
            with open_image(d / f"img{i}.qcow2", writable=True) as img:
                img.write((i * 4096) % (256 * KiB), bytes([i % 251 + 1]) * 4096)
    return d / f"img{depth - 1}.qcow2"


def guest(path: Path) -> bytes:
    chain = open_chain(path)
    try:
        from engine.formats import ChainReader
        return ChainReader(chain).read(0, 256 * KiB)
    finally:
        for img in chain:
            img.close()


@pytest.fixture(scope="module")
def chain_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("deep")
    deep_chain(d, DEPTH)
    return d


def run(engine: Engine, command: str, args: dict[str, Any], job: str,
        until: str = "null") -> None:
    """Run ``command`` and wait until ``job`` reaches ``until``."""
    done = threading.Event()

    def listen(ev: dict[str, Any]) -> None:
        if ev["event"] == "JOB_STATUS_CHANGE" and ev["data"] == {"id": job, "status": until}:
            done.set()

    stop = engine.add_listener(listen)
    try:
        engine.execute(command, args)
        assert done.wait(120), f"{command}: {job} never reached {until}"
    finally:
        stop()


def add_top(engine: Engine, path: Path) -> None:
    engine.execute("blockdev-add", {"driver": "qcow2", "node-name": "top",
                                    "file": {"driver": "file", "filename": str(path)}})


def names_by_file(engine: Engine) -> dict[str, str]:
    return {n["file"].rsplit("/", 1)[-1]: n["node-name"]
            for n in engine.execute("query-named-block-nodes", {"flat": True})
            if n["drv"] == "qcow2"}


def test_queries_on_a_chain_2000_deep(chain_dir: Path) -> None:
    assert sys.getrecursionlimit() < DEPTH * 3
    with Engine() as engine:
        add_top(engine, chain_dir / f"img{DEPTH - 1}.qcow2")
        flat = engine.execute("query-named-block-nodes", {"flat": True})
        assert len(flat) == 2 * DEPTH
        deep = engine.execute("query-named-block-nodes")
        top = next(n for n in deep if n["node-name"] == "top")
        assert top["backing_file_depth"] == DEPTH - 1
        image, levels = top["image"], 1
        while "backing-image" in image:
            image, levels = image["backing-image"], levels + 1
        assert levels == DEPTH and image["filename"].endswith("img0.qcow2")
        graph = engine.execute("x-debug-query-block-graph")
        assert len(graph["nodes"]) == 2 * DEPTH


def test_stream_and_commit_on_a_chain_2000_deep(tmp_path: Path, chain_dir: Path) -> None:
    for f in chain_dir.iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    top_path = tmp_path / f"img{DEPTH - 1}.qcow2"
    before = guest(top_path)
    with Engine() as engine:
        add_top(engine, top_path)
        by_file = names_by_file(engine)
        # an intermediate range deep down, then the rest into the bottom, then a stream
        run(engine, "block-commit", {"job-id": "c0", "device": "top",
                                     "top-node": by_file["img1500.qcow2"],
                                     "base-node": by_file["img10.qcow2"]}, "c0")
        assert len(engine.execute("query-named-block-nodes", {"flat": True})) == \
            2 * (DEPTH - 1490)
        run(engine, "block-stream", {"job-id": "s0", "device": "top",
                                     "base-node": by_file["img0.qcow2"]}, "s0")
        assert len(engine.execute("query-named-block-nodes", {"flat": True})) == 4
        run(engine, "block-commit", {"job-id": "c1", "device": "top"}, "c1", until="ready")
        run(engine, "job-complete", {"id": "c1"}, "c1")
    assert guest(tmp_path / "img0.qcow2") == before


def nested_backing(d: Path, depth: int) -> dict[str, Any]:
    """blockdev-add options with the whole chain inline, ``backing`` nested ``depth`` deep."""
    opts: dict[str, Any] | None = None
    for i in range(depth):
        create_qcow2(d / f"n{i}.qcow2", 64 * KiB, cluster_size=4096)
        opts = {"driver": "qcow2", "node-name": f"n{i}", "backing": opts,
                "file": {"driver": "file", "filename": str(d / f"n{i}.qcow2")}}
    assert opts is not None
    return opts


def nested_raw(depth: int) -> dict[str, Any]:
    """Raw nodes, each the ``file`` of the next, over a null-co node: ``file`` nested."""
    opts: dict[str, Any] = {"driver": "null-co", "node-name": "bottom", "size": 1 << 20}
    for i in range(depth):
        opts = {"driver": "raw", "node-name": f"r{i}", "file": opts}
    return opts


def test_options_nested_1000_deep(tmp_path: Path) -> None:
    with Engine() as engine:
        chain = nested_backing(tmp_path, NESTED)
        engine.execute("blockdev-add", chain)
        engine.execute("blockdev-add", nested_raw(NESTED))
        nodes = engine.execute("query-named-block-nodes")
        by_name = {n["node-name"]: n for n in nodes}
        assert by_name[f"n{NESTED - 1}"]["backing_file_depth"] == NESTED - 1
        assert by_name[f"r{NESTED - 1}"]["image"]["virtual-size"] == 1 << 20
        engine.execute("blockdev-reopen", {"options": [chain]})   # every level named again
        engine.execute("blockdev-del", {"node-name": f"n{NESTED - 1}"})
        engine.execute("blockdev-del", {"node-name": f"r{NESTED - 1}"})
        assert engine.execute("query-named-block-nodes") == []
