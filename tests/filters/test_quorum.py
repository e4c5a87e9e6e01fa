"""``quorum`` against qemu-storage-daemon 7.2: its options and QEMU's refusals, the
graph and ``json:`` filename it makes, reads voted over children whose data differs
(``QUORUM_REPORT_BAD``, ``QUORUM_FAILURE``, ``rewrite-corrupted`` repairing the odd one
out, ``fifo``), writes to every child, and ``x-blockdev-change`` adding and removing
children with QEMU's rules (cf. QEMU's iotests 081 and 245)."""

from __future__ import annotations

import errno
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from engine.qmp.engine import Engine
from tests.differential.qemu_io_diff import run_both, top_options
from tests.support.differential import EnginePeer, Step, run_scenario
from tests.support.guest import Reads, guest_write, read
from tests.support.qemu import check, compare, create, map_json, qemu_io

pytestmark = pytest.mark.qemu

KiB = 1024
MiB = 1 << 20


def images(d: Path) -> None:
    """q0 and q1 agree; q2 and q4 differ at 64k; q3 differs from all at 64k; s is
    smaller."""
    for i in range(5):
        create(d / f"q{i}.qcow2", MiB)
        qemu_io(d / f"q{i}.qcow2", "write -P 1 0 64k")
    qemu_io(d / "q0.qcow2", "write -P 5 64k 64k")
    qemu_io(d / "q1.qcow2", "write -P 5 64k 64k")
    qemu_io(d / "q2.qcow2", "write -P 6 64k 64k")
    qemu_io(d / "q4.qcow2", "write -P 6 64k 64k")
    qemu_io(d / "q3.qcow2", "write -P 7 64k 64k")
    create(d / "s.qcow2", "512k")


def qcow2(name: str, image: str, **extra: Any) -> dict[str, Any]:
    return {"driver": "qcow2", "node-name": name,
            "file": {"driver": "file", "filename": "{dir}/" + image}, **extra}


def add(options: dict[str, Any], expect: str | None = None) -> Step:
    return Step("blockdev-add", options, expect=expect)


def quorum(name: str, children: list[Any], expect: str | None = None,
           **extra: Any) -> Step:
    return add({"driver": "quorum", "node-name": name, "children": children, **extra},
               expect)


def change(expect: str | None = None, **args: Any) -> Step:
    return Step("x-blockdev-change", args, expect=expect)


def nodes(count: int = 4) -> list[Step]:
    return [add(qcow2(f"hd{i}", f"q{i}.qcow2")) for i in range(count)]


class Events:
    """The quorum events each peer sent (the engine's through a listener)."""

    def __init__(self) -> None:
        self.seen: list[list[dict[str, Any]]] = []

    def collect(self, peer: Any) -> None:
        if isinstance(peer, EnginePeer):
            got = peer.__dict__.setdefault("_quorum_events", [])
            if not peer.__dict__.get("_listening"):
                raise AssertionError("listen() first")
            events, got[:] = list(got), []
        else:
            peer.execute("query-version")    # its reply follows every earlier event
            events = peer.events()
        self.seen.append([{"event": e["event"], "data": e["data"]} for e in events
                          if e["event"].startswith("QUORUM")])

    def listen(self, peer: Any) -> None:
        if isinstance(peer, EnginePeer):
            got = peer.__dict__.setdefault("_quorum_events", [])
            peer.engine.add_listener(got.append)
            peer.__dict__["_listening"] = True

    def step(self) -> Step:
        return Step("query-version", None, compare_graph=False, after=self.collect)

    def agree(self) -> list[list[dict[str, Any]]]:
        pairs = list(zip(self.seen[::2], self.seen[1::2], strict=True))
        for a, b in pairs:
            assert a == b, (a, b)
        return [a for a, _ in pairs]


class Outcomes:
    """What each peer's guest read answered: the bytes' first value, or the errno."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def read(self, node: str, offset: int, length: int) -> Step:
        def hook(peer: Any) -> None:
            try:
                data = read(peer, node, offset, length)
            except OSError as exc:
                self.seen.append(f"errno {exc.errno}")
            except AssertionError as exc:        # the NBD client's refusal
                self.seen.append(str(exc).split(": ", 1)[1])
            else:
                self.seen.append(f"bytes {set(data)}")
        return Step("query-version", None, compare_graph=False, after=hook)

    def agree(self) -> list[str]:
        pairs = list(zip(self.seen[::2], self.seen[1::2], strict=True))
        assert all(a == b for a, b in pairs), pairs
        return [a for a, _ in pairs]


def test_options_and_refusals(tmp_path: Path) -> None:
    run_scenario(tmp_path, images, [
        *nodes(3),
        add(qcow2("small", "s.qcow2")),
        quorum("q", [], expect="error", **{"vote-threshold": 1}),
        quorum("q", ["hd0"], expect="error"),                       # no threshold
        quorum("q", ["hd0"], expect="error", **{"vote-threshold": 0}),
        quorum("q", ["hd0", "hd1"], expect="error", **{"vote-threshold": 3}),
        quorum("q", ["hd0", "hd1"], expect="error", **{"vote-threshold": 2,
                                                       "read-pattern": "x"}),
        quorum("q", ["hd0", "hd1", "hd2"], expect="error",
               **{"vote-threshold": 2, "blkverify": True}),
        quorum("q", ["hd0", "hd1"], expect="error",
               **{"vote-threshold": 1, "blkverify": True}),
        quorum("q", ["hd0", "hd1"], expect="error",
               **{"vote-threshold": 2, "blkverify": True, "rewrite-corrupted": True}),
        quorum("q", ["hd0", "nope"], expect="error", **{"vote-threshold": 1}),
        quorum("hd0", ["hd1"], expect="error", **{"vote-threshold": 1}),
        quorum("q", ["hd0", {"driver": "qcow2", "node-name": "hd1", "file": {
            "driver": "file", "filename": "{dir}/q3.qcow2"}}], expect="error",
            **{"vote-threshold": 1}),
        quorum("q", ["hd0", "hd1", qcow2("in3", "q3.qcow2")], expect="ok",
               **{"vote-threshold": 2, "rewrite-corrupted": True}),
        Step("query-named-block-nodes", {"flat": True}, compare_return=True),
        quorum("q2", ["hd0"], expect="error", **{"vote-threshold": 1}),    # in use
        Step("blockdev-reopen", {"options": [{"driver": "quorum", "node-name": "q",
                                              "children": ["hd0", "hd1", "in3"],
                                              "vote-threshold": 2}]}, expect="error"),
        Step("blockdev-reopen", {"options": [{**qcow2("hd0", "q0.qcow2"),
                                              "backing": "q"}]}, expect="error"),
        Step("blockdev-del", {"node-name": "hd0"}, expect="error"),
        Step("blockdev-del", {"node-name": "q"}, expect="ok"),
        Step("query-named-block-nodes", {"flat": True}, compare_return=True),
        quorum("q", ["hd0", "small"], expect="error", **{"vote-threshold": 1}),   # sizes
        quorum("q", ["hd0", "hd1"], expect="ok", **{"vote-threshold": 1,
                                                    "read-pattern": "fifo",
                                                    "blkverify": True}),
        Step("query-named-block-nodes", {"flat": True}, compare_return=True),
    ])


def test_x_blockdev_change(tmp_path: Path) -> None:
    run_scenario(tmp_path, images, [
        *nodes(4),
        add({"driver": "null-co", "node-name": "n"}),
        quorum("q", ["hd0", "hd1"], **{"vote-threshold": 1}),
        change("error", parent="nope", node="hd2"),
        change("error", parent="q"),
        change("error", parent="q", node="hd2", child="children.0"),
        change("error", parent="q", node="nope"),
        change("error", parent="q", child="children.7"),
        change("error", parent="hd0", node="hd2"),                  # not a quorum
        change("error", parent="hd0", child="file"),
        change("error", parent="q", node="hd0"),                    # has a parent
        change("ok", parent="q", node="hd2"),                       # children.2
        Step("query-named-block-nodes", {"flat": True}, compare_return=True),
        change("ok", parent="q", child="children.1"),
        change("ok", parent="q", node="hd1"),                       # children.2 again? no
        Step("x-debug-query-block-graph", compare_return=True),
        change("ok", parent="q", child="children.2"),               # gives 3 back
        change("ok", parent="q", child="children.3"),
        change("error", parent="q", child="children.0"),            # threshold 1
        change("ok", parent="q", node="hd3"),
        Step("x-debug-query-block-graph", compare_return=True),
        Step("query-named-block-nodes", {"flat": True}, compare_return=True),
        quorum("bv", ["n", qcow2("in", "s.qcow2")], expect="error",
               **{"vote-threshold": 2, "blkverify": True}),
        add({"driver": "null-co", "node-name": "n2"}),
        quorum("bv", ["n", "n2"], expect="ok", **{"vote-threshold": 2, "blkverify": True}),
        add({"driver": "null-co", "node-name": "n3"}),
        change("error", parent="bv", node="n3"),
        change("error", parent="bv", child="children.0"),
        Step("blockdev-del", {"node-name": "q"}, expect="ok"),
        Step("blockdev-del", {"node-name": "hd0"}, expect="ok"),
    ])


def test_votes_reports_and_rewrites(tmp_path: Path) -> None:
    events, outcomes, reads = Events(), Outcomes(), Reads()
    listen = Step("query-version", None, compare_graph=False, after=events.listen)
    run_scenario(tmp_path, images, [
        listen,
        *nodes(4),
        quorum("q", ["hd0", "hd1", "hd2"], **{"vote-threshold": 2}),
        events.step(),
        outcomes.read("q", 0, 64 * KiB),              # all agree: no event
        events.step(),
        outcomes.read("q", 64 * KiB, 4 * KiB),       # hd2 is outvoted
        events.step(),
        quorum("q3", ["hd3"], **{"vote-threshold": 1}),
        Step("blockdev-del", {"node-name": "q3"}),
        quorum("w", ["hd3", "hd0", "hd2"], **{"vote-threshold": 2}),
        outcomes.read("w", 64 * KiB, 4 * KiB),       # three versions: failure
        events.step(),
        Step("blockdev-del", {"node-name": "w"}),
        quorum("f", ["hd2", "hd0"], **{"vote-threshold": 2, "read-pattern": "fifo"}),
        outcomes.read("f", 64 * KiB, 4 * KiB),       # hd2's data, no vote
        events.step(),
        Step("blockdev-del", {"node-name": "f"}),
        Step("blockdev-del", {"node-name": "q"}),
        add(qcow2("hd4", "q4.qcow2")),      # QEMU's monitor holds back a second
        quorum("r", ["hd0", "hd4", "hd1"], **{"vote-threshold": 2,   # report on hd2
                                              "rewrite-corrupted": True}),
        outcomes.read("r", 60 * KiB, 8 * KiB),       # hd4 is repaired
        events.step(),
        outcomes.read("r", 60 * KiB, 8 * KiB),       # and agrees now
        events.step(),
        Step("query-version", None, compare_graph=False,
             after=guest_write("r", 512 * KiB, 0x42, 12 * KiB)),
        Step("query-version", None, compare_graph=False,
             after=reads.hook("hd4", 0, MiB)),
        events.step(),
    ])
    assert outcomes.agree() == ["bytes {1}", "bytes {5}", "errno 5", "bytes {6}",
                                "bytes {1, 5}", "bytes {1, 5}"]
    seen = events.agree()
    assert seen[0] == seen[1] == []
    assert [e["event"] for e in seen[2]] == ["QUORUM_REPORT_BAD"]
    assert seen[2][0]["data"] == {"type": "read", "node-name": "hd2", "sector-num": 128,
                                  "sectors-count": 8}
    assert [e["event"] for e in seen[3]] == ["QUORUM_FAILURE"]
    assert seen[4] == []
    assert [(e["event"], e["data"]["node-name"]) for e in seen[5]] == [
        ("QUORUM_REPORT_BAD", "hd4")]
    assert seen[6] == seen[7] == []
    data = reads.agree()
    assert data[64 * KiB:68 * KiB] == bytes([5]) * (4 * KiB)
    assert data[512 * KiB:524 * KiB] == bytes([0x42]) * (12 * KiB)
    for name in ("q0.qcow2", "q1.qcow2", "q2.qcow2", "q4.qcow2"):
        qsd, eng = tmp_path / "qsd" / name, tmp_path / "engine" / name
        assert map_json(qsd) == map_json(eng), name
        assert compare(qsd, eng), name
        check(eng)


def _zero_layouts(d: Path) -> None:
    """Two children that agree on data in cluster 0 and on zeros in cluster 1 (zero
    clusters in both), read zeros in cluster 2 (a zero cluster, nothing allocated) and
    disagree on allocation in cluster 3 (zeros written as data, a zero cluster); an
    empty overlay on top."""
    create(d / "c0.qcow2", MiB)
    create(d / "c1.qcow2", MiB)
    qemu_io(d / "c0.qcow2", "write -P 3 0 4k", "write -z 64k 64k", "write -z 128k 64k",
            "write -P 0 192k 64k")
    qemu_io(d / "c1.qcow2", "write -P 3 0 4k", "write -z 64k 64k", "write -z 192k 64k")
    create(d / "top.qcow2", MiB)


def test_block_status_through_quorum_decides_partial_zero_writes(tmp_path: Path) -> None:
    """A zero write covering part of an overlay's cluster becomes a zero cluster only
    when the rest reads as zeros below: through a quorum, where every child's chain
    says so (QEMU's quorum block status: zeros where all children agree, data
    elsewhere)."""
    below = [qcow2("c0", "c0.qcow2"), qcow2("c1", "c1.qcow2"),
             {"driver": "quorum", "node-name": "q", "children": ["c0", "c1"],
              "vote-threshold": 2}]
    run_both(tmp_path, _zero_layouts, top_options(backing="q"),
             ["write -q -z 8k 4k", "write -q -z 72k 4k", "write -q -z 136k 4k",
              "write -q -z 200k 4k", "write -q -z 264k 4k"], below=below)


def _quorum_events(peer: Any, want: int) -> list[dict[str, Any]]:
    """The first ``want`` quorum events the peer sends (waiting for them, with a
    deadline): the engine's through a listener, QEMU's from its monitor."""
    deadline = time.monotonic() + 15
    got: list[dict[str, Any]] = []
    while len(got) < want and time.monotonic() < deadline:
        if isinstance(peer, EnginePeer):
            arrived = peer.__dict__["_arrived"]
            arrived.wait(0.2)
            arrived.clear()
            events = peer.__dict__["_events"]
            got, events[:] = got + list(events), []
        else:
            try:
                got += peer.events(wait=0.5)
            except TimeoutError:
                continue
        got = [e for e in got if e["event"].startswith("QUORUM")]
    return [{"event": e["event"], "data": e["data"]} for e in got]


def test_reports_are_held_as_qemus_monitor_holds_them(tmp_path: Path) -> None:
    """QEMU sends one ``QUORUM_REPORT_BAD`` per node and second: the first at once, the
    last of those that follow within the second when it ends (the ones between are
    dropped); another node's report is not held by the first one's."""
    seen: list[list[dict[str, Any]]] = []

    def listen(peer: Any) -> None:
        if isinstance(peer, EnginePeer):
            events: list[dict[str, Any]] = []
            arrived = threading.Event()
            peer.__dict__["_events"], peer.__dict__["_arrived"] = events, arrived
            peer.engine.add_listener(lambda e: (events.append(e), arrived.set()))

    def reads(peer: Any) -> None:
        for offset in (64 * KiB, 68 * KiB, 72 * KiB):      # hd2 outvoted three times
            read(peer, "q", offset, 4 * KiB)
        read(peer, "r", 64 * KiB, 4 * KiB)                 # hd4 outvoted once
        seen.append(_quorum_events(peer, 3))

    def more_images(d: Path) -> None:
        images(d)
        for i in (5, 6):        # two more that agree with q0 and q1
            create(d / f"q{i}.qcow2", MiB)
            qemu_io(d / f"q{i}.qcow2", "write -P 1 0 64k", "write -P 5 64k 64k")

    run_scenario(tmp_path, more_images, [
        Step("query-version", None, compare_graph=False, after=listen),
        *nodes(3), *(add(qcow2(f"hd{i}", f"q{i}.qcow2")) for i in (4, 5, 6)),
        quorum("q", ["hd0", "hd1", "hd2"], **{"vote-threshold": 2}),
        quorum("r", ["hd5", "hd4", "hd6"], **{"vote-threshold": 2}),
        Step("query-version", None, compare_graph=False, after=reads),
    ])
    assert len(seen) == 2 and seen[0] == seen[1], seen
    assert [(e["data"]["node-name"], e["data"]["sector-num"]) for e in seen[0]] == [
        ("hd2", 128), ("hd4", 128), ("hd2", 144)]


def test_blkverify_mode_mismatch_says_what_qemu_says(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """In blkverify mode a difference ends QEMU with a line on standard error; the
    engine prints the same line (and, in-process, fails the read with EIO)."""
    images(tmp_path)
    options = {"driver": "quorum", "vote-threshold": 2, "blkverify": True,
               "children": [{"driver": "qcow2", "file": {
                   "driver": "file", "filename": str(tmp_path / f"q{i}.qcow2")}}
                   for i in (0, 2)]}
    ran = qemu_io("json:" + json.dumps(options), "read 60k 8k", fmt="quorum", check=False)
    assert ran.returncode == 1
    with Engine() as engine:
        engine.execute("blockdev-add", {"node-name": "bv", **options})
        capsys.readouterr()
        with pytest.raises(OSError) as failed:
            engine.graph.find("bv").io.readinto(60 * KiB, memoryview(bytearray(8 * KiB)))
        assert failed.value.errno == errno.EIO
        printed = capsys.readouterr().err.splitlines()
    assert printed == [line for line in ran.stderr.splitlines() if line.startswith("quorum:")]
    assert printed == ["quorum: offset=61440 bytes=8192 contents mismatch at offset 65536"]
