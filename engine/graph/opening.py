"""Opening nodes from BlockdevOptions: what ``blockdev-add`` does to the graph.

Order and inheritance follow QEMU: an inline ``file`` child is opened (and named)
before its parent; the parent gets its name, attaches the file child (permissions
and image locks are checked at that moment), reads its image header, then opens its
backing chain — from the header when ``backing`` is absent (read-only, auto-named,
``Could not open backing file: ...`` on failure), by reference, inline, or not at
all for ``null``. Inline children inherit ``read-only`` (backing children default
to read-only), the cache options and ``force-share`` from their parent.

Everything runs inside the caller's graph transaction, so a failure leaves no node.
"""

from __future__ import annotations

import os
from typing import Any

from engine.gc_pause import gc_paused
from engine.graph import rules
from engine.graph.filenames import filename
from engine.graph.images import check_host_file, open_format_image
from engine.graph.model import BlockGraph, GraphError, Node
from engine.graph.names import check_node_name

#: Drivers the engine opens.
SUPPORTED_DRIVERS = frozenset({"file", "qcow2", "raw", "null-co", "null-aio"})
NULL_DEFAULT_SIZE = 1 << 30


def blockdev_add(graph: BlockGraph, options: dict[str, Any]) -> Node:
    """Open the node tree described by ``options`` and make its top monitor-owned."""
    if "node-name" not in options:
        raise GraphError("'node-name' must be specified for the root node")
    with gc_paused(), graph.transaction(restore_names=False):
        node = open_node(graph, options, inherited={}, role=None)
        graph.set(node, "monitor_owned", True)
    return node


def open_node(graph: BlockGraph, opts: dict[str, Any], *, inherited: dict[str, Any],
              role: str | None, header_backing: bool = True) -> Node:
    """Open one node (and its inline children); returns it unattached to any parent.

    ``inherited``: options the parent passes down (``read-only``, ``cache``,
    ``force-share``); ``role``: the role this node will have under its parent;
    ``header_backing`` False: leave the chain named in the image header to the caller.
    """
    driver = opts["driver"]
    if driver not in SUPPORTED_DRIVERS:
        raise GraphError(f"Driver '{driver}' is not supported by the bundled engine")
    for unsupported in ("data-file", "encrypt"):
        if unsupported in opts:
            raise GraphError(f"The bundled engine does not support the qcow2 option "
                             f"'{unsupported}'")
    if "read-only" in opts:
        read_only, explicit = bool(opts["read-only"]), True
    elif role == "backing":
        read_only, explicit = True, False
    else:
        read_only, explicit = bool(inherited.get("read-only", False)), False
    cache = {**inherited.get("cache", {}), **opts.get("cache", {})}
    force_share = bool(opts.get("force-share", inherited.get("force-share", False)))
    discard = opts.get("discard", "ignore")
    detect_zeroes = opts.get("detect-zeroes", "off")
    if detect_zeroes == "unmap" and discard != "unmap":
        raise rules.DetectZeroesUnmap()
    if force_share and not read_only:
        raise GraphError("force-share=on can only be used with read-only images")
    child_inherit = {"read-only": read_only, "cache": cache, "force-share": force_share}

    file_link_target: Node | None = None
    file_inline = False
    if "file" in opts and driver not in ("file", "null-co", "null-aio"):
        file_opt = opts["file"]
        if isinstance(file_opt, dict):
            file_link_target = open_node(graph, file_opt, inherited=child_inherit, role="file")
            file_inline = True
        else:
            file_link_target = graph.find(file_opt)
            if file_link_target is None:
                raise rules.ReferenceNotFound(file_opt, file_opt)

    own = {k: v for k, v in opts.items()
           if k not in ("file", "backing", "node-name", "driver", "read-only", "cache",
                        "force-share", "discard", "detect-zeroes", "auto-read-only")}
    node = Node(name="", driver=driver, options=own, read_only=read_only,
                read_only_explicit=explicit, force_share=force_share,
                detect_zeroes=detect_zeroes, discard=discard,
                cache_direct=bool(cache.get("direct", False)),
                cache_no_flush=bool(cache.get("no-flush", False)))

    if driver == "file":
        path = graph.host_path(opts["filename"])
        node.host_path = check_host_file(opts["filename"], path, writable=not read_only)
    elif driver in ("null-co", "null-aio"):
        if opts.get("latency-ns", 0) < 0:
            raise GraphError("latency-ns is invalid")
        node.size = opts.get("size", NULL_DEFAULT_SIZE)
        if node.size < 0:
            raise GraphError("Parameter 'size' expects a non-negative value")

    _assign_name(graph, node, opts.get("node-name"))
    graph.add_node(node)

    if file_link_target is not None:
        graph.attach(node, file_link_target, "file", inherits=file_inline)
        graph.refresh_perms([node])
        _open_image(graph, node, file_link_target)

    if driver in rules.BACKING_DRIVERS and ("backing" in opts or header_backing):
        _open_backing(graph, node, opts, child_inherit)
    return node


def _assign_name(graph: BlockGraph, node: Node, name: str | None) -> None:
    if name is None:
        node.name = graph.new_name()
        node.auto_named = True
        return
    err = check_node_name(name)
    if err:
        raise GraphError(err)
    if name in graph.nodes:
        raise GraphError(f"Duplicate nodes with node-name='{name}'")
    if any(b.name == name for b in graph.backends.values()):
        raise GraphError(f"node-name={name} is conflicting with a device id")
    node.name = name


def _protocol_path(node: Node) -> str | None:
    """The host file under ``node`` (through raw pass-through layers), if any."""
    seen = 0
    while node is not None and seen < 64:
        if node.driver == "file":
            return node.host_path
        if node.driver == "raw" and not ("offset" in node.options or "size" in node.options):
            node = node.child("file")  # type: ignore[assignment]
            seen += 1
            continue
        return None
    return None


def _open_image(graph: BlockGraph, node: Node, file_node: Node) -> None:
    """Read the image the node's driver interprets (qcow2 header, raw size)."""
    path = _protocol_path(file_node)
    if node.driver == "raw":
        if path is not None and not ("offset" in node.options or "size" in node.options):
            node.image = open_format_image(path, "raw", writable=not node.read_only)
        else:
            base = (file_node.image.virtual_size if file_node.image is not None
                    else _node_size(file_node))
            offset = node.options.get("offset", 0)
            if offset > base:
                raise GraphError(f"The sum of offset ({offset}) and size (0) has to be "
                                 "smaller or equal to the  actual size of the containing "
                                 f"file ({base})")
            node.size = node.options.get("size", base - offset)
        return
    if path is None:
        if file_node.driver in ("null-co", "null-aio") and node.driver == "qcow2":
            raise GraphError("Image is not in qcow2 format")
        raise GraphError(f"The bundled engine opens {node.driver} images only on a 'file' "
                         "node")
    image = open_format_image(path, node.driver, writable=not node.read_only)
    node.image = image
    node.header_backing = getattr(image, "backing_file", None) or None
    node.header_backing_format = getattr(image, "backing_format", None) or None
    node.auto_backing_file = node.header_backing


def _node_size(node: Node) -> int:
    if node.size is not None:
        return node.size
    if node.host_path is not None:
        return os.stat(node.host_path).st_size
    return 0


def full_backing_path(node: Node) -> str | None:
    """The header backing string resolved against the image's directory."""
    if not node.header_backing:
        return None
    if node.header_backing.startswith(("json:", "/")) or ":" in node.header_backing.split("/")[0]:
        return node.header_backing
    base_dir = os.path.dirname(_protocol_path(node.child("file")) or "")  # type: ignore[arg-type]
    return os.path.join(base_dir, node.header_backing)


def _open_backing(graph: BlockGraph, node: Node, opts: dict[str, Any],
                  inherit: dict[str, Any]) -> None:
    if "backing" in opts:
        value = opts["backing"]
        if value is None or value == "":
            return
        try:
            if isinstance(value, dict):
                backing = open_node(graph, value, inherited=inherit, role="backing")
                inline = True
            else:
                found = graph.find(value)
                if found is None:
                    raise rules.ReferenceNotFound(value, value)
                backing, inline = found, False
        except (GraphError, rules.RuleViolation) as exc:
            raise GraphError(f"Could not open backing file: {exc}") from exc
        if rules.reaches(graph, backing.name, node.name):
            raise rules.CycleViolation(backing.name, "backing", node.name)
        try:
            graph.attach(node, backing, "backing", inherits=inline)
            graph.refresh_perms([node])
        except (GraphError, rules.RuleViolation) as exc:
            raise GraphError(f"Could not open backing file: {exc}") from exc
        return
    _open_header_chain(graph, node, inherit)


def _open_header_chain(graph: BlockGraph, top: Node, inherit: dict[str, Any]) -> None:
    """Open the backing chain named in the image headers below ``top``, read-only.

    Iterative (chains may be thousands deep); an error at the k-th level carries k
    ``Could not open backing file: `` prefixes, as QEMU's recursion produces.
    """
    opened: list[tuple[Node, Node]] = []
    current, current_inherit, depth = top, inherit, 0
    while True:
        path = full_backing_path(current)
        if path is None:
            break
        depth += 1
        fmt = current.header_backing_format
        try:
            if fmt is None:
                graph.host_path(path)   # confinement first: probing must not read outside root
                fmt = probe_format(path)
            backing_opts: dict[str, Any] = {"driver": fmt,
                                            "file": {"driver": "file", "filename": path}}
            backing = open_node(graph, backing_opts, inherited=current_inherit,
                                role="backing", header_backing=False)
            graph.attach(current, backing, "backing", inherits=True)
            graph.refresh_perms([current])
        except (GraphError, rules.RuleViolation) as exc:
            raise GraphError("Could not open backing file: " * depth + str(exc)) from exc
        opened.append((current, backing))
        if backing.driver not in rules.BACKING_DRIVERS:
            break
        current = backing
        current_inherit = {"read-only": backing.read_only, "force-share": backing.force_share,
                           "cache": {"direct": backing.cache_direct,
                                     "no-flush": backing.cache_no_flush}}
    memo: dict[str, str] = {}
    for parent, backing in reversed(opened):    # bottom-up: each chain is complete
        graph.set(parent, "auto_backing_file", filename(backing, memo))


def probe_format(path: str) -> str:
    try:
        with open(path, "rb") as f:
            return "qcow2" if f.read(4) == b"QFI\xfb" else "raw"
    except OSError as exc:
        raise GraphError(f"Could not open '{path}': {os.strerror(exc.errno or 0)}") from exc
