"""The human monitor commands the tests send through ``human-monitor-command``.

``qemu-io [-d] DEVICE "COMMAND"`` runs one qemu-io command on a drive (``-d``: on a
device by qdev id; a name that is no drive is taken as a node-name), printing
qemu-io's own lines on standard output — where QEMU prints them, and where tests
read them from its log — and answering ``""``, or the error text as HMP would.
The commands are ``read``, ``write`` (``-P`` pattern, ``-c`` compressed, ``-z`` zeroes,
``-u`` unmap, ``-q``), ``discard`` (``-q``; nothing unless the node has
``discard=unmap``), the accounted ``aio_read``/``aio_write``/``aio_flush`` (counted in
the drive's ``query-blockstats``; on a node-name, in a backend made for the command
alone, as QEMU does) and the blkdebug ones (``break``, ``remove_break``, ``resume``,
``wait_break``), which act on the first ``blkdebug`` node down the drive's primary
children (its ``file``, a filter's child).
"""

from __future__ import annotations

import errno
import os
import shlex
import sys
import time
from collections.abc import Callable
from typing import TextIO

from engine.graph.accounting import BlockAcctStats
from engine.graph.io.blkdebug import BlkdebugIO
from engine.graph.model import Backend, BlockGraph, Node
from engine.launcher import nodeio
from engine.launcher.opts import OptsError, parse_int

Printer = Callable[[str], None]


class HMPError(Exception):
    """A command HMP refuses; the text is what QEMU answers in ``return``."""


#: waits until a condition holds, letting the rest of the engine run meanwhile
Waiter = Callable[[Callable[[], bool]], None]


def _spin(done: Callable[[], bool]) -> None:
    while not done():
        time.sleep(0.001)


def run(graph: BlockGraph, command_line: str, out: TextIO | None = None,
        waiter: Waiter = _spin) -> str:
    """Run one HMP command line; returns what HMP answers (``""`` for qemu-io).

    ``waiter`` waits for ``wait_break``'s condition; the caller gives one that lets go
    of the monitor's lock while it waits, as QEMU's monitor runs the event loop."""
    stream = out if out is not None else sys.stdout

    def say(text: str) -> None:
        stream.write(text + "\n")
        stream.flush()

    try:
        words = shlex.split(command_line)
    except ValueError:
        return "Error: unterminated quote\n"
    if not words:
        return ""
    if words[0] != "qemu-io":
        return f"unknown command: '{words[0]}'\n"
    args = words[1:]
    by_qdev = bool(args) and args[0] == "-d"
    if by_qdev:
        args = args[1:]
    if len(args) != 2:
        return "Parameter 'device' is missing\n" if not args else "Invalid parameter\n"
    device, io_command = args
    try:
        node, backend = _target(graph, device, by_qdev)
    except HMPError as exc:
        return f"Error: {exc}\n"
    qemu_io(node, io_command, say, waiter,
            stats=backend.stats if backend is not None else None)
    return ""


def _target(graph: BlockGraph, device: str, by_qdev: bool) -> tuple[Node, Backend | None]:
    backend: Backend | None = None
    for b in graph.backends.values():
        if (b.qdev == device or (b.qdev or "").endswith(f"/{device}")) if by_qdev \
                else (b.name and b.name == device):
            backend = b
            break
    if backend is not None:
        if backend.root is None:
            raise HMPError(f"Device '{device}' has no medium")
        return backend.root.child, backend
    if by_qdev:
        raise HMPError(f"Device '{device}' not found")
    node = graph.find(device)
    if node is None:
        raise HMPError(f"Cannot find device='{device}' nor node-name='{device}'")
    return node, None


def qemu_io(node: Node, command: str, say: Printer, waiter: Waiter = _spin,
            stats: BlockAcctStats | None = None) -> None:
    """Run one qemu-io command on ``node``, printing as qemu-io does; ``stats``: the
    accounting of the backend it runs on (None: a throwaway one)."""
    try:
        words = shlex.split(command)
    except ValueError:
        say("unterminated quote")
        return
    if not words:
        return
    name, args = words[0], words[1:]
    if name in _DEBUG_COMMANDS:
        low, high = _DEBUG_ARGS[name]
        if not low <= len(args) <= high:
            # qemu-io's argument check writes to standard error
            sys.stderr.write(f"bad argument count {len(args)} to {name}, expected "
                             f"{low} arguments\n")
            return
        _DEBUG_COMMANDS[name](node, args, say, waiter)
        return
    aio = _AIO_COMMANDS.get(name)
    if aio is not None:
        least = 0 if name == "aio_flush" else 2
        if len(args) < least or (name == "aio_flush" and args):
            # qemu-io's argument check writes to standard error
            expected = "0" if name == "aio_flush" else "at least 2"
            sys.stderr.write(f"bad argument count {len(args)} to {name}, expected "
                             f"{expected} arguments\n")
            return
        aio(node, args, say, stats if stats is not None else BlockAcctStats())
        return
    handler = _COMMANDS.get(name)
    if handler is None:
        say(f"command \"{name}\" not found")
        return
    handler(node, args, say)


def _options(args: list[str], flags: str, with_value: str) -> tuple[dict[str, str], list[str]]:
    opts: dict[str, str] = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a.startswith("-") and len(a) > 1 and not a[1:].isdigit():
            for j, ch in enumerate(a[1:]):
                if ch in with_value:
                    value = a[j + 2:] or (args[i + 1] if i + 1 < len(args) else "")
                    if not a[j + 2:]:
                        i += 1
                    opts[ch] = value
                    break
                if ch not in flags:
                    raise OptsError(f"invalid option -- '{ch}'")
                opts[ch] = ""
        else:
            rest.append(a)
        i += 1
    return opts, rest


def _offset_length(rest: list[str], say: Printer, command: str) -> tuple[int, int] | None:
    if len(rest) != 2:
        say(f"bad number of arguments to {command}")
        return None
    try:
        return parse_int(rest[0], "offset", size=True), parse_int(rest[1], "length", size=True)
    except OptsError:
        say(f"non-numeric length argument -- {rest[1]}")
        return None


def _pattern(text: str, say: Printer) -> int | None:
    try:
        value = int(text, 0)
    except ValueError:
        say(f"non-numeric pattern argument -- {text}")
        return None
    return value & 0xFF


def _read(node: Node, args: list[str], say: Printer) -> None:
    try:
        opts, rest = _options(args, "bCqpv", "PsSl")
    except OptsError as exc:
        say(str(exc))
        return
    span = _offset_length(rest, say, "read")
    if span is None:
        return
    offset, length = span
    t0 = time.monotonic()
    try:
        data = nodeio.read(node, offset, length)
    except (OSError, ValueError) as exc:
        say(f"read failed: {_strerror(exc)}")
        return
    if "P" in opts:
        pattern = _pattern(opts["P"], say)
        if pattern is None:
            return
        start = int(opts.get("s", "0") or 0)
        check_len = int(opts.get("l", str(length)) or length)
        region = data[start:start + check_len]
        if region != bytes([pattern]) * len(region):
            say(f"Pattern verification failed at offset {offset + start}, "
                f"{check_len} bytes")
    if "q" not in opts:
        _report("read", offset, length, time.monotonic() - t0, say)


def _write(node: Node, args: list[str], say: Printer) -> None:
    try:
        opts, rest = _options(args, "bcCfnquz", "P")
    except OptsError as exc:
        say(str(exc))
        return
    span = _offset_length(rest, say, "write")
    if span is None:
        return
    offset, length = span
    size = nodeio.node_length(node)
    if offset + length > size:
        say("write failed: Input/output error")
        return
    t0 = time.monotonic()
    try:
        if "z" in opts:
            nodeio.write_zeroes(node, offset, length, unmap="u" in opts)
        else:
            pattern = _pattern(opts.get("P", "0xcd"), say)
            if pattern is None:
                return
            data = bytes([pattern]) * length
            if "c" in opts:
                nodeio.write_compressed(node, offset, data)
            else:
                nodeio.write(node, offset, data)
    except (OSError, ValueError) as exc:
        say(f"write failed: {_strerror(exc)}")
        return
    if "q" not in opts:
        _report("wrote", offset, length, time.monotonic() - t0, say)


def _discard(node: Node, args: list[str], say: Printer) -> None:
    try:
        opts, rest = _options(args, "Cq", "")
    except OptsError as exc:
        say(str(exc))
        return
    span = _offset_length(rest, say, "discard")
    if span is None:
        return
    offset, length = span
    if offset + length > nodeio.node_length(node):
        say("discard failed: Input/output error")
        return
    t0 = time.monotonic()
    try:
        nodeio.discard(node, offset, length)
    except (OSError, ValueError) as exc:
        say(f"discard failed: {_strerror(exc)}")
        return
    if "q" not in opts:
        _report("discard", offset, length, time.monotonic() - t0, say)


def _aio_read(node: Node, args: list[str], say: Printer, stats: BlockAcctStats) -> None:
    try:
        opts, rest = _options(args, "Ciqv", "P")
    except OptsError:
        opts, rest = {"?": ""}, []
    if "i" in opts:
        say("injecting invalid read request")
        stats.invalid("read")
        return
    span = _aio_span(rest, say, "aio_read", "[-Ciqv] [-P pattern] off len [len..]",
                     "asynchronously reads a number of bytes")
    if not isinstance(span, tuple):
        if span == _BAD_LENGTH:
            stats.invalid("read")
        return
    offset, length = span
    pattern = _pattern(opts["P"], say) if "P" in opts else None
    if "P" in opts and pattern is None:
        return
    t0 = time.monotonic()
    cookie = stats.start("read", length)
    try:
        if offset + length > nodeio.node_length(node):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        data = nodeio.read(node, offset, length)
    except (OSError, ValueError) as exc:
        say(f"readv failed: {_strerror(exc)}")
        stats.done(cookie, failed=True)
        return
    if pattern is not None and data != bytes([pattern]) * length:
        say(f"Pattern verification failed at offset {offset}, {length} bytes")
    stats.done(cookie)
    if "q" not in opts:
        _report("read", offset, length, time.monotonic() - t0, say)


def _aio_write(node: Node, args: list[str], say: Printer, stats: BlockAcctStats) -> None:
    try:
        opts, rest = _options(args, "Cfiquz", "P")
    except OptsError:
        opts, rest = {"?": ""}, []
    if "i" in opts:
        say("injecting invalid write request")
        stats.invalid("write")
        return
    zeroes = "z" in opts
    if zeroes and len(rest) > 2:
        say("-z supports only a single length parameter")
        return
    if "u" in opts and not zeroes:
        say("-u requires -z to be specified")
        return
    if zeroes and "P" in opts:
        say("-z and -P cannot be specified at the same time")
        return
    span = _aio_span(rest, say, "aio_write", "[-Cfiquz] [-P pattern] off len [len..]",
                     "asynchronously writes a number of bytes")
    if not isinstance(span, tuple):
        if span == _BAD_LENGTH and not zeroes:
            stats.invalid("write")
        return
    offset, length = span
    pattern = _pattern(opts.get("P", "0xcd"), say)
    if pattern is None:
        return
    t0 = time.monotonic()
    # qemu-io accounts no zero write: it never starts the accounting of one
    cookie = None if zeroes else stats.start("write", length)
    try:
        if offset + length > nodeio.node_length(node):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        if zeroes:
            nodeio.write_zeroes(node, offset, length, unmap="u" in opts)
        else:
            nodeio.write(node, offset, bytes([pattern]) * length)
    except (OSError, ValueError) as exc:
        say(f"aio_write failed: {_strerror(exc)}")
        if cookie is not None:
            stats.done(cookie, failed=True)
        return
    if cookie is not None:
        stats.done(cookie)
    if "q" not in opts:
        _report("wrote", offset, length, time.monotonic() - t0, say)


def _aio_flush(node: Node, args: list[str], say: Printer, stats: BlockAcctStats) -> None:
    """Waits for the requests under way (none: the engine completes each at once); it
    counts as a flush of no bytes, though nothing is flushed."""
    stats.done(stats.start("flush", 0))


#: :func:`_aio_span` refused a length (qemu-io counts that as an invalid request)
_BAD_LENGTH = "length"


def _aio_span(rest: list[str], say: Printer, name: str, usage: str,
              oneline: str) -> tuple[int, int] | str:
    """The offset and the summed lengths of an aio command, or what was refused
    (said): ``"usage"``, ``"offset"`` or :data:`_BAD_LENGTH`."""
    if len(rest) < 2:
        say(f"{name} {usage} -- {oneline}")
        return "usage"
    values: list[int] = []
    for text in rest:
        try:
            values.append(parse_int(text, "offset", size=True))
        except OptsError:
            say("Parsing error: non-numeric argument, or extraneous/unrecognized suffix "
                f"-- {text}")
            return "offset" if not values else _BAD_LENGTH
    return values[0], sum(values[1:])


def _debug_node(node: Node) -> BlkdebugIO | None:
    """QEMU's bdrv_find_debug_node: down the primary children to a ``blkdebug`` node."""
    current: Node | None = node
    while current is not None:
        if isinstance(current.io, BlkdebugIO):
            return current.io
        role = current.spec.filtered_role or "file"
        current = current.child(role)
    return None


def _break(node: Node, args: list[str], say: Printer, waiter: Waiter) -> None:
    debug = _debug_node(node)
    ret = debug.rules.set_breakpoint(args[0], args[1]) if debug else -errno.ENOTSUP
    if ret < 0:
        say(f"Could not set breakpoint: {os.strerror(-ret)}")


def _remove_break(node: Node, args: list[str], say: Printer, waiter: Waiter) -> None:
    debug = _debug_node(node)
    ret = debug.rules.remove_breakpoint(args[0]) if debug else -errno.ENOTSUP
    if ret < 0:
        say(f"Could not remove breakpoint {args[0]}: {os.strerror(-ret)}")


def _resume(node: Node, args: list[str], say: Printer, waiter: Waiter) -> None:
    debug = _debug_node(node)
    ret = debug.rules.resume(args[0]) if debug else -errno.ENOTSUP
    if ret < 0:
        say(f"Could not resume request: {os.strerror(-ret)}")


def _wait_break(node: Node, args: list[str], say: Printer, waiter: Waiter) -> None:
    debug = _debug_node(node)
    if debug is None:       # QEMU would wait forever
        say("Could not wait for a breakpoint: no blkdebug node")
        return
    waiter(lambda: debug.rules.is_suspended(args[0]))


def _report(verb: str, offset: int, length: int, seconds: float, say: Printer) -> None:
    say(f"{verb} {length}/{length} bytes at offset {offset}")
    rate = length / seconds if seconds > 0 else float(length)
    say(f"{_human(length)}, 1 ops; {_clock(seconds)} ({_human(rate)}/sec and "
        f"{1 / seconds if seconds > 0 else 1:.4f} ops/sec)")


def _human(value: float) -> str:
    units = ["bytes", "KiB", "MiB", "GiB", "TiB"]
    i = 0
    while value >= 1024 and i < len(units) - 1:
        value /= 1024
        i += 1
    return f"{int(value)} {units[i]}" if i == 0 else f"{value:.3f} {units[i]}"


def _clock(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes):02d}:{secs:05.2f}" if minutes else f"{secs:05.2f} sec"


def _strerror(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.errno:
        return os.strerror(exc.errno)
    return os.strerror(errno.EINVAL)


_COMMANDS: dict[str, Callable[[Node, list[str], Printer], None]] = {
    "read": _read, "write": _write, "discard": _discard,
}
_AIO_COMMANDS: dict[str, Callable[[Node, list[str], Printer, BlockAcctStats], None]] = {
    "aio_read": _aio_read, "aio_write": _aio_write, "aio_flush": _aio_flush,
}
_DEBUG_COMMANDS: dict[str, Callable[[Node, list[str], Printer, Waiter], None]] = {
    "break": _break, "remove_break": _remove_break, "resume": _resume,
    "wait_break": _wait_break,
}
#: (fewest, most) arguments of each (always equal)
_DEBUG_ARGS = {"break": (2, 2), "remove_break": (1, 1), "resume": (1, 1),
               "wait_break": (1, 1)}
