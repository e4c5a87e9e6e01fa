"""Plans: what an edit will send, what must hold first, and what the graph looks like after.

A plan is data. Its ``steps`` are QMP commands and waits for jobs (``blockdev-create``,
stream and commit run as jobs; the plan waits for them before the next command). The
``expected`` structure lists the facts the real graph must show after execution; the
session re-reads the graph and reports every fact that does not hold. ``inverse`` is
the plan that undoes this one, or None with ``irreversible`` saying why.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.graph.snapshot import GraphSnapshot
from gui.scripting.qmp_shell import format_command, format_line, format_wait


@dataclass(frozen=True, slots=True)
class QmpCommand:
    """One QMP command as sent (``{"execute": command, "arguments": arguments}``)."""

    command: str
    arguments: Mapping[str, Any] | None = None

    def message(self) -> dict[str, Any]:
        msg: dict[str, Any] = {"execute": self.command}
        if self.arguments is not None:
            msg["arguments"] = _plain(self.arguments)
        return msg

    def qmp_shell(self) -> str:
        """The command in qmp-shell syntax, as qmp-shell reads it back
        (:func:`gui.scripting.qmp_shell.format_line`: a commented JSON line when that
        syntax cannot carry an argument, such as a file name with a space)."""
        return format_line(self.command, self.arguments)


@dataclass(frozen=True, slots=True)
class WaitJob:
    """Wait until job ``job_id`` reaches one of ``until``; then dismiss it if ``dismiss``.

    Fails the plan when the job ends with an error or is cancelled.
    """

    job_id: str
    until: tuple[str, ...] = ("null",)
    dismiss: bool = False

    def qmp_shell(self) -> str:
        """A wait directive (qmp-shell itself does not wait: a comment for a person),
        then the dismissal."""
        text = format_wait(self.job_id, self.until)
        if self.dismiss:
            text += "\n" + format_command("job-dismiss", {"id": self.job_id})
        return text


Step = QmpCommand | WaitJob


@dataclass(frozen=True, slots=True)
class EdgeFact:
    """After the plan, ``parent``'s child in ``role`` is ``child`` (None: no such child)."""

    parent: str
    role: str
    child: str | None


@dataclass(frozen=True, slots=True)
class Expectation:
    """The structural facts a plan promises about the graph after it ran."""

    edges: tuple[EdgeFact, ...] = ()
    present: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    read_only: tuple[tuple[str, bool], ...] = ()

    def mismatches(self, graph: GraphSnapshot) -> list[str]:
        """Every promised fact that ``graph`` contradicts, as a sentence."""
        out: list[str] = []
        for key in self.present:
            if key not in graph.nodes:
                out.append(f"node {key} is missing")
        for key in self.absent:
            if key in graph.nodes:
                out.append(f"node {key} still exists")
        for fact in self.edges:
            if fact.parent not in graph.nodes:
                out.append(f"node {fact.parent} is missing (expected its {fact.role} link)")
                continue
            actual = _through_implicit(graph, graph.child(fact.parent, fact.role))
            if actual != _through_implicit(graph, fact.child):
                out.append(f"{fact.parent}.{fact.role} is {actual or 'nothing'}, "
                           f"expected {fact.child or 'nothing'}")
        for key, ro in self.read_only:
            node = graph.nodes.get(key)
            if node is not None and node.read_only != ro:
                out.append(f"{key} is {'read-only' if node.read_only else 'read-write'}, "
                           f"expected {'read-only' if ro else 'read-write'}")
        return out

    def merged(self, other: Expectation) -> Expectation:
        """Both expectations; facts about the same edge or node from ``other`` win."""
        edges = {(f.parent, f.role): f for f in self.edges}
        edges.update({(f.parent, f.role): f for f in other.edges})
        ro = dict(self.read_only)
        ro.update(other.read_only)
        present = [k for k in self.present if k not in other.absent]
        absent = [k for k in self.absent if k not in other.present]
        return Expectation(
            edges=tuple(edges.values()),
            present=tuple(dict.fromkeys([*present, *other.present])),
            absent=tuple(dict.fromkeys([*absent, *other.absent])),
            read_only=tuple(ro.items()),
        )


def _through_implicit(graph: GraphSnapshot, key: str | None) -> str | None:
    """Skip implicit job filters, as QEMU does when it compares backing children."""
    seen = 0
    while key is not None and key in graph.nodes and graph.nodes[key].implicit and seen < 64:
        key = graph.child(key, "file") or graph.child(key, "backing")
        seen += 1
    return key


@dataclass(frozen=True, slots=True)
class Plan:
    """A planned edit. ``refusals`` non-empty means preflight refused it: do not send."""

    intent: Any
    summary: str
    steps: tuple[Step, ...] = ()
    preconditions: tuple[str, ...] = ()
    expected: Expectation = field(default_factory=Expectation)
    inverse: Plan | None = None
    irreversible: str | None = None
    refusals: tuple[Exception, ...] = ()
    #: allowed by QEMU but worth a confirmation: data the edit drops or changes
    warnings: tuple[str, ...] = ()
    #: options each reopened node will have afterwards (node-name -> BlockdevOptions)
    reopened: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: node-name -> options of nodes this plan adds with blockdev-add
    added: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.refusals

    @property
    def reversible(self) -> bool:
        return self.inverse is not None

    def commands(self) -> list[QmpCommand]:
        return [s for s in self.steps if isinstance(s, QmpCommand)]

    def as_json(self) -> str:
        """Copy-as-JSON: one QMP message per line, exactly what will be sent."""
        return "\n".join(json.dumps(c.message()) for c in self.commands())

    def as_qmp_shell(self) -> str:
        """Copy-as-qmp-shell: one line per command, waits as comments."""
        return "\n".join(s.qmp_shell() for s in self.steps)


def refused(intent: Any, summary: str, reasons: Sequence[Exception]) -> Plan:
    """A plan that must not run; ``reasons`` say why (QEMU's texts)."""
    return Plan(intent=intent, summary=summary, refusals=tuple(reasons),
                irreversible="refused")


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
