"""A libvirt plan: the libvirt calls of an edit, the waits between them, and the chains
it promises, checked afterwards against libvirt's XML and QEMU's graph alike.

:mod:`gui.libvirt.edits` makes these plans, :mod:`gui.libvirt.editor` runs them. Pure.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from engine.graph.snapshot import GraphSnapshot
from engine.offline.domain_xml import DomainDescription
from gui.libvirt.errors import NoLibvirtApi
from gui.libvirt.places import disk_chain_paths
from gui.planner.plan import Expectation, Plan


@dataclass(frozen=True, slots=True)
class LibvirtCall:
    """One call of a ``virDomain`` method; ``virsh`` is the same as a virsh command."""

    api: str
    method: str
    args: tuple[Any, ...]
    virsh: str

    def as_dict(self) -> dict[str, Any]:
        return {"libvirt": self.api, "arguments": list(self.args)}


@dataclass(frozen=True, slots=True)
class WaitBlockJob:
    """Wait for libvirt's block-job event on ``disk`` with a status in ``until``."""

    disk: str
    until: tuple[str, ...] = ("completed",)

    @property
    def virsh(self) -> str:
        return f"# wait for the block job on {self.disk} to become {'/'.join(self.until)}"


@dataclass(frozen=True, slots=True)
class ChainFact:
    """After the plan, ``disk``'s chain is ``paths`` (top first) — in libvirt's XML and in
    QEMU's graph alike."""

    disk: str
    paths: tuple[str, ...]


Step = LibvirtCall | WaitBlockJob


@dataclass(frozen=True, slots=True)
class LibvirtPlan:
    """A planned edit of a libvirt domain. ``refusals`` non-empty: do not run.

    ``passthrough`` is the QMP plan sent through libvirt's passthrough for an edit
    libvirt has no API for; it runs only once the user accepted ``confirmation``.
    """

    intent: Any
    domain: str
    summary: str
    steps: tuple[Step, ...] = ()
    chains: tuple[ChainFact, ...] = ()
    refusals: tuple[Exception, ...] = ()
    warnings: tuple[str, ...] = ()
    irreversible: str | None = None
    passthrough: Plan | None = None
    confirmation: str | None = None
    inverse: None = None

    @property
    def ok(self) -> bool:
        return not self.refusals

    @property
    def reversible(self) -> bool:
        return False

    @property
    def passthrough_possible(self) -> bool:
        return any(isinstance(r, NoLibvirtApi) and r.passthrough for r in self.refusals)

    @property
    def expected(self) -> Expectation:
        return self.passthrough.expected if self.passthrough is not None else Expectation()

    def calls(self) -> list[LibvirtCall]:
        return [s for s in self.steps if isinstance(s, LibvirtCall)]

    def as_virsh(self) -> str:
        """The plan as virsh commands (waits as comments); QMP passthrough as
        ``qemu-monitor-command`` lines."""
        if self.passthrough is not None:
            return "\n".join(f"virsh qemu-monitor-command {self.domain} "
                             f"'{json.dumps(c.message())}'" for c in self.passthrough.commands())
        return "\n".join(s.virsh for s in self.steps)

    def as_json(self) -> str:
        """One libvirt call per line (or the QMP of a passthrough plan)."""
        if self.passthrough is not None:
            return self.passthrough.as_json()
        return "\n".join(json.dumps(c.as_dict()) for c in self.calls())

    def mismatches(self, graph: GraphSnapshot, description: DomainDescription) -> list[str]:
        """Every promised chain that libvirt's XML or QEMU's graph contradicts."""
        out: list[str] = []
        for fact in self.chains:
            disk = description.disk(fact.disk)
            xml_paths = tuple(layer.path for layer in disk.chain) if disk else ()
            if xml_paths != fact.paths:
                out.append(f"libvirt shows {fact.disk} as {_chain_text(xml_paths)}, "
                           f"expected {_chain_text(fact.paths)}")
            qemu_paths = tuple(disk_chain_paths(graph, disk)) if disk else ()
            if qemu_paths != fact.paths:
                out.append(f"QEMU's graph has {fact.disk} as {_chain_text(qemu_paths)}, "
                           f"expected {_chain_text(fact.paths)}")
        if self.passthrough is not None:
            out.extend(self.passthrough.expected.mismatches(graph))
        return out


def _chain_text(paths: Sequence[str]) -> str:
    return " <- ".join(os.path.basename(p) for p in paths) or "empty"
