"""``x-blockdev-change``: adding a child to a node or removing one, as QEMU 7.2 does.

Only ``quorum`` supports it. A new child is a node without parents, linked as
``children.N`` with the quorum's next index; removing a child keeps at least
``vote-threshold`` children, and gives the index back when it was the last one
handed out. QEMU's checks and texts, in QEMU's order.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.graph import rules
from engine.graph.io.quorum import QuorumIO
from engine.graph.model import BlockGraph, Node
from engine.qmp.registry import command
from engine.qmp.schema import Str, Struct, members
from engine.refusal import generic

if TYPE_CHECKING:
    from engine.qmp.engine import Engine

XBlockdevChange = Struct("x-blockdev-change", members({
    "parent": Str(), "*child": Str(), "*node": Str()}))


@command("x-blockdev-change", XBlockdevChange)
def x_blockdev_change(engine: Engine, args: dict[str, Any]) -> Any:
    graph = engine.graph
    parent_name = args["parent"]
    parent = graph.nodes[rules.lookup_bs(graph, parent_name, parent_name)]
    has_child, has_node = "child" in args, "node" in args
    if has_child == has_node:
        raise generic("The parameters child and node are in conflict" if has_child
                      else "Either child or node must be specified")
    if has_child:
        link = parent.children.get(args["child"])
        if link is None:
            raise generic(f"Node '{parent_name}' does not have child '{args['child']}'")
        _del_child(graph, parent, args["child"])
    if has_node:
        new = graph.find(args["node"])
        if new is None:
            raise generic(f"Node '{args['node']}' not found")
        _add_child(graph, parent, new)
    return {}


def _quorum(node: Node, what: str) -> QuorumIO:
    if not isinstance(node.io, QuorumIO):
        raise generic(f"The node {node.name} does not support {what} a child")
    return node.io


def _add_child(graph: BlockGraph, parent: Node, child: Node) -> None:
    io = _quorum(parent, "adding")
    if child.parents:
        raise generic(f"The node {child.name} already has a parent")
    if io.blkverify:
        raise generic("Cannot add a child to a quorum in blkverify mode")
    if child is parent or rules.reaches(graph, child.name, parent.name):
        raise rules.CycleViolation(child.name, "child", parent.name)
    role = f"children.{io.next_index}"
    with graph.transaction():
        graph.attach(parent, child, role)
        graph.refresh_perms([parent])
    io.next_index += 1


def _del_child(graph: BlockGraph, parent: Node, role: str) -> None:
    io = _quorum(parent, "removing")
    count = sum(1 for r in parent.children if r.startswith("children."))
    if count <= io.threshold:
        raise generic(f"The number of children cannot be lower than the vote threshold "
                      f"{io.threshold}")
    if role == f"children.{io.next_index - 1}":
        io.next_index -= 1
    with graph.transaction():
        child = parent.children[role].child
        graph.detach(parent.children[role])
        if child.name in graph.nodes:
            graph.refresh_perms([child])
