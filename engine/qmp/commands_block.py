"""Block graph commands: blockdev-add/-del/-reopen and the graph queries."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.formats.errors import ImageError
from engine.graph import perms as P
from engine.graph import rules
from engine.graph.model import Backend, BlockGraph, Node
from engine.graph.opening import blockdev_add as open_blockdev
from engine.graph.reopen import reopen
from engine.qmp.block_info import debug_block_graph, query_named_block_nodes
from engine.qmp.block_schema import (
    BlockdevDel,
    BlockdevOptions,
    BlockdevReopen,
    QueryNamedBlockNodes,
)
from engine.qmp.block_stats import query_blockstats
from engine.qmp.registry import command
from engine.qmp.schema import Bool, Int, Str, Struct, members
from engine.refusal import device_in_use, generic, invalid_parameter_value

if TYPE_CHECKING:
    from engine.qmp.engine import Engine


@command("blockdev-add", BlockdevOptions, boxed=True)
def blockdev_add(engine: Engine, args: dict[str, Any]) -> Any:
    open_blockdev(engine.graph, args)
    return {}


@command("blockdev-del", BlockdevDel)
def blockdev_del(engine: Engine, args: dict[str, Any]) -> Any:
    graph = engine.graph
    name = args["node-name"]
    node = graph.find(name)
    rules.check_delete(graph, name,
                       monitor_owned=node.monitor_owned if node is not None else None)
    assert node is not None
    below = [link.child for link in node.children.values()]
    with graph.transaction():
        graph.set(node, "monitor_owned", False)
        graph.release(node)
        # children that stay lose what the deleted node asked of them
        graph.refresh_perms([child for child in below if child.name in graph.nodes])
    return {}


@command("blockdev-reopen", BlockdevReopen)
def blockdev_reopen(engine: Engine, args: dict[str, Any]) -> Any:
    reopen(engine.graph, args["options"])
    return {}


_OLD_TEXTS = {"node-name not specified": "Node name not specified"}


@command("x-blockdev-reopen", BlockdevOptions, boxed=True, optional=True)
def x_blockdev_reopen(engine: Engine, args: dict[str, Any]) -> Any:
    """The pre-6.1 single-node reopen, offered only with ``Engine(x_blockdev_reopen=True)``."""
    try:
        reopen(engine.graph, [args])
    except rules.NodeNotFound as exc:
        raise generic(f"Cannot find node named '{exc.name}'") from exc
    except rules.ReferenceNotFound as exc:
        raise generic(f"Cannot find device= nor node_name={exc.name}") from exc
    except rules.RuleViolation as exc:
        text = str(exc)
        raise generic(_OLD_TEXTS.get(text, text)) from exc
    return {}


BlockResize = Struct("block_resize", members({"*device": Str(), "*node-name": Str(),
                                             "size": Int()}))


@command("block_resize", BlockResize)
def block_resize(engine: Engine, args: dict[str, Any]) -> Any:
    """Grow or shrink a node, as QEMU 7.2 does it: the node, the size, operation
    blockers, a temporary user that needs to resize it (permissions), then the driver."""
    graph = engine.graph
    device = args.get("device")
    node = graph.nodes[rules.lookup_bs(graph, device, args.get("node-name"))]
    if args["size"] < 0:
        raise invalid_parameter_value("size", "a >0 size")
    if rules.first_blocker(graph, node.name, "resize") is not None:
        raise device_in_use(device)
    with graph.transaction():
        user = resize_user(graph, node)
    try:
        _truncate(node, args["size"])
    finally:
        with graph.transaction():
            graph.remove_backend(user)
            graph.refresh_perms([node])
    return {}


def resize_user(graph: BlockGraph, node: Node) -> Backend:
    """The anonymous user QEMU's block_resize attaches: resize, everything shared."""
    backend = graph.add_backend(Backend(name="", device_kind="job", writable=False), None)
    graph.attach_backend_root(backend, node, (P.RESIZE, P.ALL))
    return backend


def _truncate(node: Node, size: int) -> None:
    if node.read_only:
        raise generic("Image is read-only")
    assert node.io is not None
    try:
        node.io.truncate(size)
    except OSError as exc:
        raise generic(exc.strerror or str(exc)) from exc
    except ImageError as exc:
        raise generic(exc.message) from exc


@command("query-named-block-nodes", QueryNamedBlockNodes)
def query_named(engine: Engine, args: dict[str, Any]) -> Any:
    return query_named_block_nodes(engine.graph, bool(args.get("flat", False)))


@command("x-debug-query-block-graph")
def x_debug_query_block_graph(engine: Engine, args: dict[str, Any]) -> Any:
    return debug_block_graph(engine.graph)


QueryBlockstats = Struct("query-blockstats", members({"*query-nodes": Bool()}))


@command("query-blockstats", QueryBlockstats)
def query_blockstats_command(engine: Engine, args: dict[str, Any]) -> Any:
    return query_blockstats(engine.graph, bool(args.get("query-nodes", False)))
