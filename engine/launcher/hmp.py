"""The human monitor commands the tests send through ``human-monitor-command``.

``qemu-io [-d] DEVICE "COMMAND"`` runs one qemu-io command on a drive (``-d``: on a
device by qdev id; a name that is no drive is taken as a node-name), printing
qemu-io's own lines on standard output — where QEMU prints them, and where tests
read them from its log — and answering ``""``, or the error text as HMP would.
The commands are ``read``, ``write`` (``-P`` pattern, ``-c`` compressed, ``-z`` zeroes, ``-u``
unmap, ``-q``) and the blkdebug ones (``break``, ``remove_break``, ``resume``),
which need a blkdebug node the engine does not have.
"""

from __future__ import annotations

import errno
import os
import shlex
import sys
import time
from collections.abc import Callable
from typing import TextIO

from engine.graph.model import Backend, BlockGraph, Node
from engine.launcher import nodeio
from engine.launcher.opts import OptsError, parse_int

Printer = Callable[[str], None]


class HMPError(Exception):
    """A command HMP refuses; the text is what QEMU answers in ``return``."""


def run(graph: BlockGraph, command_line: str, out: TextIO | None = None) -> str:
    """Run one HMP command line; returns what HMP answers (``""`` for qemu-io)."""
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
        node = _target(graph, device, by_qdev)
    except HMPError as exc:
        return f"Error: {exc}\n"
    qemu_io(node, io_command, say)
    return ""


def _target(graph: BlockGraph, device: str, by_qdev: bool) -> Node:
    backend: Backend | None = None
    for b in graph.backends.values():
        if (b.qdev == device or (b.qdev or "").endswith(f"/{device}")) if by_qdev \
                else (b.name and b.name == device):
            backend = b
            break
    if backend is not None:
        if backend.root is None:
            raise HMPError(f"Device '{device}' has no medium")
        return backend.root.child
    if by_qdev:
        raise HMPError(f"Device '{device}' not found")
    node = graph.find(device)
    if node is None:
        raise HMPError(f"Cannot find device='{device}' nor node-name='{device}'")
    return node


def qemu_io(node: Node, command: str, say: Printer) -> None:
    """Run one qemu-io command on ``node``, printing as qemu-io does."""
    try:
        words = shlex.split(command)
    except ValueError:
        say("unterminated quote")
        return
    if not words:
        return
    name, args = words[0], words[1:]
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


def _blkdebug(node: Node, args: list[str], say: Printer) -> None:
    say("Error: blkdebug is not available (the engine has no blkdebug driver)")


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
    "read": _read, "write": _write, "break": _blkdebug, "remove_break": _blkdebug,
    "resume": _blkdebug,
}
