"""QMP scripts: a session's edits saved to a file and read back for replay.

A script is a list of :class:`ScriptCommand` (a QMP command, with the outcome it had
when it was recorded, if known) and :class:`ScriptWait` (wait until a job reaches a
status before going on). Two file formats hold it; :func:`load_script` tells them apart.

**JSON lines** (``*.jsonl``; what the QMP log exports). One JSON object per line:

* ``{"execute": "blockdev-add", "arguments": {...}}`` — a command, as on the wire
  (an ``id`` member is ignored; ``qmp_capabilities`` is skipped: each connection
  negotiates for itself);
* ``{"return": ...}`` / ``{"error": {"class": ..., "desc": ...}}`` — the reply the
  *preceding* command got when recorded: replay checks it ended the same way (an error
  must come back with the same ``desc``);
* ``{"event": "JOB_STATUS_CHANGE", "data": {"id": J, "status": S}}`` — a job status
  seen while recording: before the next command, replay waits until job J has reached
  the last such status recorded for it (so a ``job-complete`` is only sent once the job
  is ``ready``, and the script does not end before the job is gone). Other events
  are ignored, and so is the greeting (``{"QMP": ...}``);
* ``{"wait": {"job": J, "until": ["null"], "timeout": 60}}`` — an explicit wait.

So a QMP traffic log written one message per line (sent and received, in order) *is* a
script: :func:`script_from_traffic` builds one from traffic entries (anything with
``direction``, ``message`` and ``background``), leaving out the session's own
background queries, and :func:`dump_jsonl` writes it.

**qmp-shell** (``*.qmp``, anything else that is not JSON lines). One command per line,
``command key=value ...``, read exactly as qmp-shell reads it
(:mod:`gui.scripting.qmp_shell`, which also writes it); ``transaction(`` ... ``)``
blocks too. A line may also be a JSON command object. Comments start with ``#``; two
are directives:

* ``# wait for job J to become S1/S2`` (what the planner's copy-as-qmp-shell writes);
* ``# expect error: TEXT`` — the preceding command must fail with desc TEXT.

Read-only queries (``query-*``, ``x-debug-query-*``) are kept when written explicitly
but :func:`script_from_traffic` skips them: they do not change the graph.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from gui.scripting.qmp_shell import (
    EXPECT_RE,
    WAIT_RE,
    QmpShellError,
    format_expected_error,
    format_line,
    format_wait,
    parse_command,
    parse_lines,
)

#: job statuses worth waiting for (transient ones are implied by these)
SETTLED_STATUSES = frozenset({"ready", "standby", "paused", "pending", "concluded", "null"})
READ_ONLY_PREFIXES = ("query-", "x-debug-query-")


class ScriptError(ValueError):
    """A script file could not be read; says which line and why."""

    def __init__(self, message: str, line: int | None = None, source: str = "") -> None:
        self.line = line
        self.source = source
        where = f"{source}:{line}: " if line is not None else (f"{source}: " if source else "")
        super().__init__(f"{where}{message}")


@dataclass(frozen=True, slots=True)
class Expected:
    """How a command ended when recorded: ``error`` None means it succeeded."""

    error_class: str | None = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class ScriptCommand:
    command: str
    arguments: Mapping[str, Any] | None = None
    expected: Expected | None = None
    line: int | None = None

    def message(self) -> dict[str, Any]:
        msg: dict[str, Any] = {"execute": self.command}
        if self.arguments is not None:
            msg["arguments"] = _plain(self.arguments)
        return msg

    def qmp_shell(self) -> str:
        return to_qmp_shell(self.command, self.arguments)


@dataclass(frozen=True, slots=True)
class ScriptWait:
    job: str
    until: tuple[str, ...] = ("null",)
    timeout: float = 120.0
    line: int | None = None


Step = ScriptCommand | ScriptWait


@dataclass(frozen=True)
class Script:
    steps: tuple[Step, ...] = ()
    source: str = ""
    notes: tuple[str, ...] = field(default=(), compare=False)

    @property
    def commands(self) -> list[ScriptCommand]:
        return [s for s in self.steps if isinstance(s, ScriptCommand)]


# -- qmp-shell syntax (gui.scripting.qmp_shell reads and writes it) --------------------

def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def to_qmp_shell(command: str, arguments: Mapping[str, Any] | None) -> str:
    """``command key=value ...`` (:func:`gui.scripting.qmp_shell.format_line`: a JSON line
    after a comment when qmp-shell syntax cannot carry the command)."""
    return format_line(command, arguments)


def parse_qmp_shell(line: str) -> tuple[str, dict[str, Any]]:
    """Parse one qmp-shell command line into (command, arguments)."""
    return parse_command(line)


# -- loading ----------------------------------------------------------------------------

def load_script(path: str | Path) -> Script:
    """Read a script file in either format (JSON lines when every line is JSON)."""
    text = Path(path).read_text(encoding="utf-8")
    return parse_script(text, str(path))


def parse_script(text: str, source: str = "") -> Script:
    lines = [ln for ln in text.splitlines() if ln.strip()]
    is_jsonl = bool(lines) and all(ln.lstrip().startswith("{") for ln in lines)
    return _parse_jsonl(text, source) if is_jsonl else _parse_shell(text, source)


def _parse_jsonl(text: str, source: str) -> Script:
    steps: list[Step] = []
    pending_jobs: dict[str, str] = {}   # job id -> last settled status since the last command
    last_cmd: int | None = None          # index in steps of the last command without outcome
    skip_reply = False

    def flush_waits(lineno: int) -> None:
        for job, status in pending_jobs.items():
            steps.append(ScriptWait(job, (status,), line=lineno))
        pending_jobs.clear()

    for lineno, raw in enumerate(text.splitlines(), 1):
        if not raw.strip():
            continue
        try:
            msg = json.loads(raw)
        except ValueError as exc:
            raise ScriptError(f"not JSON: {exc}", lineno, source) from None
        if not isinstance(msg, dict):
            raise ScriptError("each line must be a JSON object", lineno, source)
        if "execute" in msg or "exec-oob" in msg:
            flush_waits(lineno)
            name = msg.get("execute", msg.get("exec-oob"))
            args = msg.get("arguments")
            if not isinstance(name, str) or (args is not None and not isinstance(args, dict)):
                raise ScriptError("a command needs a string 'execute' and object 'arguments'",
                                  lineno, source)
            if name == "qmp_capabilities":   # negotiation belongs to the connection
                last_cmd = None
                skip_reply = True
                continue
            steps.append(ScriptCommand(name, args, None, lineno))
            last_cmd = len(steps) - 1
            skip_reply = False
        elif "return" in msg or "error" in msg:
            if last_cmd is None or skip_reply:
                skip_reply = False
                continue       # a reply to something not in the script (e.g. negotiation)
            cmd = steps[last_cmd]
            assert isinstance(cmd, ScriptCommand)
            err = msg.get("error")
            expected = (Expected(str(err.get("class", "")), str(err.get("desc", "")))
                        if isinstance(err, dict) else Expected())
            steps[last_cmd] = ScriptCommand(cmd.command, cmd.arguments, expected, cmd.line)
            last_cmd = None
        elif msg.get("event") == "JOB_STATUS_CHANGE":
            data = msg.get("data") or {}
            status, job = str(data.get("status", "")), str(data.get("id", ""))
            if job and status in SETTLED_STATUSES:
                pending_jobs[job] = status
        elif "wait" in msg:
            steps.append(_wait_step(msg["wait"], lineno, source))
        # greeting, other events and unknown objects are not part of the script
    flush_waits(len(text.splitlines()) + 1)
    return Script(tuple(steps), source)


def _wait_step(wait: object, lineno: int, source: str) -> ScriptWait:
    """A JSON-lines ``{"wait": {"job": ..., "until": ..., "timeout": ...}}`` step."""
    if not isinstance(wait, dict) or not isinstance(wait.get("job"), str):
        raise ScriptError("'wait' needs an object with a string 'job'", lineno, source)
    until = wait.get("until", ["null"])
    statuses = (until,) if isinstance(until, str) else tuple(str(u) for u in until)
    return ScriptWait(wait["job"], statuses, float(wait.get("timeout", 120.0)), lineno)


def _parse_shell(text: str, source: str) -> Script:
    steps: list[Step] = []
    lines = text.splitlines()
    directives: dict[int, str] = {n: ln.strip() for n, ln in enumerate(lines, 1)
                                  if ln.strip().startswith(("#", "{"))}
    try:
        commands = {n: (c, a) for n, c, a in parse_lines(
            [ln if n not in directives else "" for n, ln in enumerate(lines, 1)])}
    except QmpShellError as exc:
        raise ScriptError(str(exc), None, source) from None
    for lineno in range(1, len(lines) + 1):
        line = directives.get(lineno)
        if line is not None and line.startswith("{"):
            try:
                msg = json.loads(line)
            except ValueError as exc:
                raise ScriptError(f"not JSON: {exc}", lineno, source) from None
            if not isinstance(msg, dict) or not isinstance(msg.get("execute"), str):
                raise ScriptError("a JSON line must be a command object", lineno, source)
            steps.append(ScriptCommand(msg["execute"], msg.get("arguments"), None, lineno))
        elif line is not None:
            m = WAIT_RE.match(line)
            if m:
                steps.append(ScriptWait(m.group(1), tuple(m.group(2).split("/")), line=lineno))
                continue
            m = EXPECT_RE.match(line)
            if m and steps and isinstance(steps[-1], ScriptCommand):
                c = steps[-1]
                steps[-1] = ScriptCommand(c.command, c.arguments,
                                          Expected(None, m.group(1).strip()), c.line)
        elif lineno in commands:
            command, args = commands[lineno]
            steps.append(ScriptCommand(command, args or None, None, lineno))
    return Script(tuple(steps), source)


# -- writing ----------------------------------------------------------------------------

def dump_jsonl(script: Script | Sequence[Step]) -> str:
    """The script as JSON lines (outcomes as reply lines, waits as wait lines)."""
    steps = script.steps if isinstance(script, Script) else tuple(script)
    out: list[str] = []
    for s in steps:
        if isinstance(s, ScriptCommand):
            out.append(json.dumps(s.message()))
            if s.expected is not None:
                if s.expected.ok:
                    out.append(json.dumps({"return": {}}))
                else:
                    out.append(json.dumps({"error": {"class": s.expected.error_class
                                                     or "GenericError",
                                                     "desc": s.expected.error}}))
        else:
            out.append(json.dumps({"wait": {"job": s.job, "until": list(s.until),
                                            "timeout": s.timeout}}))
    return "\n".join(out) + ("\n" if out else "")


def dump_qmp_shell(script: Script | Sequence[Step]) -> str:
    """The script in qmp-shell syntax (waits and expected errors as directive comments)."""
    steps = script.steps if isinstance(script, Script) else tuple(script)
    out: list[str] = []
    for s in steps:
        if isinstance(s, ScriptCommand):
            out.append(s.qmp_shell())
            if s.expected is not None and not s.expected.ok:
                out.append(format_expected_error(str(s.expected.error)))
        else:
            out.append(format_wait(s.job, s.until))
    return "\n".join(out) + ("\n" if out else "")


def save_script(script: Script, path: str | Path) -> None:
    """Write ``script`` to ``path``: qmp-shell for ``*.qmp``/``*.txt``, else JSON lines."""
    path = Path(path)
    text = dump_qmp_shell(script) if path.suffix in (".qmp", ".txt") else dump_jsonl(script)
    path.write_text(text, encoding="utf-8")


def export_traffic(entries: Iterable[TrafficLike], path: str | Path) -> Script:
    """Save a QMP log as a replayable script (what the log dock's export does)."""
    script = script_from_traffic(entries)
    save_script(script, path)
    return script


class TrafficLike(Protocol):
    """What a QMP traffic-log entry offers (``gui.session.TrafficEntry`` does)."""

    @property
    def direction(self) -> str: ...

    @property
    def message(self) -> Mapping[str, Any]: ...

    @property
    def background(self) -> bool: ...


def script_from_traffic(entries: Iterable[TrafficLike], *,
                        include_queries: bool = False) -> Script:
    """Turn a traffic log (sent and received messages, in order) into a script.

    Background traffic (the session's own polls) and, unless ``include_queries``,
    read-only queries are left out, with their replies.
    """
    lines: list[str] = []
    skip_reply = False
    for e in entries:
        msg = e.message
        if e.background:
            continue
        if e.direction == "sent":
            name = str(msg.get("execute", ""))
            if name == "qmp_capabilities" or (
                    not include_queries and name.startswith(READ_ONLY_PREFIXES)):
                skip_reply = True
                continue
            skip_reply = False
            lines.append(json.dumps({k: v for k, v in msg.items() if k != "id"}))
        elif "event" in msg:
            lines.append(json.dumps(dict(msg)))
        elif ("return" in msg or "error" in msg) and not skip_reply:
            lines.append(json.dumps({k: v for k, v in msg.items() if k != "id"}))
        elif "return" in msg or "error" in msg:
            skip_reply = False
    return _parse_jsonl("\n".join(lines), "traffic log")
