"""The QMP script formats: JSON lines (log export) and qmp-shell, both ways."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any

import pytest

from gui.scripting import (
    Expected,
    ScriptCommand,
    ScriptError,
    ScriptWait,
    dump_jsonl,
    dump_qmp_shell,
    parse_qmp_shell,
    parse_script,
    script_from_traffic,
    to_qmp_shell,
)

ADD = {"driver": "qcow2", "node-name": "top",
       "file": {"driver": "file", "filename": "/tmp/a b/top.qcow2"}, "backing": None,
       "read-only": False, "cache": {"direct": True}}


def test_qmp_shell_round_trip() -> None:
    line = to_qmp_shell("blockdev-add", ADD)
    assert line.startswith("blockdev-add driver=qcow2 node-name=top file={")
    # a top-level null has no qmp-shell spelling: blockdev-add's backing is written as
    # the empty string, which QEMU 7.2 takes for null
    assert parse_qmp_shell(line) == ("blockdev-add", {**ADD, "backing": ""})


def test_qmp_shell_reads_dotted_keys_and_bare_values() -> None:
    cmd, args = parse_qmp_shell(
        'blockdev-add driver=qcow2 node-name=n1 file.driver=file file.filename=/x/y.qcow2 '
        'read-only=true cache.direct=false size=1048576 name="two words" job-id=123abc')
    assert cmd == "blockdev-add"
    # as qmp-shell reads it: a quoted word keeps its quotes
    assert args == {"driver": "qcow2", "node-name": "n1",
                    "file": {"driver": "file", "filename": "/x/y.qcow2"},
                    "read-only": True, "cache": {"direct": False}, "size": 1048576,
                    "name": '"two words"', "job-id": "123abc"}


def test_a_string_qmp_shell_reads_as_a_number_is_written_as_json() -> None:
    """qmp-shell reads ``id=123`` as a number: such a command is written as a JSON line
    after a comment saying why, which replay reads back as the same command."""
    text = to_qmp_shell("job-dismiss", {"id": "123"})
    comment, line = text.splitlines()
    assert comment.startswith("# qmp-shell cannot carry this command")
    assert json.loads(line) == {"execute": "job-dismiss", "arguments": {"id": "123"}}
    (cmd,) = parse_script(text + "\n").steps
    assert (cmd.command, cmd.arguments) == ("job-dismiss", {"id": "123"})


@pytest.mark.parametrize("bad", ["blockdev-add driver", "x a=1 a=2", "x a=1 a.b=2"])
def test_qmp_shell_rejects_malformed_lines(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_qmp_shell(bad)


def test_jsonl_replies_become_expectations_and_job_events_become_waits() -> None:
    text = "\n".join(json.dumps(m) for m in [
        {"QMP": {"version": {}, "capabilities": []}},
        {"execute": "blockdev-add", "arguments": {"driver": "null-co", "node-name": "n"},
         "id": 5},
        {"return": {}, "id": 5},
        {"execute": "block-stream", "arguments": {"job-id": "s", "device": "n"}},
        {"event": "JOB_STATUS_CHANGE", "data": {"id": "s", "status": "created"}},
        {"event": "JOB_STATUS_CHANGE", "data": {"id": "s", "status": "running"}},
        {"return": {}},
        {"event": "JOB_STATUS_CHANGE", "data": {"id": "s", "status": "concluded"}},
        {"event": "JOB_STATUS_CHANGE", "data": {"id": "s", "status": "null"}},
        {"execute": "blockdev-del", "arguments": {"node-name": "nope"}},
        {"error": {"class": "GenericError",
                   "desc": "Failed to find node with node-name='nope'"}},
        {"wait": {"job": "j2", "until": "ready", "timeout": 5}},
    ])
    script = parse_script(text, "rec.jsonl")
    assert script.steps == (
        ScriptCommand("blockdev-add", {"driver": "null-co", "node-name": "n"}, Expected(), 2),
        ScriptCommand("block-stream", {"job-id": "s", "device": "n"}, Expected(), 4),
        ScriptWait("s", ("null",), line=10),
        ScriptCommand("blockdev-del", {"node-name": "nope"},
                      Expected("GenericError", "Failed to find node with node-name='nope'"),
                      10),
        ScriptWait("j2", ("ready",), 5.0, 12),
    )
    # and back: dumping and parsing again keeps the steps
    again = parse_script(dump_jsonl(script))
    assert [(type(s), getattr(s, "command", None)) for s in again.steps] == [
        (type(s), getattr(s, "command", None)) for s in script.steps]
    assert again.steps[3].expected == script.steps[3].expected


def test_qmp_shell_directives() -> None:
    text = ("# a comment\n"
            "block-commit job-id=c device=top\n"
            "# wait for job c to become ready\n"
            "job-complete id=c\n"
            "# wait for job c to become null\n"
            "blockdev-del node-name=x\n"
            "# expect error: Failed to find node with node-name='x'\n"
            '{"execute": "query-version"}\n')
    script = parse_script(text)
    kinds = [(type(s).__name__, getattr(s, "command", getattr(s, "until", None)))
             for s in script.steps]
    assert kinds == [("ScriptCommand", "block-commit"), ("ScriptWait", ("ready",)),
                     ("ScriptCommand", "job-complete"), ("ScriptWait", ("null",)),
                     ("ScriptCommand", "blockdev-del"), ("ScriptCommand", "query-version")]
    assert script.steps[4].expected == Expected(None, "Failed to find node with node-name='x'")
    # writing qmp-shell and reading it back gives the same steps (line numbers aside)
    def strip(steps: tuple) -> list:
        return [dataclasses.replace(s, line=None) for s in steps]

    assert strip(parse_script(dump_qmp_shell(script)).steps) == strip(script.steps)


def test_bad_json_line_names_the_line() -> None:
    with pytest.raises(ScriptError, match=r"rec.jsonl:2: not JSON"):
        parse_script('{"execute": "a"}\n{"execute": \n', "rec.jsonl")


@dataclass
class Entry:
    direction: str
    message: dict[str, Any]
    background: bool = False


def test_script_from_traffic_skips_background_and_queries() -> None:
    entries = [
        Entry("received", {"QMP": {}}),
        Entry("sent", {"execute": "qmp_capabilities", "id": "1"}),
        Entry("received", {"return": {}, "id": "1"}),
        Entry("sent", {"execute": "x-debug-query-block-graph", "id": "2"}, True),
        Entry("received", {"return": {"nodes": []}, "id": "2"}, True),
        Entry("sent", {"execute": "query-jobs", "id": "3"}),
        Entry("received", {"return": [], "id": "3"}),
        Entry("sent", {"execute": "blockdev-add", "arguments": {"driver": "null-co",
                                                                 "node-name": "n"}, "id": "4"}),
        Entry("received", {"return": {}, "id": "4"}),
    ]
    script = script_from_traffic(entries)
    assert [s.command for s in script.commands] == ["blockdev-add"]
    assert script.commands[0].expected == Expected()


def test_export_traffic_writes_a_replayable_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from gui.scripting import export_traffic, load_script

    entries = [
        Entry("sent", {"execute": "blockdev-del", "arguments": {"node-name": "x"}, "id": 1}),
        Entry("received", {"error": {"class": "GenericError",
                                     "desc": "Failed to find node with node-name='x'"},
                           "id": 1}),
    ]
    for name in ("log.jsonl", "log.qmp"):
        export_traffic(entries, tmp_path / name)
        (cmd,) = load_script(tmp_path / name).steps
        assert cmd.command == "blockdev-del" and cmd.arguments == {"node-name": "x"}
        assert cmd.expected.error == "Failed to find node with node-name='x'"
    assert (tmp_path / "log.qmp").read_text().startswith("blockdev-del node-name=x\n# expect")


def test_what_the_log_dock_copies_reads_back() -> None:
    """The QMP log's Copy as qmp-shell writes with the one writer: the line reads back as
    the command that was sent."""
    from gui.widgets.qmp_log import qmp_shell_line

    message = {"execute": "blockdev-reopen", "arguments": {"options": [
        {"driver": "qcow2", "node-name": "top", "backing": None,
         "file": {"driver": "file", "filename": "/tmp/a b.qcow2"}}]}}
    line = qmp_shell_line(message)
    assert parse_qmp_shell(line) == ("blockdev-reopen", message["arguments"])


def test_a_copied_log_with_negotiation_and_ids_loads() -> None:
    """What the QMP log's Copy JSON gives: every visible message, ids, the greeting."""
    text = "\n".join(json.dumps(m) for m in [
        {"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": []}},
        {"execute": "qmp_capabilities", "id": "__qmp#00000"},
        {"return": {}, "id": "__qmp#00000"},
        {"execute": "job-dismiss", "arguments": {"id": "j"}, "id": "__qmp#00007"},
        {"timestamp": {"seconds": 1, "microseconds": 2}, "event": "JOB_STATUS_CHANGE",
         "data": {"status": "null", "id": "j"}},
        {"return": {}, "id": "__qmp#00007"},
    ])
    script = parse_script(text)
    assert script.steps == (ScriptCommand("job-dismiss", {"id": "j"}, Expected(), 4),
                            ScriptWait("j", ("null",), line=7))


async def test_job_watcher_reports_failure_before_the_awaited_status() -> None:
    from gui.scripting.peer import JobWatcher, PeerJobError

    w = JobWatcher()
    for status in ("created", "running", "aborting"):
        await w.on_event({"event": "JOB_STATUS_CHANGE", "data": {"id": "s", "status": status}})
    await w.on_event({"event": "BLOCK_JOB_COMPLETED",
                      "data": {"device": "s", "error": "Input/output error"}})
    for status in ("concluded", "null"):
        await w.on_event({"event": "JOB_STATUS_CHANGE", "data": {"id": "s", "status": status}})
    with pytest.raises(PeerJobError, match="Input/output error"):
        await w.wait("s", ["null"], 1.0)
    # a new job with the same id starts a fresh history
    await w.on_event({"event": "JOB_STATUS_CHANGE", "data": {"id": "s", "status": "created"}})
    await w.on_event({"event": "JOB_STATUS_CHANGE", "data": {"id": "s", "status": "ready"}})
    assert await w.wait("s", ["ready"], 1.0) == "ready"
    with pytest.raises(PeerJobError, match="did not become null"):
        await w.wait("s", ["null"], 0.05)
