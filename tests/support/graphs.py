"""Synthetic block graphs of any size, for layout/scene tests and benchmarks.

The shape is a host full of virtual machines: a few shared base images, each VM a
block backend over a chain of one to three qcow2 overlays ending on a base, every
qcow2 node with its ``file`` protocol node. Built straight as a
:class:`~engine.graph.snapshot.GraphSnapshot`, with realistic permissions.
"""

from __future__ import annotations

import random

from engine.graph.snapshot import EdgeInfo, GraphSnapshot, NodeInfo

RW_FILE = (("resize", "write", "consistent-read"), ("write-unchanged", "consistent-read"))
RO_FILE = (("consistent-read",), ("write-unchanged", "consistent-read"))
BACKING = (("consistent-read",), ("write-unchanged", "consistent-read"))
ROOT = (("write", "consistent-read"), ("write-unchanged", "write", "consistent-read"))


def _image(name: str, path: str, ro: bool, backing: str | None) -> NodeInfo:
    return NodeInfo(key=name, kind="block-node", name=name, driver="qcow2", read_only=ro,
                    filename=path, virtual_size=1 << 30, actual_size=(1 << 20) * 3,
                    cluster_size=65536, header_backing=backing,
                    header_backing_format="qcow2" if backing else None)


def _file(name: str, path: str, ro: bool) -> NodeInfo:
    return NodeInfo(key=name, kind="block-node", name=name, driver="file", read_only=ro,
                    filename=path, virtual_size=3 << 20, actual_size=3 << 20)


def vm_farm(n_nodes: int, seed: int = 1) -> GraphSnapshot:
    """A graph of about ``n_nodes`` nodes (exactly, when n_nodes >= 10)."""
    rnd = random.Random(seed)
    nodes: list[NodeInfo] = []
    edges: list[EdgeInfo] = []
    n_bases = max(1, n_nodes // 150)
    bases = []
    for b in range(n_bases):
        name, path = f"base{b}", f"/images/base{b}.qcow2"
        nodes += [_image(name, path, True, None), _file(f"base{b}-file", path, True)]
        edges.append(EdgeInfo(name, f"base{b}-file", "file", *RO_FILE))
        bases.append(name)
    vm = 0
    while len(nodes) < n_nodes:
        depth = rnd.choice((1, 1, 2, 3))
        if len(nodes) + 2 * depth + 1 > n_nodes:
            depth = max(0, (n_nodes - len(nodes) - 1) // 2)
            if depth == 0:
                # pad with a lone protocol node so the count is exact
                nodes.append(_file(f"spare{vm}", f"/images/spare{vm}.raw", False))
                vm += 1
                continue
        below = rnd.choice(bases)
        below_path = f"/images/{below}.qcow2"
        for level in range(depth):
            top = level == depth - 1
            name = f"vm{vm}-{'top' if top else f'l{level}'}"
            path = f"/images/{name}.qcow2"
            nodes += [_image(name, path, not top, below_path),
                      _file(f"{name}-file", path, not top)]
            edges.append(EdgeInfo(name, f"{name}-file", "file", *(RO_FILE if not top else RW_FILE)))
            edges.append(EdgeInfo(name, below, "backing", *BACKING))
            below, below_path = name, path
        backend = f"backend:vm{vm}"
        nodes.append(NodeInfo(key=backend, kind="block-backend", name=f"vm{vm}"))
        edges.append(EdgeInfo(backend, below, "root", *ROOT))
        vm += 1
    return GraphSnapshot(nodes, edges)


def to_dot(snapshot: GraphSnapshot) -> str:
    """The same graph as Graphviz DOT, with labelled record-like boxes (benchmark anchor)."""
    lines = ["digraph blockgraph {", "  node [shape=box];"]
    for key, n in snapshot.nodes.items():
        label = f"{n.name}\\n{n.driver}\\n{n.filename}"
        lines.append(f'  "{key}" [label="{label}"];')
    for e in snapshot.edges:
        lines.append(f'  "{e.parent}" -> "{e.child}" [label="{e.role}"];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def host_of_chains(n_chains: int, seed: int = 2) -> GraphSnapshot:
    """A host of ``n_chains`` VMs whose disks share nothing: each a block backend over
    its own chain of one to four qcow2 images (each with its protocol node)."""
    rnd = random.Random(seed)
    nodes: list[NodeInfo] = []
    edges: list[EdgeInfo] = []
    for vm in range(n_chains):
        depth = rnd.choice((1, 2, 2, 3, 4))
        below: str | None = None
        below_path: str | None = None
        for level in range(depth):
            top = level == depth - 1
            name = f"vm{vm}-{'top' if top else f'l{level}'}"
            path = f"/images/{name}.qcow2"
            nodes += [_image(name, path, not top, below_path),
                      _file(f"{name}-file", path, not top)]
            edges.append(EdgeInfo(name, f"{name}-file", "file",
                                  *(RO_FILE if not top else RW_FILE)))
            if below is not None:
                edges.append(EdgeInfo(name, below, "backing", *BACKING))
            below, below_path = name, path
        assert below is not None
        nodes.append(NodeInfo(key=f"backend:vm{vm}", kind="block-backend", name=f"vm{vm}"))
        edges.append(EdgeInfo(f"backend:vm{vm}", below, "root", *ROOT))
    return GraphSnapshot(nodes, edges)


def shared_base(n_overlays: int) -> GraphSnapshot:
    """One base image shared by ``n_overlays`` overlays, each a VM's disk."""
    nodes = [_image("base", "/images/base.qcow2", True, None),
             _file("base-file", "/images/base.qcow2", True)]
    edges = [EdgeInfo("base", "base-file", "file", *RO_FILE)]
    for vm in range(n_overlays):
        name, path = f"vm{vm}-top", f"/images/vm{vm}-top.qcow2"
        nodes += [_image(name, path, False, "/images/base.qcow2"),
                  _file(f"{name}-file", path, False),
                  NodeInfo(key=f"backend:vm{vm}", kind="block-backend", name=f"vm{vm}")]
        edges += [EdgeInfo(name, f"{name}-file", "file", *RW_FILE),
                  EdgeInfo(name, "base", "backing", *BACKING),
                  EdgeInfo(f"backend:vm{vm}", name, "root", *ROOT)]
    return GraphSnapshot(nodes, edges)


def deep_chain(depth: int) -> GraphSnapshot:
    """One VM over a chain of ``depth`` qcow2 images (snapshots taken for years)."""
    nodes: list[NodeInfo] = []
    edges: list[EdgeInfo] = []
    below: str | None = None
    below_path: str | None = None
    for level in range(depth):
        name = f"layer{level}"
        path = f"/images/{name}.qcow2"
        top = level == depth - 1
        nodes += [_image(name, path, not top, below_path), _file(f"{name}-file", path, not top)]
        edges.append(EdgeInfo(name, f"{name}-file", "file", *(RO_FILE if not top else RW_FILE)))
        if below is not None:
            edges.append(EdgeInfo(name, below, "backing", *BACKING))
        below, below_path = name, path
    assert below is not None
    nodes.append(NodeInfo(key="backend:vm0", kind="block-backend", name="vm0"))
    edges.append(EdgeInfo("backend:vm0", below, "root", *ROOT))
    return GraphSnapshot(nodes, edges)
