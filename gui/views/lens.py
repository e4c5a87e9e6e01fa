"""What part of the graph the canvas shows: folded chains, one VM, a filter.

A :class:`Lens` turns the snapshot the peer reported into the snapshot drawn:

* **fold** — a chain of layers (overlays linked by ``backing``, none shared with
  another chain) becomes one summary card, ``vm3: 300 layers`` with the space they
  take together; the links into and out of the chain go to the summary card;
* **focus** — only what one VM (a block backend) uses: its chain down to the base,
  the protocol nodes, and the jobs working on them;
* **filter** — only the nodes whose driver (``driver:throttle``), file
  (``file:/images/vm3``) or job (``job:stream0``) matches, or whose name, driver or
  file contains the text given, with their protocol nodes.

Qt-free and pure: the editor keeps planning and checking edits on the real
snapshot; only the drawing goes through the lens.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from engine.graph.drivers import IMAGE_DRIVERS
from engine.graph.snapshot import BLOCK_BACKEND, BLOCK_NODE, EdgeInfo, GraphSnapshot, NodeInfo

#: the kind of a summary card standing for a folded chain
FOLDED = "folded-chain"
FOLD_PREFIX = "fold:"


def _is_layer(n: NodeInfo) -> bool:
    return n.kind == BLOCK_NODE and n.driver in IMAGE_DRIVERS


def chain_through(snapshot: GraphSnapshot, key: str) -> list[str]:
    """The layers of the chain ``key`` is part of, top first: up while the node is
    the only backing of a single overlay, down while the backing is used by this
    chain alone. A base shared by several chains is not part of any of them."""
    nodes = snapshot.nodes
    if key not in nodes or not _is_layer(nodes[key]):
        return []

    def overlay_of(k: str) -> str | None:
        ups = [e for e in snapshot.parents(k) if e.role == "backing"]
        if len(ups) == 1 and _is_layer(nodes[ups[0].parent]):
            return ups[0].parent
        return None

    if len([e for e in snapshot.parents(key) if e.role == "backing"]) > 1:
        return []  # a shared base
    top = key
    seen = {top}
    while (up := overlay_of(top)) is not None and up not in seen:
        top = up
        seen.add(up)
    chain = [top]
    while True:
        below = snapshot.backing(chain[-1])
        if below is None or below in chain or not _is_layer(nodes[below]):
            break
        if len([e for e in snapshot.parents(below) if e.role == "backing"]) > 1:
            break
        chain.append(below)
    return chain


def _vm_above(snapshot: GraphSnapshot, key: str) -> str:
    """The name of the block backend over ``key`` (through filters), if any."""
    seen: set[str] = set()
    stack = [key]
    while stack:
        k = stack.pop()
        if k in seen:
            continue
        seen.add(k)
        n = snapshot.nodes[k]
        if n.kind == BLOCK_BACKEND:
            return n.name or k
        stack.extend(e.parent for e in snapshot.parents(k))
    return ""


def _protocol_children(snapshot: GraphSnapshot, key: str) -> list[str]:
    """``file`` children used by ``key`` alone (drawn beside it)."""
    out = []
    for e in snapshot.children(key):
        if e.role == "file" and all(p.parent == key for p in snapshot.parents(e.child)) \
                and not snapshot.children(e.child):
            out.append(e.child)
    return out


def fold_key(top: str) -> str:
    return FOLD_PREFIX + top


@dataclass(frozen=True)
class Lens:
    """Folded chains (by their top layer), a focused VM (a backend's key), a filter."""

    folded: frozenset[str] = field(default_factory=frozenset)
    focus: str | None = None
    filter: str = ""

    @property
    def active(self) -> bool:
        return bool(self.folded or self.focus or self.filter.strip())

    def apply(self, snapshot: GraphSnapshot) -> GraphSnapshot:
        """The snapshot to draw."""
        if not self.active:
            return snapshot
        keep: set[str] | None = None
        if self.focus and self.focus in snapshot.nodes:
            keep = _used_by(snapshot, self.focus)
        if self.filter.strip():
            matched = _matching(snapshot, self.filter.strip())
            keep = matched if keep is None else keep & matched
        shown = snapshot
        if keep is not None:
            shown = GraphSnapshot([n for k, n in snapshot.nodes.items() if k in keep],
                                  [e for e in snapshot.edges
                                   if e.parent in keep and e.child in keep])
        for top in sorted(self.folded):
            shown = _fold(shown, top)
        return shown

    def shown_key(self, snapshot: GraphSnapshot, key: str) -> str | None:
        """Where the node ``key`` of the real graph is on screen: itself, the summary
        card of the folded chain it is in, or None when the lens hides it."""
        for top in self.folded:
            members = chain_through(snapshot, top)
            if key in members or any(key in _protocol_children(snapshot, m)
                                     for m in members):
                return fold_key(top) if len(members) >= 2 else key
        shown = self.apply(snapshot)
        return key if key in shown.nodes else None


def _used_by(snapshot: GraphSnapshot, backend: str) -> set[str]:
    """The nodes a VM uses: everything below its backend, and jobs on those nodes."""
    keep = {backend}
    stack = [backend]
    while stack:
        k = stack.pop()
        for e in snapshot.children(k):
            if e.child not in keep:
                keep.add(e.child)
                stack.append(e.child)
    for k, n in snapshot.nodes.items():
        if n.kind == "block-job" and any(e.child in keep for e in snapshot.children(k)):
            keep.add(k)
    return keep


def _matching(snapshot: GraphSnapshot, spec: str) -> set[str]:
    """Nodes a filter matches, with the protocol nodes beside them."""
    what, _, value = spec.partition(":")
    what = what.strip().lower()
    value = value.strip()
    matched: set[str] = set()
    if what == "driver" and value:
        matched = {k for k, n in snapshot.nodes.items() if n.driver == value}
    elif what == "file" and value:
        matched = {k for k, n in snapshot.nodes.items() if value in n.filename}
    elif what == "job" and value:
        job = value if value.startswith("job:") else f"job:{value}"
        if job in snapshot.nodes:
            matched = {job} | {e.child for e in snapshot.children(job)}
    else:
        text = spec.lower()
        matched = {k for k, n in snapshot.nodes.items()
                   if text in n.name.lower() or text in n.driver.lower()
                   or text in n.filename.lower()}
    for k in list(matched):
        matched.update(_protocol_children(snapshot, k))
    return matched


def _fold(snapshot: GraphSnapshot, top: str) -> GraphSnapshot:
    chain = chain_through(snapshot, top)
    if len(chain) < 2 or chain[0] != top:
        return snapshot
    members = set(chain)
    for k in chain:
        members.update(_protocol_children(snapshot, k))
    nodes = snapshot.nodes
    key = fold_key(top)
    allocated = sum(nodes[k].actual_size or 0 for k in members)
    vm = _vm_above(snapshot, top) or nodes[top].name
    head = nodes[top]
    summary = NodeInfo(
        key=key, kind=FOLDED, name=f"{vm}: {len(chain)} layers", driver="chain",
        read_only=head.read_only, filename=head.filename,
        virtual_size=head.virtual_size, actual_size=allocated,
        info={"layers": list(chain), "members": sorted(members), "allocated": allocated,
              "vm": vm})
    new_nodes: list[NodeInfo] = []
    for k, n in nodes.items():
        if k == top:
            new_nodes.append(summary)
        elif k not in members:
            new_nodes.append(n)
    edges: list[EdgeInfo] = []
    seen: set[tuple[str, str, str]] = set()
    for e in snapshot.edges:
        p_in, c_in = e.parent in members, e.child in members
        if p_in and c_in:
            continue
        parent = key if p_in else e.parent
        child = key if c_in else e.child
        ident = (parent, e.role, child)
        if ident in seen:
            continue
        seen.add(ident)
        edges.append(EdgeInfo(parent, child, e.role, e.perm, e.shared_perm, e.frozen))
    return GraphSnapshot(new_nodes, edges)


def foldable_chains(snapshot: GraphSnapshot, min_layers: int = 2) -> list[str]:
    """The top layer of every chain of at least ``min_layers`` layers."""
    tops: list[str] = []
    seen: set[str] = set()
    for k, n in snapshot.nodes.items():
        if k in seen or not _is_layer(n):
            continue
        chain = chain_through(snapshot, k)
        seen.update(chain)
        if len(chain) >= min_layers and chain[0] not in tops:
            tops.append(chain[0])
    return tops


def members_of(info: NodeInfo) -> Iterable[str]:
    """The real nodes a summary card stands for."""
    return list(info.info.get("members", ())) if info.kind == FOLDED else [info.key]
