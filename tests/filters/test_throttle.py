"""``throttle`` nodes and ``throttle-group`` objects against qemu-storage-daemon 7.2:
object-add/-del, qom-get/qom-set of the limits, the group shared by several nodes,
reopen to another group, and data passed through (cf. QEMU's iotests 184 and 093)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.differential import Step, run_scenario
from tests.support.guest import Reads, guest_write
from tests.support.qemu import compare, create, map_json

pytestmark = pytest.mark.qemu


def images(d: Path) -> None:
    create(d / "a.qcow2", "1M")
    create(d / "b.qcow2", "1M")


def group(gid: str, **props: Any) -> Step:
    return Step("object-add", {"qom-type": "throttle-group", "id": gid, **props})


def limits(**figures: int) -> dict[str, int]:
    return {k.replace("_", "-"): v for k, v in figures.items()}


def get(path: str, prop: str) -> Step:
    return Step("qom-get", {"path": path, "property": prop}, compare_return=True,
                compare_graph=False)


def qset(path: str, prop: str, value: Any) -> Step:
    return Step("qom-set", {"path": path, "property": prop, "value": value},
                compare_graph=False)


def qcow2(name: str, image: str) -> dict[str, Any]:
    return {"driver": "qcow2", "node-name": name,
            "file": {"driver": "file", "filename": "{dir}/" + image}}


def throttle(name: str, gid: str, file: Any) -> Step:
    return Step("blockdev-add", {"driver": "throttle", "node-name": name,
                                 "throttle-group": gid, "file": file})


def test_object_add_refusals(tmp_path: Path) -> None:
    steps = [
        group("tg0", expect="ok"),
        group("tg0"),                                               # duplicate id
        group("0bad"),
        Step("object-add", {"qom-type": "throttle-group"}),
        Step("object-add", {"qom-type": "no-such-type", "id": "x"}),
        group("t1", limits=limits(iops_total=100, iops_read=5)),
        group("t1", limits=limits(bps_total=1, bps_write_max=5)),
        group("t1", limits=limits(iops_size=100)),
        group("t1", limits=limits(bps_total=-1)),
        group("t1", limits=limits(bps_total=10 ** 15 + 1)),
        group("t1", limits=limits(bps_total_max_length=0)),
        group("t1", limits=limits(bps_total_max_length=2)),
        group("t1", limits=limits(iops_write_max_length=1 << 32, bps_read_max_length=1 << 33)),
        group("t1", limits=limits(bps_total_max=10)),
        group("t1", limits=limits(bps_total_max=10, bps_total=20)),
        group("t1", limits=limits(bps_total_max=10 ** 9, bps_total=20,
                                  bps_total_max_length=10 ** 9)),
        group("t1", limits=limits(bps_read_max_length=-1)),
        group("t1", limits=limits(bps_read_max_length=-1, bps_read=10, bps_read_max=10)),
        group("t1", limits={"bps-total": 20, "foo": 1}),
        group("t1", limits={"bps-total": "20"}),
        group("t1", limits=5),
        group("t1", **{"x-iops-total": -1}),
        group("t1", **{"x-iops-total": "a"}),
        group("t1", **{"x-iops-total-max-length": 1 << 32}),
        group("t1", **{"x-iops-total": 5, "x-iops-total-max": 1}),
        group("t1", **{"x-iops-size": 5}),
        group("t1", **{"x-bogus": 5}),
        group("t1", limits=limits(iops_total=5), **{"x-iops-read": 3}),
        group("t1", limits=limits(iops_read=5), **{"x-iops-total": 3}),
        group("t1", limits=limits(iops_read=5), **{"x-iops-total": -3}),
        group("tg0", limits=limits(iops_read=5), **{"x-iops-total": 3}),   # limits first
        Step("object-del", {"id": "tg0"}, expect="ok"),
        Step("object-del", {"id": "tg0"}),
        Step("object-del", {}),
        group("tg0", expect="ok"),
    ]
    run_scenario(tmp_path, None, steps)


def test_qom_get_and_set_of_limits(tmp_path: Path) -> None:
    run_scenario(tmp_path, None, [
        group("tg1", limits=limits(iops_total=20), **{"x-iops-total": 10}, expect="ok"),
        group("tg2", limits=limits(iops_total=5), **{"x-iops-total": 3, "x-bps-total": 9,
                                                     "x-bps-total-max": 90,
                                                     "x-bps-total-max-length": 4}),
        get("tg1", "limits"),
        get("/objects/tg1", "limits"),
        get("/objects/tg2", "limits"),
        get("/objects/tg1/", "x-iops-total"),
        get("objects/tg2", "x-bps-total-max-length"),
        get("/objects/tg1", "type"),
        get("/objects/tg1", "nope"),
        get("/objects/nope", "limits"),
        get("/nothing/tg1", "limits"),
        qset("/objects/tg1", "x-iops-total", 5),
        qset("/objects/tg1", "x-iops-total", "x"),
        qset("/objects/tg1", "type", "x"),
        qset("/objects/tg1", "nope", 1),
        qset("/objects/nope", "limits", {}),
        qset("/objects/tg1", "limits", 5),
        qset("/objects/tg1", "limits", {"foo": 5}),
        qset("/objects/tg1", "limits", {"iops-total": "x"}),
        qset("/objects/tg1", "limits", {"iops-read": 5}),           # total is still set
        get("/objects/tg1", "limits"),                               # unchanged
        qset("/objects/tg1", "limits", {"iops-total": 0, "iops-read": 5, "bps-write": 7}),
        get("/objects/tg1", "limits"),                               # merged
        qset("/objects/tg1", "limits", {"bps-read-max-length": -1}),
        qset("/objects/tg1", "limits", {"bps-write-max-length": 1 << 32}),
        qset("/objects/tg1", "limits", {"iops-size": -1}),
        get("/objects/tg1", "x-iops-size"),
        qset("/objects/tg1", "limits", {"iops-read": 0}),           # iops-size needs iops
        qset("/objects/tg1", "limits", {"bps-write-max": 70, "bps-write-max-length": 3}),
        get("/objects/tg1", "limits"),
        Step("qom-set", {"path": "/objects/tg1"}),
    ])


def test_group_shared_by_nodes_reopen_and_object_del(tmp_path: Path) -> None:
    run_scenario(tmp_path, images, [
        group("tg0", limits=limits(bps_total=1 << 20)),
        group("tg1"),
        throttle("t0", "tg0", qcow2("a", "a.qcow2")),
        throttle("t1", "tg0", qcow2("b", "b.qcow2")),
        throttle("t2", "nope", {"driver": "null-co", "node-name": "n9"}),
        throttle("t2", "nope", "zz"),
        Step("blockdev-add", {"driver": "throttle", "node-name": "t2", "file": "a"}),
        throttle("t2", "tg1", "a"),                  # a second filter above the same node
        throttle("t3", "tg1", {"driver": "null-co"}),
        Step("query-named-block-nodes", {"flat": True}, compare_return=True),
        Step("object-del", {"id": "tg0"}),
        Step("object-del", {"id": "tg1"}),
        Step("blockdev-reopen", {"options": [{"driver": "throttle", "node-name": "t1",
                                              "throttle-group": "nope", "file": "b"}]}),
        Step("blockdev-reopen", {"options": [{"driver": "throttle", "node-name": "t1",
                                              "file": "b"}]}),
        Step("blockdev-reopen", {"options": [{"driver": "throttle", "node-name": "t1",
                                              "throttle-group": "tg1", "file": "b"}]}),
        Step("blockdev-reopen", {"options": [{"driver": "throttle", "node-name": "t1",
                                              "throttle-group": "tg1", "file": "t2",
                                              "read-only": True}]}),
        Step("blockdev-del", {"node-name": "t0"}, expect="ok"),
        Step("object-del", {"id": "tg0"}, expect="ok"),          # t1 moved to tg1
        Step("object-del", {"id": "tg1"}),
        Step("blockdev-del", {"node-name": "t1"}),
        Step("blockdev-del", {"node-name": "t2"}),
        Step("blockdev-del", {"node-name": "t3"}),
        Step("object-del", {"id": "tg1"}, expect="ok"),
    ])


def test_data_passes_through_throttle_nodes(tmp_path: Path) -> None:
    reads = Reads()
    results = run_scenario(tmp_path, images, [
        group("tg0", limits=limits(iops_total=1000, bps_total=1 << 30)),
        throttle("t0", "tg0", qcow2("a", "a.qcow2")),
        throttle("t1", "tg0", "t0"),                                 # filters stacked
        Step("query-version", None, compare_graph=False,
             after=guest_write("t1", 65536, 0x5a, 131072)),
        Step("query-version", None, compare_graph=False,
             after=guest_write("t0", 0, 0x11, 4096)),
        Step("query-version", None, compare_graph=False,
             after=reads.hook("t1", 0, 8192)),
        Step("query-version", None, compare_graph=False,
             after=reads.hook("a", 61440, 8192)),
        Step("blockdev-del", {"node-name": "t1"}, expect="ok"),
        Step("blockdev-del", {"node-name": "t0"}, expect="ok"),
    ])
    assert results
    data = reads.agree()
    assert data == bytes(4096) + b"\x5a" * 4096
    assert reads.seen[0] == b"\x11" * 4096 + bytes(4096)
    qsd, eng = tmp_path / "qsd" / "a.qcow2", tmp_path / "engine" / "a.qcow2"
    assert compare(qsd, eng)
    assert map_json(qsd) == map_json(eng)
