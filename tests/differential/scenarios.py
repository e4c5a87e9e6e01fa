"""The differential scenarios: QMP sessions run on qemu-storage-daemon 7.2 and on
``blockgraph serve``, compared step by step (see :mod:`tests.differential.harness`).

Add a scenario by appending to :data:`SCENARIOS`; it is data: images, then steps.
Paths are written ``{dir}/name`` and become each peer's own directory.

Not here on purpose: ``blockdev-reopen {"options": []}`` (qemu-storage-daemon 7.2
aborts on it; tests/server checks that blockgraph answers and lives on) and
``query-named-block-nodes`` while a concluded stream job awaits dismissal (7.2
crashes).
"""

from __future__ import annotations

from typing import Any

from tests.differential.harness import Cmd, Image, Raw, Scenario, WaitEvent


def qcow2(name: str, image: str, **extra: Any) -> Cmd:
    """blockdev-add of a qcow2 image with an inline file child."""
    return Cmd("blockdev-add", {"driver": "qcow2", "node-name": name,
                                "file": {"driver": "file", "filename": "{dir}/" + image},
                                **extra})


def file_node(name: str, image: str) -> Cmd:
    return Cmd("blockdev-add", {"driver": "file", "node-name": name,
                                "filename": "{dir}/" + image})


CHAIN = (
    Image("base.qcow2", write=("write -P 1 0 1M",)),
    Image("mid.qcow2", backing="base.qcow2", write=("write -P 2 1M 1M",)),
    Image("top.qcow2", backing="mid.qcow2", write=("write -P 3 2M 512k",)),
)
SINGLE = (Image("disk.qcow2", write=("write -P 7 0 1M",)), Image("other.qcow2"))


def reopen(*options: dict[str, Any]) -> Cmd:
    return Cmd("blockdev-reopen", {"options": list(options)})


SCENARIOS: list[Scenario] = [
    Scenario("negotiation-and-envelopes", (
        Raw(b'{"execute":"query-named-block-nodes","id":1}', negotiate=False),
        Raw(b'{"execute":"qmp_capabilities","id":"x"}'),
        Raw(b'{"execute":"query-named-block-nodes","id":{"a":[1,"b",null]}}'),
        Raw(b'{"execute":"no-such-command","id":2}'),
        Raw(b"{'execute': 'query-named-block-nodes', 'id': 'single-quoted'}"),
    )),
    Scenario("malformed-json", (
        Raw(b"garbage\n"),
        Raw(b"@\n"),
        Raw(b'{"a":tru}'),
        Raw(b'{"execute":"query-version","id":"\\q"}'),
        Raw(b'{"execute":"query-version","id":01}'),
        Raw(b'{"execute":"query-version","id":True}'),
        Raw(b'{"execute":"query-version","id":6,}'),
        Raw(b'{"execute" "query-version"}'),
        Raw(b"{1:2}"),
        Raw(b'{"a":1 "b":2}'),
        Raw(b"[1 2]"),
        Raw(b'{"x":"a","x":"b"}'),
        Raw(b'{"id":"\\ud800"}'),
        Raw(b'{"id":"a\tb"}'),
        Raw(b'@junk {"execute":"query-named-block-nodes","id":3}'),
        Raw(b'{"execute":"query-version","id":"\xc3("}'),
        Raw(b'{"execute":"query-version","id":"\xed\xa0\x80"}'),
        Raw(b'{"execute":"query-version","id":"\xc0\xaf"}'),
        Raw(b"\xc3\xa9\n"),
        Raw(b'{"execute":"query-version","id":"\\u00"}'),
        Raw(b'{"execute":"query-version","id":"\\u12x4"}'),
    )),
    Scenario("not-a-command", (
        Raw(b"[1,2]"),
        Raw(b'"text"'),
        Raw(b"null\n"),
        Raw(b'{"foo":1}'),
        Raw(b'{"id":5}'),
        Raw(b'{"execute":1}'),
        Raw(b'{"execute":"query-version","arguments":[]}'),
        Raw(b'{"execute":"query-version","arguments":null}'),
        Raw(b'{"execute":"query-version","control":{}}'),
        Raw(b'{"exec-oob":"query-version"}'),
        Raw(b'{"zzz":1,"arguments":2}'),
        Raw(b'{"execute":1,"bogus":1}'),
        Raw(b'{"execute":"query-version","exec-oob":"x"}'),
    )),
    Scenario("json-limits-and-odd-values", (
        Raw(b"[" * 1024 + b"]" * 1024),
        Raw(b"[" * 1025 + b"]" * 1025),
        Raw(b'{"execute":"query-named-block-nodes","id":[1e400,-0.0,1.5e3,0.1,'
            b'18446744073709551615,18446744073709551616,-9223372036854775809]}'),
        Raw('{"execute":"query-named-block-nodes","id":"é/\\u007f\\ud83d\\ude00"}'.encode()),
    )),
    Scenario("argument-validation", (
        Cmd("query-named-block-nodes", {"flat": "yes"}),
        Cmd("query-named-block-nodes", {"bogus": 1}),
        Cmd("blockdev-add", {"driver": "qcow2"}),
        Cmd("blockdev-add", {"driver": "foo", "node-name": "x"}),
        Cmd("blockdev-add", {"driver": "qcow2", "node-name": "x", "file": 5}),
        Cmd("blockdev-add", {"driver": "file", "node-name": "x", "filename": "{dir}/disk.qcow2",
                             "read-only": "no"}),
        Cmd("blockdev-del", {}),
        Cmd("blockdev-reopen", {"options": [{"driver": "qcow2"}]}),
        Cmd("blockdev-reopen", {"options": [{"node-name": "x", "driver": "qcow2",
                                             "bogus": True}]}),
    ), images=SINGLE),
    Scenario("blockdev-add-del", (
        qcow2("disk", "disk.qcow2"),
        qcow2("disk", "other.qcow2"),
        Cmd("query-named-block-nodes", {"flat": True}, compare_return=True),
        file_node("other-file", "other.qcow2"),
        Cmd("blockdev-add", {"driver": "qcow2", "node-name": "other", "file": "other-file"}),
        Cmd("blockdev-del", {"node-name": "other-file"}),
        Cmd("blockdev-del", {"node-name": "other"}),
        Cmd("blockdev-del", {"node-name": "other-file"}),
        Cmd("blockdev-add", {"driver": "qcow2", "node-name": "bad",
                             "file": {"driver": "file", "filename": "{dir}/missing.qcow2"}}),
        Cmd("blockdev-del", {"node-name": "nope"}),
        Cmd("x-debug-query-block-graph", compare_return=True),
    ), images=SINGLE),
    Scenario("blockdev-add-chain", (
        qcow2("top", "top.qcow2"),
        Cmd("query-named-block-nodes", compare_return=True),
        qcow2("base", "base.qcow2", **{"read-only": True}),
        qcow2("mid", "mid.qcow2", backing="base"),
        qcow2("top2", "top.qcow2", backing="mid"),
        # the same replies byte for byte: member order, spacing, escapes
        Raw(b'{"execute":"query-named-block-nodes","id":"wire"}'),
        Raw(b'{"execute":"query-named-block-nodes","arguments":{"flat":true}}'),
        Raw(b'{"execute":"x-debug-query-block-graph"}'),
    ), images=CHAIN),
    Scenario("blockdev-reopen", (
        qcow2("base", "base.qcow2", **{"read-only": True}),
        qcow2("mid", "mid.qcow2", backing="base", **{"read-only": True}),
        qcow2("top", "top.qcow2", backing="mid"),
        reopen({"driver": "qcow2", "node-name": "top", "backing": "base",
                "file": {"driver": "file", "filename": "{dir}/top.qcow2"}}),
        reopen({"driver": "qcow2", "node-name": "top", "backing": None,
                "file": {"driver": "file", "filename": "{dir}/top.qcow2"}}),
        reopen({"driver": "qcow2", "node-name": "base", "backing": "top",
                "file": {"driver": "file", "filename": "{dir}/base.qcow2"}}),
        reopen({"driver": "qcow2", "node-name": "top", "backing": "mid",
                "file": {"driver": "file", "filename": "{dir}/top.qcow2"}},
               {"driver": "qcow2", "node-name": "base", "backing": "top",
                "file": {"driver": "file", "filename": "{dir}/base.qcow2"}}),
        reopen({"driver": "qcow2", "node-name": "mid", "read-only": False, "backing": "base",
                "file": {"driver": "file", "filename": "{dir}/mid.qcow2"}}),
        reopen({"driver": "qcow2", "node-name": "nope"}),
        reopen({"driver": "raw", "node-name": "top",
                "file": {"driver": "file", "filename": "{dir}/top.qcow2"}}),
    ), images=CHAIN),
    Scenario("snapshots", (
        qcow2("disk", "disk.qcow2"),
        Cmd("blockdev-snapshot-sync", {"node-name": "disk", "snapshot-file": "{dir}/s1.qcow2",
                                       "snapshot-node-name": "s1", "format": "qcow2"}),
        Cmd("blockdev-snapshot-sync", {"node-name": "disk", "snapshot-file": "{dir}/s2.qcow2",
                                       "snapshot-node-name": "s1"}),
        Cmd("blockdev-create", {"job-id": "c1", "options": {
            "driver": "file", "filename": "{dir}/ext.qcow2", "size": 0}}, compare_graph=False),
        WaitEvent("JOB_STATUS_CHANGE", {"id": "c1", "status": "concluded"}),
        Cmd("job-dismiss", {"id": "c1"}),
        file_node("ext-file", "ext.qcow2"),
        Cmd("blockdev-create", {"job-id": "c2", "options": {
            "driver": "qcow2", "file": "ext-file", "size": 4 << 20}}, compare_graph=False),
        WaitEvent("JOB_STATUS_CHANGE", {"id": "c2", "status": "concluded"}),
        Cmd("job-dismiss", {"id": "c2"}),
        Cmd("blockdev-add", {"driver": "qcow2", "node-name": "ext", "file": "ext-file",
                             "backing": None}),
        Cmd("blockdev-snapshot", {"node": "s1", "overlay": "ext"}),
        Cmd("blockdev-snapshot", {"node": "s1", "overlay": "ext"}),
    ), images=SINGLE),
    Scenario("blockdev-create-qcow2-layout", (
        Cmd("blockdev-create", {"job-id": "c1", "options": {
            "driver": "file", "filename": "{dir}/new.qcow2", "size": 0}}, compare_graph=False),
        WaitEvent("JOB_STATUS_CHANGE", {"id": "c1", "status": "concluded"}),
        Cmd("job-dismiss", {"id": "c1"}),
        file_node("new-file", "new.qcow2"),
        Cmd("blockdev-create", {"job-id": "c2", "options": {
            "driver": "qcow2", "file": "new-file", "size": 4 << 20}}, compare_graph=False),
        WaitEvent("JOB_STATUS_CHANGE", {"id": "c2", "status": "concluded"}),
        Cmd("job-dismiss", {"id": "c2"}),
        Cmd("blockdev-add", {"driver": "qcow2", "node-name": "new", "file": "new-file"}),
        Cmd("query-named-block-nodes", {"flat": True}, compare_return=True),
    )),
    Scenario("transaction", (
        qcow2("disk", "disk.qcow2"),
        Cmd("transaction", {"actions": [
            {"type": "blockdev-snapshot-sync", "data": {
                "node-name": "disk", "snapshot-file": "{dir}/t1.qcow2",
                "snapshot-node-name": "t1"}},
            {"type": "blockdev-snapshot-sync", "data": {
                "node-name": "nope", "snapshot-file": "{dir}/t2.qcow2",
                "snapshot-node-name": "t2"}}]}),
        Cmd("transaction", {"actions": [
            {"type": "blockdev-snapshot-sync", "data": {
                "node-name": "disk", "snapshot-file": "{dir}/t1.qcow2",
                "snapshot-node-name": "t1"}}]}),
        Cmd("transaction", {"actions": [{"type": "bogus", "data": {}}]}),
        Cmd("transaction", {"actions": []}),
    ), images=SINGLE),
    Scenario("stream", (
        qcow2("top", "top.qcow2"),
        Cmd("block-stream", {"job-id": "s0", "device": "nope"}),
        Cmd("block-stream", {"job-id": "s0", "device": "top"}, compare_graph=False),
        WaitEvent("BLOCK_JOB_COMPLETED", {"device": "s0"}, compare_graph=False),
        WaitEvent("JOB_STATUS_CHANGE", {"id": "s0", "status": "null"}),
        Cmd("query-block-jobs", compare_return=True),
        Cmd("query-named-block-nodes", compare_return=True),
    ), images=CHAIN),
    Scenario("commit", (
        qcow2("base", "base.qcow2", **{"read-only": True}),
        qcow2("mid", "mid.qcow2", backing="base", **{"read-only": True}),
        qcow2("top", "top.qcow2", backing="mid"),
        Cmd("block-commit", {"job-id": "c0", "device": "top", "top-node": "mid",
                             "base-node": "base"}, compare_graph=False),
        WaitEvent("JOB_STATUS_CHANGE", {"id": "c0", "status": "null"}),
        Cmd("block-commit", {"job-id": "c2", "device": "nope"}),
    ), images=CHAIN),
    Scenario("commit-validation", (
        qcow2("base", "base.qcow2", **{"read-only": True}),
        qcow2("top", "top.qcow2", backing="base"),
        Cmd("block-commit", {"job-id": "c2", "device": "top", "top-node": "base"}),
    ), images=CHAIN),
    Scenario("commit-active", (
        qcow2("top", "top.qcow2"),
        Cmd("block-commit", {"job-id": "c1", "device": "top"}, compare_graph=False),
        WaitEvent("BLOCK_JOB_READY", {"device": "c1"}, compare_graph=False),
        Cmd("job-complete", {"id": "c1"}, compare_graph=False),
        WaitEvent("JOB_STATUS_CHANGE", {"id": "c1", "status": "null"}),
        Cmd("query-named-block-nodes", {"flat": True}, compare_return=True),
    ), images=CHAIN),
]
