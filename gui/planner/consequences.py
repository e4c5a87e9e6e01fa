"""What an edit means for those who read the graph: each reader's chain and data.

A plan says what will be sent; its consequences say what that does to each *reader* — a
block backend (a VM's disk, an export) or, where nothing is attached, a node at the top
of a chain: which layers join or leave the chain it reads, in how many bytes it reads
different data afterwards (which layer's data is no longer read there, and what is read
instead), which nodes QEMU frees because nothing holds them any more, and which image
files are written.

Byte counts come from each layer's own allocation (the ranges the layer itself
allocates, as data or as zeros), given by an :data:`AllocationSource` — the editor reads
the image files on this machine (:mod:`gui.executor.allocation`). A reader goes through
the layers of its chain top first and gets each offset from the first layer that
allocates it; past the end of a layer it reads zeros — what ``qemu-img map`` reports as
the depth of each range. When a layer's allocation cannot be had, the counts of every
reader through it are *unknown*, and said to be: never guessed.

Stream and commit copy data between layers without changing what their own chain reads.
A copied range keeps the name of the layer its data came from (its *origin*), so a
reader whose data moved but did not change is not told that it changed — while the
other overlays of a base that a commit writes into are.

Readers and their layers are found by :mod:`gui.planner.readers`, ranges resolved through
a chain by :mod:`gui.planner.ranges`. Pure: no Qt and no I/O of its own (the allocation
source does the reading). The
editor's preview and ``blockgraph plan`` print the same :meth:`Consequences.lines`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from engine.graph.drivers import BACKING_DRIVERS
from engine.graph.snapshot import BLOCK_BACKEND, BLOCK_NODE, EdgeInfo, GraphSnapshot, NodeInfo
from gui.planner.context import PlanContext
from gui.planner.intents import (
    LINK_INTENTS,
    MEDIA_INTENTS,
    ChangeMedium,
    Commit,
    Delete,
    DetachBacking,
    ExternalSnapshot,
    SetBacking,
    Stream,
)
from gui.planner.plan import Plan
from gui.planner.planner import check_plan
from gui.planner.preflight import root_above
from gui.planner.ranges import Run, laid_over, normal_runs, origin_changes, resolve
from gui.planner.readers import (
    freed_nodes,
    image_path,
    layers_below,
    layers_from,
    reader_label,
    readers,
    without,
)
from gui.planner.simulate import simulate

#: (start, end): a byte range, end excluded
Range = tuple[int, int]
#: the ranges a node allocates itself, read from wherever it can be (None: unknown)
AllocationSource = Callable[[GraphSnapshot, str], Sequence[Range] | None]


# -- results -----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ReaderChange:
    """What changes for one reader (a backend, or a top-level node nothing is attached to)."""

    key: str
    label: str
    #: a backend: a VM's disk or an export (else a node nothing is attached to)
    attached: bool
    #: its layers of data, top first, before and after the edit
    before: tuple[str, ...]
    after: tuple[str, ...]
    #: bytes in which it reads different data afterwards; None when unknown
    changed: int | None = 0
    #: (layer, bytes): data it no longer reads, by the layer it came from
    hidden: tuple[tuple[str, int], ...] = ()
    #: (layer or None for zeros, bytes): what it reads there instead
    revealed: tuple[tuple[str | None, int], ...] = ()
    #: why the counts are unknown
    unknown: str = ""

    @property
    def joined(self) -> tuple[str, ...]:
        return tuple(k for k in self.after if k not in self.before)

    @property
    def left(self) -> tuple[str, ...]:
        return tuple(k for k in self.before if k not in self.after)

    @property
    def content_changes(self) -> bool | None:
        """True when it reads different data afterwards, None when that is unknown."""
        return None if self.changed is None else self.changed > 0


@dataclass(frozen=True)
class Consequences:
    """Everything an edit changes for the graph's readers (see the module docstring)."""

    readers: tuple[ReaderChange, ...] = ()
    #: nodes QEMU frees: nothing holds them after the edit and no monitor added them
    freed: tuple[str, ...] = ()
    #: image files the edit creates or writes
    written: tuple[str, ...] = ()
    #: other facts worth knowing (an image header that still names the old backing…)
    notes: tuple[str, ...] = ()
    #: the graph as the edit leaves it (freed nodes gone), where it can be told exactly
    after: GraphSnapshot | None = field(default=None, compare=False)

    @property
    def content_changes(self) -> list[ReaderChange]:
        """Readers that read (or may read) different data afterwards."""
        return [r for r in self.readers if r.content_changes is not False]

    @property
    def attached_changes(self) -> list[ReaderChange]:
        """Backends (VM disks, exports) that read (or may read) different data."""
        return [r for r in self.content_changes if r.attached]

    def lines(self) -> list[str]:
        """The consequences as plain lines (indented details under each reader)."""
        out: list[str] = []
        for r in self.readers:
            what = "" if r.attached else " (nothing attached)"
            if r.changed is None:
                head = (f"{r.label}{what}: may read from other layers — how much is "
                        f"unknown ({r.unknown})")
            elif r.changed:
                head = f"{r.label}{what}: reads {size_text(r.changed)} from other layers"
            else:
                head = f"{r.label}{what}: reads the same data"
            out.append(head)
            if r.left:
                out.append(f"  leaves its chain: {', '.join(r.left)}")
            if r.joined:
                out.append(f"  joins its chain: {', '.join(r.joined)}")
            if r.hidden:
                out.append("  no longer read: " + ", ".join(
                    f"{size_text(n)} of {layer}" for layer, n in r.hidden))
            if r.revealed:
                out.append("  read instead: " + ", ".join(
                    f"{size_text(n)} " + (f"of {layer}" if layer else "of zeros")
                    for layer, n in r.revealed))
        if not self.readers:
            out.append("No VM disk, export or chain reads different data.")
        out.append("Freed by QEMU (nothing holds them any more): "
                   + (", ".join(self.freed) if self.freed else "none"))
        out.append("Image files written: " + (", ".join(self.written) if self.written
                                              else "none"))
        out.extend(self.notes)
        return out


def size_text(n: int) -> str:
    """1572864 -> '1.5 MiB' (binary units, as qemu-img prints them)."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            if unit == "B":
                return f"{n} B"
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"  # pragma: no cover - the loop always returns


def danger_text(label: str, changed: int | None, state: str) -> str:
    """The review's warning for a disk or export whose data an edit changes under it."""
    amount = "an unknown amount" if changed is None else size_text(changed)
    if label.startswith("export "):
        return (f"{label} is an export: its clients read other data in {amount} as soon "
                "as this is sent.")
    if state == "running":
        return (f"{label} is a running VM's disk: the guest reads other data in {amount} "
                "as soon as this is sent — under a mounted file system that can corrupt it.")
    if state:
        return (f"{label} is the disk of a VM that is {state}: the guest will read other "
                f"data in {amount} when it runs.")
    return (f"{label} is attached (a VM's disk or an export; whether it is in use is not "
            f"known): it reads other data in {amount} as soon as this is sent.")


def dangers(found: Consequences, intent: Any, state: str) -> list[str]:
    """The warnings for the backends whose data an edit changes under them; ``state`` is
    the VM's run state (``query-status``), "" when the peer has none. A medium change
    warns of nothing: a new medium is what the user asks the drive to show."""
    if isinstance(intent, MEDIA_INTENTS):
        return []
    return [danger_text(r.label, r.changed, state) for r in found.attached_changes]


# -- the graph after the edit -----------------------------------------------------------

@dataclass
class _Outcome:
    """The graph after an intent, and the data it copies (origin-preserving)."""

    after: GraphSnapshot
    #: layer -> runs copied into it (with their origin), and whether they go over its own
    copied: dict[str, tuple[list[Run], bool]] = field(default_factory=dict)
    #: layers that are new and empty (a snapshot's overlay)
    empty: set[str] = field(default_factory=set)
    written: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    exact: bool = True


def _move_parents(graph: GraphSnapshot, old: str, new: str,
                  extra_nodes: Iterable[NodeInfo] = (),
                  extra_edges: Iterable[EdgeInfo] = ()) -> GraphSnapshot:
    """``graph`` with every non-job parent link of ``old`` moved to ``new``."""
    edges = [replace(e, child=new) if e.child == old and not e.parent.startswith("job:")
             else e for e in graph.edges]
    return GraphSnapshot([*graph.nodes.values(), *extra_nodes], [*edges, *extra_edges])


def _outcome(graph: GraphSnapshot, intent: Any) -> _Outcome | None:
    """The graph an intent leaves (None: it changes what nobody reads)."""
    intents = list(intent) if isinstance(intent, tuple | list) else [intent]
    if intents and all(isinstance(i, LINK_INTENTS) for i in intents):
        out = _Outcome(simulate(graph, intents))
        out.notes = [n for i in intents if (n := _header_note(graph, i))]
        return out
    if intents and all(isinstance(i, ExternalSnapshot) for i in intents):
        return _snapshots(graph, intents)
    if len(intents) != 1:
        return None
    one = intents[0]
    if isinstance(one, Stream):
        return _stream(graph, one)
    if isinstance(one, Commit):
        return _commit(graph, one)
    if isinstance(one, ChangeMedium):
        return _medium(graph, one)
    return None


def _snapshots(graph: GraphSnapshot, intents: Sequence[ExternalSnapshot]) -> _Outcome:
    after, empty, written = graph, set(), []
    for i in intents:
        node = graph.nodes[i.node]
        overlay = NodeInfo(key=i.overlay, kind=BLOCK_NODE, name=i.overlay, driver="qcow2",
                           filename=i.filename, virtual_size=node.virtual_size,
                           header_backing=node.filename)
        after = _move_parents(after, i.node, i.overlay, [overlay],
                              [EdgeInfo(i.overlay, i.node, "backing")])
        empty.add(i.overlay)
        written.append(i.filename)
    return _Outcome(after, empty=empty, written=written, exact=False)


def _stream(graph: GraphSnapshot, intent: Stream) -> _Outcome:
    link = SetBacking(intent.node, intent.base) if intent.base else DetachBacking(intent.node)
    out = _Outcome(simulate(graph, [link]), exact=False)
    out.copied[intent.node] = ([], False)   # filled once allocations are known
    out.written.append(image_path(graph, intent.node))
    return out


def _commit(graph: GraphSnapshot, intent: Commit) -> _Outcome:
    chain = layers_below(graph, intent.top)
    base = intent.base if intent.base is not None else (chain[-1] if chain else None)
    if base is None:
        return _Outcome(graph, exact=False)
    device = root_above(graph, intent.top)
    if device == intent.top:      # active commit: the top's users move to the base
        after = _move_parents(graph, intent.top, base)
        out = _Outcome(after, exact=False)
    else:
        overlay = next(e.parent for e in graph.parents(intent.top) if e.role == "backing")
        out = _Outcome(simulate(graph, [SetBacking(overlay, base)]), exact=False)
        out.written.append(image_path(graph, overlay))    # its header names the base now
    out.copied[base] = ([], True)
    out.written.insert(0, image_path(graph, base))
    return out


def _medium(graph: GraphSnapshot, intent: ChangeMedium) -> _Outcome | None:
    backend = f"backend:{intent.device}"
    if backend not in graph.nodes:
        return None
    edges = [e for e in graph.edges if not (e.parent == backend and e.role == "root")]
    nodes = list(graph.nodes.values())
    if intent.filename is not None:
        medium = NodeInfo(key="(new medium)", kind=BLOCK_NODE, name="(new medium)",
                          driver=intent.format, filename=intent.filename)
        nodes.append(medium)
        edges.append(EdgeInfo(backend, medium.key, "root"))
    return _Outcome(GraphSnapshot(nodes, edges), exact=False)


def _header_note(graph: GraphSnapshot, intent: Any) -> str:
    """Say so when a reopen leaves the image header naming another backing file."""
    node = graph.nodes.get(intent.node)
    if node is None or not node.header_backing or node.driver not in BACKING_DRIVERS:
        return ""
    if isinstance(intent, SetBacking):
        target = graph.nodes.get(intent.backing)
        new_file = image_path(graph, intent.backing) if target is not None else ""
        if new_file and _same_path(node.filename, node.header_backing, new_file):
            return ""
        return (f"The image header of {intent.node} still names {node.header_backing}: "
                "blockdev-reopen does not rewrite it, so opened again (a restart) the "
                "image is backed by that file.")
    if isinstance(intent, DetachBacking):
        return (f"The image header of {intent.node} still names {node.header_backing}: "
                "opened again (a restart), the image is backed by it again.")
    return ""


def _same_path(overlay: str, header: str, candidate: str) -> bool:
    if overlay.startswith("json:") or candidate.startswith("json:"):
        return False
    resolved = header if os.path.isabs(header) else os.path.join(os.path.dirname(overlay),
                                                                  header)
    return os.path.normpath(resolved) == os.path.normpath(candidate)


# -- putting it together ---------------------------------------------------------------------

class _Maps:
    """Layers' own runs, read once each from the allocation source."""

    def __init__(self, source: AllocationSource) -> None:
        self.source = source
        self.cache: dict[tuple[int, str], list[Run] | None] = {}
        self.failed: dict[str, str] = {}

    def own(self, graph: GraphSnapshot, key: str) -> list[Run] | None:
        slot = (id(graph), key)
        if slot not in self.cache:
            try:
                ranges = self.source(graph, key)
            except Exception as exc:  # the source says why a map cannot be had
                ranges = None
                self.failed[key] = str(exc)
            self.cache[slot] = (None if ranges is None
                                else normal_runs((s, e, key) for s, e in ranges))
        return self.cache[slot]


def _size(graph: GraphSnapshot, key: str) -> int:
    return graph.nodes[key].virtual_size or 0


def _chain_runs(graph: GraphSnapshot, chain: Sequence[str], maps: _Maps, out: _Outcome | None,
                origin_graph: GraphSnapshot) -> list[tuple[int, Sequence[Run]]] | str:
    """(size, runs) per layer of ``chain`` on ``graph``, or the name of a layer whose
    allocation is unknown."""
    layers: list[tuple[int, Sequence[Run]]] = []
    for key in chain:
        if out is not None and key in out.empty:
            layers.append((_size(graph, key), []))
            continue
        own = maps.own(origin_graph if key in origin_graph.nodes else graph, key)
        if own is None:
            return key
        runs: Sequence[Run] = own
        if out is not None and key in out.copied:
            copied, over = out.copied[key]
            runs = laid_over(copied, own) if over else laid_over(own, copied)
        size = _size(graph, key) or (max((e for _, e, _ in own), default=0))
        layers.append((size, runs))
    return layers


def _fill_copies(before: GraphSnapshot, intent: Any, out: _Outcome, maps: _Maps) -> str:
    """Work out what stream and commit copy (with origins); the unknown layer, if any."""
    one = intent[0] if isinstance(intent, tuple | list) and len(intent) == 1 else intent
    if isinstance(one, Stream):
        chain = layers_below(before, one.node)
        source = chain[: chain.index(one.base)] if one.base in chain else chain
        node = one.node
    elif isinstance(one, Commit):
        below = layers_below(before, one.top)
        base = one.base if one.base is not None else (below[-1] if below else None)
        if base is None:
            return ""
        source = [one.top, *below[: below.index(base)]] if base in below else [one.top]
        node = base
    else:
        return ""
    layers = _chain_runs(before, source, maps, None, before)
    if isinstance(layers, str):
        return layers
    size = _size(before, node)
    copied = [r for r in resolve(layers, 0, size) if r[2] is not None]
    out.copied[node] = (copied, out.copied[node][1])
    return ""


def consequences_of(ctx: PlanContext, plan: Plan, source: AllocationSource,
                    labels: Mapping[str, str] | None = None) -> Consequences:
    """The consequences of running ``plan`` on ``ctx.snapshot`` (see the module docstring).

    ``labels`` names readers better than the graph can (an export's id, a device's
    QOM path shortened); the rest are named by :func:`reader_label`.
    """
    before = ctx.snapshot
    intent = plan.intent
    one = intent[0] if isinstance(intent, tuple | list) and len(intent) == 1 else intent
    out = _outcome(before, intent)
    if out is None:
        gone = [k for k in plan.expected.absent if k in before.nodes]
        after = without(before, gone)
        freed = (*gone, *(k for k in freed_nodes(before, after, ctx.known_options)
                          if k not in gone))
        notes = (("The image files stay on disk: blockdev-del writes nothing to them.",)
                 if isinstance(one, Delete) else ())
        return Consequences(freed=freed, notes=notes, after=None)
    maps = _Maps(source)
    unknown_copy = _fill_copies(before, one, out, maps)
    freed = freed_nodes(before, out.after, ctx.known_options)
    for key in plan.expected.absent:          # what the plan itself says goes away
        if key not in freed and key in before.nodes:
            freed += (key,)
    after = without(out.after, freed)
    changes: list[ReaderChange] = []
    old_readers, new_readers = readers(before), readers(after)
    for key, root in old_readers.items():
        chain_before = tuple(layers_from(before, root))
        if key not in new_readers and key in after.nodes:
            continue        # a top node that now backs another: its reader says it
        new_root = new_readers.get(key)
        chain_after = tuple(layers_from(after, new_root))
        touched = chain_before != chain_after or any(k in out.copied for k in chain_after)
        if not touched:
            continue
        node = before.nodes[key]
        label = (labels or {}).get(key) or reader_label(before, key)
        change = ReaderChange(key, label, node.kind == BLOCK_BACKEND, chain_before,
                              chain_after)
        changes.append(_count(change, before, after, out, maps, unknown_copy))
    return Consequences(readers=tuple(changes), freed=freed,
                        written=tuple(p for p in out.written if p),
                        notes=tuple(out.notes), after=after if out.exact else None)


def _count(change: ReaderChange, before: GraphSnapshot, after: GraphSnapshot, out: _Outcome,
           maps: _Maps, unknown_copy: str) -> ReaderChange:
    """Fill in the byte counts of one reader (or say why they are unknown)."""
    if unknown_copy and any(k in out.copied for k in change.after):
        return replace(change, changed=None, unknown=_why(unknown_copy, before, maps))
    old = _chain_runs(before, change.before, maps, None, before)
    new = _chain_runs(after, change.after, maps, out, before)
    for layers in (old, new):
        if isinstance(layers, str):
            graph = before if layers in before.nodes else after
            return replace(change, changed=None, unknown=_why(layers, graph, maps))
    assert not isinstance(old, str) and not isinstance(new, str)
    size_before = old[0][0] if old else 0
    size_after = new[0][0] if new else 0
    end = max(size_before, size_after)
    view_before = [r for r in resolve(old, 0, size_before) if r[2] is not None] if old else []
    view_after = [r for r in resolve(new, 0, size_after) if r[2] is not None] if new else []
    if not end:
        return change
    changed, hidden, revealed = origin_changes(view_before, view_after)
    return replace(change, changed=changed,
                   hidden=tuple(sorted(hidden.items(), key=lambda kv: (-kv[1], kv[0]))),
                   revealed=tuple(sorted(revealed.items(),
                                         key=lambda kv: (-kv[1], kv[0] or ""))))


def _why(key: str, graph: GraphSnapshot, maps: _Maps) -> str:
    reason = maps.failed.get(key)
    path = image_path(graph, key) if key in graph.nodes else key
    return f"the allocation of {key} ({path}) cannot be read here" + (
        f": {reason}" if reason else "")


def undo_refusals(ctx: PlanContext, plan: Plan, consequences: Consequences) -> list[Exception]:
    """Why ``plan``'s inverse would be refused on the graph the plan leaves, before it
    runs ([]: nothing known against it). Only where that graph is known exactly (link
    and flag edits); other edits are checked on the real graph once they ran."""
    if plan.inverse is None or consequences.after is None:
        return []
    after_ctx = PlanContext(consequences.after, ctx.reopen_command,
                            {**ctx.known_options, **plan.reopened}, ctx.commands)
    return check_plan(after_ctx, plan.inverse)
