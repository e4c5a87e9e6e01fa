"""Scripted QMP: the script file format (record/replay) and the peer scripts run on.

Qt-free. :mod:`gui.scripting.script` reads and writes QMP scripts (JSON lines, which is
also what the QMP log exports, and qmp-shell syntax); :mod:`gui.scripting.peer` is the
small asyncio peer interface tours and replays use, over a :class:`gui.session.Session`;
:mod:`gui.scripting.signature` describes a graph independently of auto-generated node
names, so graphs from two peers can be compared.
"""

from gui.scripting.script import (
    Expected,
    Script,
    ScriptCommand,
    ScriptError,
    ScriptWait,
    dump_jsonl,
    dump_qmp_shell,
    export_traffic,
    load_script,
    parse_qmp_shell,
    parse_script,
    save_script,
    script_from_traffic,
    to_qmp_shell,
)

__all__ = [
    "Expected",
    "Script",
    "ScriptCommand",
    "ScriptError",
    "ScriptWait",
    "dump_jsonl",
    "dump_qmp_shell",
    "export_traffic",
    "load_script",
    "parse_qmp_shell",
    "parse_script",
    "save_script",
    "script_from_traffic",
    "to_qmp_shell",
]
