"""A failed blockdev-reopen list changes nothing; the model's job-facing API."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from engine.formats.hostfile import HostFile
from engine.graph.model import Node
from engine.qmp import Engine, QMPError
from tests.support.qemu import create


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def engine(tmp_path: Path) -> Engine:
    create(tmp_path / "hd0.qcow2", "1M")
    create(tmp_path / "hd1.qcow2", "1M", backing="hd0.qcow2")
    create(tmp_path / "hd2.qcow2", "1M", backing="hd1.qcow2")
    create(tmp_path / "xb.qcow2", "1M")
    create(tmp_path / "x.qcow2", "1M", backing="xb.qcow2")
    eng = Engine(rng_seed=7)
    for name in ("hd0", "hd1", "hd2"):
        eng.execute("blockdev-add", qcow2(tmp_path, name, backing=None))
    eng.execute("blockdev-add", {"driver": "null-co", "node-name": "n0"})
    eng.execute("blockdev-add", {"driver": "qcow2", "node-name": "auto",
                                 "file": {"driver": "file",
                                          "filename": str(tmp_path / "x.qcow2")}})
    return eng


def qcow2(d: Path, name: str, **extra: object) -> dict:
    return {"driver": "qcow2", "node-name": name, **extra,
            "file": {"driver": "file", "node-name": f"{name}-file",
                     "filename": str(d / f"{name}.qcow2")}}


FAILING_LISTS = [
    # earlier entries rebase, make read-only and detach; the last one is refused
    lambda d: [qcow2(d, "hd2", backing="hd1"), qcow2(d, "hd1", backing="hd0"),
               qcow2(d, "hd0", backing=None, **{"read-only": True}),
               qcow2(d, "hd1", backing="nonexist")],
    lambda d: [qcow2(d, "hd2", backing="hd1"), qcow2(d, "hd1", backing="hd2")],      # cycle
    lambda d: [qcow2(d, "hd0", backing=None, **{"read-only": True}),
               {"driver": "file", "node-name": "hd1-file", "read-only": True,
                "filename": str(d / "hd1.qcow2")}],                                  # writer
    lambda d: [qcow2(d, "hd2", backing="hd0"),
               {"driver": "qcow2", "node-name": "hd1", "backing": None,
                "file": "hd2-file"}],                                                # conflict
    lambda d: [qcow2(d, "hd2", backing="n0"), {"driver": "null-co", "node-name": "n0",
                                               "size": 5}],                          # immutable
    lambda d: [qcow2(d, "hd2", backing="hd1"), {"driver": "qcow2", "file": "x"}],  # no name
]


@pytest.mark.parametrize("make_list", FAILING_LISTS)
def test_failed_reopen_list_changes_nothing(engine: Engine, tmp_path: Path,
                                            make_list: object) -> None:
    graph = engine.graph
    before = graph.snapshot()
    queried = engine.execute("query-named-block-nodes")
    debug = engine.execute("x-debug-query-block-graph")
    counter, rng_state = graph.namer.counter, graph.namer.rng.getstate()
    fds = _fds()
    options = {n.name: dict(n.options) for n in graph.nodes.values()}
    with pytest.raises(QMPError) as err:
        engine.execute("blockdev-reopen", {"options": make_list(tmp_path)})  # type: ignore[operator]
    assert err.value.error_class == "GenericError"
    after = graph.snapshot()
    assert before == after and before.diff(after).empty
    assert [e.perm for e in before.edges] == [e.perm for e in after.edges]
    assert engine.execute("query-named-block-nodes") == queried
    assert engine.execute("x-debug-query-block-graph") == debug
    assert (graph.namer.counter, graph.namer.rng.getstate()) == (counter, rng_state)
    assert _fds() == fds
    assert {n.name: dict(n.options) for n in graph.nodes.values()} == options
    # and the graph still works: a valid reopen succeeds afterwards
    engine.execute("blockdev-reopen", {"options": [qcow2(tmp_path, "hd2", backing="hd1")]})
    assert graph.snapshot().backing("hd2") == "hd1"


def test_successful_reopen_reopens_images(engine: Engine, tmp_path: Path) -> None:
    hd0 = engine.graph.find("hd0")
    assert hd0 is not None and hd0.image.writable
    engine.execute("blockdev-reopen", {"options": [
        qcow2(tmp_path, "hd0", backing=None, **{"read-only": True})]})
    assert hd0.read_only and not hd0.image.writable
    assert engine.graph.find("hd0-file").read_only  # type: ignore[union-attr]
    engine.execute("blockdev-reopen", {"options": [qcow2(tmp_path, "hd0", backing=None)]})
    assert not hd0.read_only and hd0.image.writable


def test_empty_list_and_x_blockdev_reopen(tmp_path: Path, engine: Engine) -> None:
    assert engine.execute("blockdev-reopen", {"options": []}) == {}
    with pytest.raises(QMPError) as err:
        engine.execute("x-blockdev-reopen", qcow2(tmp_path, "hd2", backing="hd1"))
    assert err.value.error_class == "CommandNotFound"
    old = Engine(x_blockdev_reopen=True)
    old.execute("blockdev-add", {"driver": "null-co", "node-name": "n"})
    assert "x-blockdev-reopen" in [c["name"] for c in old.execute("query-commands")]
    assert old.execute("x-blockdev-reopen", {"driver": "null-co", "node-name": "n",
                                             "read-only": True}) == {}
    with pytest.raises(QMPError, match="Cannot find node named 'zz'"):
        old.execute("x-blockdev-reopen", {"driver": "null-co", "node-name": "zz"})
    old.execute("blockdev-add", {"driver": "raw", "node-name": "r", "file": "n"})
    with pytest.raises(QMPError, match="Cannot find device= nor node_name=zz"):
        old.execute("x-blockdev-reopen", {"driver": "raw", "node-name": "r", "file": "zz"})
    with pytest.raises(QMPError, match="Node name not specified"):
        old.execute("x-blockdev-reopen", {"driver": "raw", "file": "n"})
    old.close()


def test_auto_names_are_seedable(tmp_path: Path) -> None:
    create(tmp_path / "b.qcow2", "1M")
    create(tmp_path / "t.qcow2", "1M", backing="b.qcow2")
    names = []
    for _ in range(2):
        eng = Engine(rng_seed=42)
        eng.execute("blockdev-add", {"driver": "qcow2", "node-name": "t", "file": {
            "driver": "file", "filename": str(tmp_path / "t.qcow2")}})
        names.append(sorted(n["node-name"] for n in
                            eng.execute("query-named-block-nodes", {"flat": True})))
        eng.close()
    assert names[0] == names[1]
    autos = [n for n in names[0] if n.startswith("#block")]
    # counter 0, 1, 2 then two random digits: #block0NN, #block1NN, #block2NN
    assert sorted(a[6] for a in autos) == ["0", "1", "2"] and all(len(a) == 9 for a in autos)


def test_job_api_filters_frozen_links_and_rw_for_job(engine: Engine, tmp_path: Path) -> None:
    """What stream/commit use: an implicit filter, frozen links, a job parent."""
    graph = engine.graph
    engine.execute("blockdev-reopen", {"options": [qcow2(tmp_path, "hd2", backing="hd1"),
                                                   qcow2(tmp_path, "hd1", backing="hd0")]})
    hd2, hd1 = graph.find("hd2"), graph.find("hd1")
    assert hd2 is not None and hd1 is not None
    with graph.transaction():
        flt = graph.add_node(Node(name=graph.new_name(), driver="copy-on-read",
                                  auto_named=True, implicit=True))
        graph.insert_filter_above(flt, hd1)
        graph.freeze_chain(hd2, graph.find("hd0"))
        graph.set_read_only(hd1, False)
        graph.refresh_perms([hd2, flt])
    snap = graph.snapshot()
    assert snap.backing("hd2") == flt.name and snap.child(flt.name, "file") == "hd1"
    assert snap.edge("hd2", "backing").frozen  # type: ignore[union-attr]
    with pytest.raises(QMPError, match="Cannot replace implicit backing child of hd2"):
        engine.execute("blockdev-reopen", {"options": [qcow2(tmp_path, "hd2",
                                                             backing="hd0")]})
    # naming the node below the implicit filter keeps it
    engine.execute("blockdev-reopen", {"options": [qcow2(tmp_path, "hd2", backing="hd1")]})
    with pytest.raises(QMPError, match="Cannot change frozen 'backing' link from 'hd1' to "
                                       "'hd0'"):
        engine.execute("blockdev-reopen", {"options": [qcow2(tmp_path, "hd1", backing=None)]})
    with pytest.raises(QMPError, match="Block device hd1 is in use"):
        engine.execute("blockdev-del", {"node-name": "hd1"})
    with graph.transaction():
        graph.unfreeze_chain(hd2, graph.find("hd0"))
        graph.remove_filter(flt)
        graph.refresh_perms([hd2, hd1])
    assert graph.snapshot().backing("hd2") == "hd1"
    assert flt.name not in graph.nodes


def test_unsupported_drivers_and_options_are_refused_cleanly(tmp_path: Path) -> None:
    create(tmp_path / "a.qcow2", "1M")
    eng = Engine()
    for opts, text in [
        ({"driver": "vmdk", "node-name": "v", "file": "x"},
         "Driver 'vmdk' is not supported by the bundled engine"),
        ({"driver": "qcow2", "node-name": "q", "data-file": "x",
          "file": {"driver": "file", "filename": str(tmp_path / "a.qcow2")}},
         "The bundled engine does not support the qcow2 option 'data-file'"),
    ]:
        with pytest.raises(QMPError) as err:
            eng.execute("blockdev-add", opts)
        assert err.value.desc == text
    assert eng.execute("query-named-block-nodes") == []
    eng.close()


def test_image_that_cannot_be_reopened_rolls_back(engine: Engine, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    engine.execute("blockdev-reopen", {"options": [
        qcow2(tmp_path, "hd0", backing=None, **{"read-only": True})]})
    hd0 = engine.graph.find("hd0")
    assert hd0 is not None
    image_before, snap_before, fds = hd0.image, engine.graph.snapshot(), _fds()
    real_reopen = HostFile.reopen

    def refuse_rw(self: HostFile, writable: bool) -> HostFile:
        if writable:      # what a file without write permission answers a non-root user
            raise OSError(errno.EACCES, os.strerror(errno.EACCES), "/proc/self/fd/x")
        return real_reopen(self, writable)

    monkeypatch.setattr(HostFile, "reopen", refuse_rw)
    with pytest.raises(QMPError, match=r"Could not open '.*hd0.qcow2': Permission denied"):
        engine.execute("blockdev-reopen", {"options": [
            qcow2(tmp_path, "hd2", backing="hd1"), qcow2(tmp_path, "hd0", backing=None)]})
    assert hd0.image is image_before and hd0.read_only
    assert engine.graph.snapshot() == snap_before and _fds() == fds


def test_reopen_drains_the_reopened_subtrees(engine: Engine, tmp_path: Path) -> None:
    calls: list[tuple[frozenset[str], bool]] = []
    engine.graph.drain_listeners.append(lambda names, begin: calls.append((names, begin)))
    engine.execute("blockdev-reopen", {"options": [qcow2(tmp_path, "hd2", backing="hd1")]})
    assert calls == [(frozenset({"hd2", "hd2-file"}), True),
                     (frozenset({"hd2", "hd2-file"}), False)]
    calls.clear()
    with pytest.raises(QMPError):       # drained (and resumed) even when it fails
        engine.execute("blockdev-reopen", {"options": [qcow2(tmp_path, "hd0",
                                                             backing="nonexist")]})
    assert [b for _, b in calls] == [True, False]
    calls.clear()
    engine.execute("blockdev-reopen", {"options": [{"driver": "null-co",
                                                    "node-name": "n0"}]})
    assert calls == [(frozenset({"n0"}), True), (frozenset({"n0"}), False)]
