"""Opening nodes from BlockdevOptions: what ``blockdev-add`` does to the graph.

Order and inheritance follow QEMU: an inline ``file`` child is opened (and named)
before its parent; the parent gets its name, attaches the file child (permissions
and image locks are checked at that moment), makes its driver instance (a qcow2 reads
its header through the file child), then opens its backing chain — from the header
when ``backing`` is absent (read-only, auto-named, ``Could not open backing file: ...``
on failure), by reference, inline, or not at all for ``null``. Inline children inherit
``read-only`` (backing children default to read-only), the cache options and
``force-share`` from their parent.

Inline options may nest a thousand deep and header chains be thousands long, so
nothing here recurses: :func:`open_node` runs an explicit stack of :class:`_Frame`.
Everything runs inside the caller's graph transaction, so a failure leaves no node.

Slightly over 500 lines: the explicit stack of :class:`_Frame` replaces recursion, and
each step of it (children, name, driver, backing) reads the frame the one before it
left; cut into modules, the frame's fields would be shared across them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from engine.formats.backing_names import (
    JSON_PREFIX,
    BackingNameError,
    has_protocol,
    json_options,
)
from engine.formats.errors import ImageError
from engine.formats.hostfile import HostFile
from engine.formats.probe import open_image_on, probe_format
from engine.gc_pause import gc_paused
from engine.graph import blkdebug, drivers, rules
from engine.graph.filenames import filename, full_backing_name
from engine.graph.filter_names import FilterNameError, filter_filename_options
from engine.graph.io.formats import Qcow2IO
from engine.graph.io.protocol import FileIO
from engine.graph.model import BlockGraph, GraphError, Node

#: QEMU's largest node: INT64_MAX aligned down to 1 GiB (longer ones: EFBIG at open)
MAX_LENGTH = ((1 << 63) - 1) & ~((1 << 30) - 1)

#: the driver name that asks to probe the format from the file child's first bytes
PROBE = ""
BACKING_PREFIX = "Could not open backing file: "
_GENERIC_KEYS = ("file", "backing", "node-name", "driver", "read-only", "cache",
                 "force-share", "discard", "detect-zeroes", "auto-read-only")


def blockdev_add(graph: BlockGraph, options: dict[str, Any]) -> Node:
    """Open the node tree described by ``options`` and make its top monitor-owned."""
    if "node-name" not in options:
        raise GraphError("'node-name' must be specified for the root node")
    with gc_paused(), graph.transaction(restore_names=False):
        node = open_node(graph, options, inherited={}, role=None)
        graph.set(node, "monitor_owned", True)
    return node


@dataclass(eq=False)
class _Frame:
    """One node being opened: its options and how far it got."""

    opts: dict[str, Any]
    inherited: dict[str, Any]
    role: str | None
    header_backing: bool = True
    node: Node | None = None
    file_target: Node | None = None
    file_inline: bool = False
    settings: dict[str, Any] = field(default_factory=dict)
    #: waiting for the result of the inline child in this role
    waiting: str | None = None
    #: host files the caller opened already (a file it just created), by filename
    opened: dict[str, HostFile] = field(default_factory=dict)
    #: a list of children still to open (``quorum``'s ``children``): (index, options)
    pending: list[tuple[int, Any]] = field(default_factory=list)


def open_node(graph: BlockGraph, opts: dict[str, Any], *, inherited: dict[str, Any],
              role: str | None, header_backing: bool = True,
              opened: dict[str, HostFile] | None = None) -> Node:
    """Open one node and its inline children; returns it unattached to any parent.

    ``inherited``: options the parent passes down (``read-only``, ``cache``,
    ``force-share``); ``role``: the role the node will have under its parent;
    ``header_backing`` False: leave the chain named in the image header to the caller;
    ``opened``: host files already open by filename (used, not opened again; a file not
    taken by a node stays the caller's to close).
    """
    stack = [_Frame(opts, inherited, role, header_backing, opened=opened or {})]
    result: Node | None = None
    while stack:
        frame = stack[-1]
        try:
            child = _advance(graph, frame, result)
        except (GraphError, rules.RuleViolation) as exc:
            _unwind(stack, exc)
        result = None
        if child is not None:
            stack.append(child)
        elif frame.waiting is None:
            stack.pop()
            result = frame.node
    assert result is not None
    return result


def _unwind(stack: list[_Frame], exc: Exception) -> None:
    """A node failed to open: each parent waiting for it as its backing says so."""
    stack.pop()
    text = str(exc)
    while stack:
        if stack.pop().waiting == "backing":
            text = BACKING_PREFIX + text
    if text == str(exc):
        raise exc
    raise GraphError(text) from exc


def _advance(graph: BlockGraph, frame: _Frame, result: Node | None) -> _Frame | None:
    """Take ``frame`` one stage further; a frame returned is an inline child to open first."""
    if frame.waiting == "file":
        frame.waiting, frame.file_target, frame.file_inline = None, result, True
        return _create(graph, frame)
    if frame.waiting == "data":
        frame.waiting = None
        assert result is not None and frame.node is not None
        graph.attach(frame.node, result, frame.node.spec.data_child or "", inherits=True)
        graph.refresh_perms([frame.node])
        return _create(graph, frame)
    if frame.waiting == "backing":
        frame.waiting = None
        assert result is not None and frame.node is not None
        _attach_backing(graph, frame.node, result, inline=True)
        return None
    if frame.waiting is not None:       # one of a list of children
        assert result is not None and frame.node is not None
        role, frame.waiting = frame.waiting, None
        _attach_list_child(graph, frame.node, result, role, inline=True)
        return _next_list_child(graph, frame)
    _settle(frame)
    spec = drivers.driver(frame.opts["driver"])
    if spec.file_open and not spec.is_protocol:
        # opened by file name (blkdebug): QEMU names the node before opening its child
        _new_node(graph, frame, spec.name)
    file_opt = frame.opts.get(spec.child_option)
    if file_opt is not None and not spec.is_protocol:
        if isinstance(file_opt, dict):
            frame.waiting = "file"
            return _Frame(file_opt, frame.settings["child_inherit"], spec.child_option,
                          opened=frame.opened)
        frame.file_target = graph.find(file_opt)
        if frame.file_target is None:
            raise rules.ReferenceNotFound(file_opt, file_opt)
    return _create(graph, frame)


def _settle(frame: _Frame) -> None:
    """The node's own settings: driver support, read-only, cache, force-share."""
    opts, role, inherited = frame.opts, frame.role, frame.inherited
    driver = opts["driver"]
    if driver != PROBE and not drivers.opens(driver):
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
    if opts.get("detect-zeroes", "off") == "unmap" and opts.get("discard", "ignore") != "unmap":
        raise rules.DetectZeroesUnmap()
    if force_share and not read_only:
        raise GraphError("force-share=on can only be used with read-only images")
    frame.settings = {
        "read_only": read_only, "explicit": explicit, "cache": cache,
        "force_share": force_share,
        "child_inherit": {"read-only": read_only, "cache": cache, "force-share": force_share},
    }


def _create(graph: BlockGraph, frame: _Frame) -> _Frame | None:
    """Make the node, attach its file child, make its driver instance; then its backing."""
    opts, st = frame.opts, frame.settings
    driver = opts["driver"]
    if driver == PROBE:
        driver = _probe(frame.file_target)
    node = frame.node if frame.node is not None else _new_node(graph, frame, driver)
    child_option = node.spec.child_option
    if frame.file_target is not None and child_option not in node.children:
        graph.attach(node, frame.file_target, child_option, inherits=frame.file_inline)
        graph.refresh_perms([node])
    data = node.spec.data_child
    if data is not None and data not in node.children:
        value = opts.get(data)
        if isinstance(value, dict):
            frame.waiting = "data"
            return _Frame(value, st["child_inherit"], data, opened=frame.opened)
        if value is None:
            raise GraphError(f"A block device must be specified for \"{data}\"")
        target = graph.find(value)
        if target is None:
            raise rules.ReferenceNotFound(value, value)
        graph.attach(node, target, data)
        graph.refresh_perms([node])
    if node.spec.child_list is not None:
        return _open_list_children(graph, frame)
    if node.io is None:
        node.io = _make_io(graph, node)
    if not node.spec.cow or not ("backing" in opts or frame.header_backing):
        return None
    if "backing" not in opts:
        _open_header_chain(graph, node, st["child_inherit"])
        return None
    value = opts["backing"]
    if isinstance(value, dict):
        frame.waiting = "backing"
        return _Frame(value, st["child_inherit"], "backing", opened=frame.opened)
    if value is not None and value != "":
        _attach_reference(graph, node, value)
    return None


def _new_node(graph: BlockGraph, frame: _Frame, driver: str) -> Node:
    """The node itself, named and in the graph (a protocol node with its resource)."""
    opts, st = frame.opts, frame.settings
    child_option = drivers.driver(driver).child_option
    node = Node(name="", driver=driver,
                options={k: v for k, v in opts.items() if k not in _GENERIC_KEYS
                         and k not in (child_option, drivers.driver(driver).data_child)},
                read_only=st["read_only"], read_only_explicit=st["explicit"],
                force_share=st["force_share"],
                detect_zeroes=opts.get("detect-zeroes", "off"),
                discard=opts.get("discard", "ignore"),
                cache_direct=bool(st["cache"].get("direct", False)),
                cache_no_flush=bool(st["cache"].get("no-flush", False)))
    frame.node = node
    if node.spec.is_protocol:
        _open_protocol(graph, node, opts, frame.opened)
    try:
        _assign_name(graph, node, opts.get("node-name"))
        graph.add_node(node)
    except BaseException:
        if node.io is not None:     # not in the graph: the rollback would not close it
            node.io.close()
        raise
    return node


def _open_list_children(graph: BlockGraph, frame: _Frame) -> _Frame | None:
    """A driver with a list of children (``quorum``): its options are checked before
    any child opens, then the children open in order (QEMU's quorum_open)."""
    node = frame.node
    assert node is not None and node.spec.io is not None and node.spec.child_list
    refusal = node.spec.io.option_error(graph.io, node.options)
    if refusal is not None:
        raise GraphError(refusal)
    frame.pending = list(enumerate(frame.opts.get(node.spec.child_list, [])))
    return _next_list_child(graph, frame)


def _next_list_child(graph: BlockGraph, frame: _Frame) -> _Frame | None:
    """Attach the listed children given by name up to the next inline one (returned as
    a frame to open first); the last one attached, make the driver instance."""
    node = frame.node
    assert node is not None and node.spec.child_list
    while frame.pending:
        index, value = frame.pending.pop(0)
        role = f"{node.spec.child_list}.{index}"
        if isinstance(value, dict):
            frame.waiting = role
            return _Frame(value, frame.settings["child_inherit"], role,
                          opened=frame.opened)
        target = graph.find(value)
        if target is None:
            raise rules.ReferenceNotFound(value, value)
        _attach_list_child(graph, node, target, role, inline=False)
    node.io = _make_io(graph, node)
    try:
        node.io.length()
    except OSError as exc:      # children of different sizes
        raise GraphError(f"Could not refresh total sector count: "
                         f"{os.strerror(exc.errno or 0)}") from exc
    return None


def _attach_list_child(graph: BlockGraph, node: Node, child: Node, role: str, *,
                       inline: bool) -> None:
    graph.attach(node, child, role, inherits=inline)
    graph.refresh_perms([node])


def _probe(file_node: Node | None) -> str:
    if file_node is None or file_node.io is None:
        raise GraphError("Could not probe the image format")
    try:
        return probe_format(file_node.io.store())
    except OSError as exc:
        raise GraphError(f"Could not read image for determining its format: "
                         f"{exc.strerror}") from exc


def _open_protocol(graph: BlockGraph, node: Node, opts: dict[str, Any],
                   opened: dict[str, HostFile]) -> None:
    """A protocol node's own resource: the host file, or a null device's size."""
    if node.driver == "file":
        if opts["filename"] == "":
            raise GraphError("The 'file' block driver requires a file name")
        hostfile = opened.pop(opts["filename"], None)
        if hostfile is None:
            hostfile = graph.open_host_file(opts["filename"], writable=not node.read_only)
        elif hostfile.writable and node.read_only:
            read_only = hostfile.reopen(False)
            hostfile.close()
            hostfile = read_only
        try:
            node.file_id = hostfile.identity()
        except OSError as exc:
            hostfile.close()
            raise GraphError(f"Could not open '{opts['filename']}': {exc.strerror}") from exc
        node.io = FileIO(node, graph.io, hostfile)
        return
    if opts.get("latency-ns", 0) < 0:
        raise GraphError("latency-ns is invalid")
    if opts.get("size", 0) < 0:
        raise GraphError("Parameter 'size' expects a non-negative value")
    if -(-opts.get("size", 0) // 512) * 512 > MAX_LENGTH:
        raise GraphError("Could not refresh total sector count: File too large")


def _make_io(graph: BlockGraph, node: Node) -> Any:
    """The driver instance of a non-protocol node (or a null one), its file child attached."""
    spec = node.spec
    if spec.io is Qcow2IO:
        return Qcow2IO(node, graph.io, _open_qcow2(node))
    if node.driver == "raw":
        check_raw_window(node)
    assert spec.io is not None
    refusal = spec.io.child_error(node) if spec.child_list else (
        spec.io.option_error(graph.io, node.options) or spec.io.child_error(node))
    if refusal is not None:
        raise GraphError(refusal)
    try:
        io = spec.io(node, graph.io)
    except blkdebug.BlkdebugError as exc:
        raise GraphError(str(exc)) from exc
    if node.driver == "copy-on-read" and "bottom" in node.options:
        io.frozen_base = _freeze_to_bottom(graph, node)
    return io


def _freeze_to_bottom(graph: BlockGraph, node: Node) -> Node:
    """``copy-on-read``'s ``bottom``: an existing node that is no filter, in the chain
    below the filter; the links down to it are frozen (QEMU's checks and texts; QEMU
    itself never returns when the node is not in the chain, the engine refuses)."""
    name = node.options["bottom"]
    bottom = graph.find(name)
    if bottom is None:
        raise GraphError(f"Bottom node '{name}' not found")
    if bottom.spec.is_filter:
        raise GraphError(f"Bottom node '{name}' is a filter")
    chain: list[tuple[Node, Any]] = []
    current: Node | None = node
    while current is not None and current is not bottom:
        link = current.children.get(current.spec.filtered_role or "backing")
        if link is None:
            raise GraphError(f"Bottom node '{name}' is not in the backing chain of "
                             f"'{node.name}'")
        chain.append((current, link))
        current = link.child
    for parent, link in chain:
        if link.frozen:
            raise GraphError(f"Cannot change '{link.role}' link from '{parent.name}' to "
                             f"'{link.child.name}'")
    graph.freeze_chain(node, bottom)
    return bottom


def _open_qcow2(node: Node) -> Any:
    file_node = node.file
    if file_node is None or file_node.io is None:
        raise GraphError("A block device must be specified for \"file\"")
    try:
        image = open_image_on(file_node.io.store(), "qcow2", writable=not node.read_only)
    except ImageError as exc:
        raise GraphError(getattr(exc, "message", str(exc))) from exc
    except OSError as exc:
        raise GraphError(f"Could not read qcow2 header: {os.strerror(exc.errno or 0)}") from exc
    node.header_backing = image.backing_file or None
    node.header_backing_format = image.backing_format or None
    node.auto_backing_file = node.header_backing
    return image


def check_raw_window(node: Node, options: dict[str, Any] | None = None) -> None:
    """QEMU's raw options checks against the file child's size, in QEMU's order
    (``options``: the offset and size to check, default the node's own)."""
    options = node.options if options is None else options
    file_node = node.file
    if file_node is None or file_node.io is None:
        raise GraphError("A block device must be specified for \"file\"")
    real = file_node.io.length()
    offset = int(options.get("offset", 0))
    if offset > real:
        raise GraphError(f"Offset ({offset}) cannot be greater than size of the containing "
                         f"file ({real})")
    if "size" in options:
        size = int(options["size"])
        if real - offset < size:
            raise GraphError(f"The sum of offset ({offset}) and size ({size}) has to be "
                             "smaller or equal to the  actual size of the containing file "
                             f"({real})")
        if size % 512:
            raise GraphError("Specified size is not multiple of 512")


def _assign_name(graph: BlockGraph, node: Node, name: str | None) -> None:
    if name is None:
        node.name = graph.new_name()
        node.auto_named = True
        return
    rules.check_new_node_name(graph, name)
    node.name = name


def _attach_reference(graph: BlockGraph, node: Node, name: str) -> None:
    found = graph.find(name)
    if found is None:
        raise GraphError(BACKING_PREFIX + str(rules.ReferenceNotFound(name, name)))
    _attach_backing(graph, node, found, inline=False)


def _attach_backing(graph: BlockGraph, node: Node, backing: Node, *, inline: bool) -> None:
    if rules.reaches(graph, backing.name, node.name):
        raise rules.CycleViolation(backing.name, "backing", node.name)
    try:
        graph.attach(node, backing, "backing", inherits=inline)
        graph.refresh_perms([node])
    except (GraphError, rules.RuleViolation) as exc:
        raise GraphError(BACKING_PREFIX + str(exc)) from exc


#: the file names QEMU's null protocols accept (their only ones), with their drivers
NULL_PROTOCOL_NAMES = {"null-co://": "null-co", "null-aio://": "null-aio"}
#: the protocol prefixes a file name may carry here (others: ``Unknown protocol``)
KNOWN_PROTOCOLS = ("file", "null-co", "null-aio", "blkdebug", "blkverify")


def _header_options(node: Node) -> dict[str, Any]:
    """The options QEMU opens the backing file named in ``node``'s header with."""
    try:
        name = full_backing_name(node)
    except ValueError as exc:
        raise GraphError(str(exc)) from exc
    assert name is not None
    options = options_for_filename(name, node.header_backing_format)
    options.pop("node-name", None)
    return options


def options_for_filename(name: str, fmt: str | None) -> dict[str, Any]:
    """The options QEMU opens a file name with (``bdrv_open`` of a name and an optional
    format): ``json:{...}`` stands for its options (the format given wins), ``file:``,
    ``null-co://``, ``blkdebug:``/``blkverify:`` for their protocol node, anything else
    for a host file; the format is probed where none is given."""
    if name.startswith(JSON_PREFIX):
        try:
            opts = json_options(name)
        except BackingNameError as exc:
            raise GraphError(str(exc)) from exc
        if fmt:
            opts["driver"] = fmt         # the given format wins (QEMU joins without overwrite)
        opts.setdefault("driver", PROBE)
        return opts
    if name.startswith("file:"):
        name = name[len("file:"):]
    elif has_protocol(name) and name.split(":", 1)[0] not in KNOWN_PROTOCOLS:
        raise GraphError(f"Unknown protocol '{name.split(':', 1)[0]}'")
    if name in NULL_PROTOCOL_NAMES:
        # null-co:// and null-aio:// name the null drivers, with no other options
        return {"driver": fmt or PROBE, "file": {"driver": NULL_PROTOCOL_NAMES[name]}}
    try:
        filtered = filter_filename_options(name)
    except FilterNameError as exc:
        raise GraphError(str(exc)) from exc
    if filtered is not None:
        return {"driver": fmt or PROBE, "file": filtered}
    return {"driver": fmt or PROBE, "file": {"driver": "file", "filename": name}}


def open_backing_from_header(graph: BlockGraph, node: Node) -> None:
    """Open the chain named in ``node``'s header below it (a node opened without its
    backing, such as ``drive-mirror``'s target, gets it once the job ends)."""
    _open_header_chain(graph, node, {
        "read-only": True, "force-share": node.force_share,
        "cache": {"direct": node.cache_direct, "no-flush": node.cache_no_flush}})


def _open_header_chain(graph: BlockGraph, top: Node, inherit: dict[str, Any]) -> None:
    """Open the backing chain named in the image headers below ``top``, read-only.

    Iterative (chains may be thousands deep); an error at the k-th level carries k
    ``Could not open backing file: `` prefixes, as QEMU's recursion produces.
    """
    opened: list[tuple[Node, Node]] = []
    current, current_inherit, depth = top, inherit, 0
    while current.header_backing:
        depth += 1
        try:
            options = _header_options(current)
            explicit = "backing" in options
            backing = open_node(graph, options, inherited=current_inherit, role="backing",
                                header_backing=explicit)
            graph.attach(current, backing, "backing", inherits=True)
            graph.refresh_perms([current])
        except (GraphError, rules.RuleViolation) as exc:
            raise GraphError(BACKING_PREFIX * depth + str(exc)) from exc
        opened.append((current, backing))
        if explicit or not backing.spec.cow:
            break
        current = backing
        current_inherit = {"read-only": backing.read_only, "force-share": backing.force_share,
                           "cache": {"direct": backing.cache_direct,
                                     "no-flush": backing.cache_no_flush}}
    names: dict[str, Any] = {}
    for parent, backing in reversed(opened):    # bottom-up: each chain is complete
        graph.set(parent, "auto_backing_file", filename(backing, names))
