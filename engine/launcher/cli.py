"""``blockgraph qemu [QEMU OPTIONS]``: the bundled engine started like qemu-system.

It reads the block part of a QEMU command line (see :mod:`.cmdline`), builds the
graph (:mod:`.build`) and serves QMP on the monitors the line asks for
(``-chardev socket`` with ``path=`` or an inherited ``fd=``, ``-mon
chardev=ID,mode=control``, ``-qmp``), connects to ``-qtest`` and answers its clock
commands, and runs until ``quit`` or SIGTERM. It answers the help queries tests make
(``-machine help``, ``-drive format=help`` — only the drivers the engine really
implements — ``-device help``). An option it does not model is refused, never
ignored; errors use QEMU's wording, prefixed with QEMU's program name.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from engine.graph.drivers import DRIVERS, opens
from engine.launcher.build import BuildError, build
from engine.launcher.cmdline import (
    BLOCK_DEVICES,
    BUS_DEVICES,
    PROGRAM,
    CommandLine,
    CommandLineError,
    Option,
    parse,
)
from engine.launcher.machine import Machine
from engine.launcher.opts import split_opts
from engine.launcher.qtest import VirtualClock, serve_qtest
from engine.qmp.engine import Engine
from engine.server.server import QMPServer

#: the machine types ``-machine help`` lists (any is accepted; none changes the graph)
MACHINES = (("pc", "Standard PC (i440FX + PIIX, 1996) (alias of pc-i440fx-7.2)"),
            ("pc-i440fx-7.2", "Standard PC (i440FX + PIIX, 1996) (default)"),
            ("q35", "Standard PC (Q35 + ICH9, 2009) (alias of pc-q35-7.2)"),
            ("pc-q35-7.2", "Standard PC (Q35 + ICH9, 2009)"),
            ("none", "empty machine"))


class LaunchError(Exception):
    """The command line cannot be served; the text follows QEMU's program name."""


@dataclass
class Monitor:
    """One QMP monitor to serve: an inherited socket, a path to listen on or dial."""

    fd: int | None = None
    path: str | None = None
    server: bool = True


def supported_drivers() -> list[str]:
    """The block drivers the engine can open (what ``-drive format=help`` lists)."""
    # the jobs' own filter drivers (commit_top, mirror_top) are not for users; QEMU
    # does not list them either
    return sorted(name for name in DRIVERS if opens(name) and not name.endswith("_top"))


def help_text(option: Option) -> str:
    """What QEMU prints for a help query (only what the engine really has)."""
    if option.name == "-drive":
        formats = " ".join(supported_drivers())
        return f"Supported formats: {formats}\nSupported formats (read-only): {formats}\n"
    if option.name in ("-machine", "-M"):
        width = max(len(n) for n, _ in MACHINES)
        return "Supported machines are:\n" + "".join(
            f"{n:<{max(width, 20)}} {d}\n" for n, d in MACHINES)
    if option.name == "-device":
        names = sorted(BLOCK_DEVICES | BUS_DEVICES)
        return "Storage devices:\n" + "".join(f'name "{n}"\n' for n in names)
    if option.name == "-accel":
        return "Accelerators supported in QEMU binary:\ntcg\nqtest\n"
    if option.name == "-object":
        return "List of user creatable objects:\n  iothread\n"
    return ""


def monitors(line: CommandLine) -> list[Monitor]:
    """The QMP monitors of ``-chardev``/``-mon``/``-qmp``/``-monitor``."""
    chardevs: dict[str, dict[str, str]] = {}
    for option in line.of("-chardev"):
        props = dict(split_opts(option.arg or "", implied="backend"))
        if props.get("backend") != "socket":
            raise LaunchError(f"-chardev {option.arg}: only socket chardevs are modelled")
        if "id" not in props:
            raise LaunchError(f"-chardev {option.arg}: Parameter 'id' is missing")
        chardevs[props["id"]] = props
    found: list[Monitor] = []
    for option in line.of("-mon"):
        props = dict(split_opts(option.arg or "", implied="chardev"))
        if props.get("mode", "readline") != "control":
            raise LaunchError(f"-mon {option.arg}: only QMP monitors (mode=control) "
                              "are modelled")
        dev = chardevs.get(props.get("chardev", ""))
        if dev is None:
            raise LaunchError(f"-mon {option.arg}: chardev \"{props.get('chardev')}\" "
                              "not found")
        found.append(_monitor_of(dev))
    for option in line.of("-qmp", "-qmp-pretty", "-monitor"):
        arg = option.arg or ""
        if option.name == "-monitor" and arg in ("none", "null"):
            continue
        kind, _, rest = arg.partition(":")
        if kind != "unix":
            raise LaunchError(f"{option.name} {arg}: only unix: monitors are modelled")
        props = dict(split_opts(rest, implied="path"))
        found.append(Monitor(path=props["path"],
                             server=props.get("server", "on") in ("on", "yes", "true")))
    return found


def _monitor_of(props: dict[str, str]) -> Monitor:
    if "fd" in props:
        return Monitor(fd=int(props["fd"]))
    if "path" in props:
        return Monitor(path=props["path"], server=props.get("server", "off") in
                       ("on", "yes", "true"))
    raise LaunchError("chardev: only fd= and path= sockets are modelled")


def qtest_path(line: CommandLine) -> str | None:
    """The unix socket ``-qtest`` names (``unix:path=P`` or ``unix:P``)."""
    for option in line.of("-qtest"):
        kind, _, rest = (option.arg or "").partition(":")
        if kind != "unix":
            raise LaunchError(f"-qtest {option.arg}: only unix: sockets are modelled")
        return dict(split_opts(rest, implied="path"))["path"]
    return None


def main(argv: Sequence[str] | None = None) -> int:
    """Run the launcher; 0 after ``quit``, 1 for a command line QEMU would refuse."""
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        line = parse(words)
    except CommandLineError as exc:
        return _fail(str(exc))
    if line.help is not None:
        sys.stdout.write(help_text(line.help))
        return 0
    if line.unmodelled:
        return _fail(f"{line.unmodelled[0].text()}: not modelled by the bundled engine")
    engine = Engine()
    engine.graph.io.fatal = _quit    # type: ignore[method-assign]
    try:
        built = build(engine, line)
        mons = monitors(line)
        qtest = qtest_path(line)
    except (BuildError, LaunchError) as exc:
        engine.close()
        return _fail(str(exc))
    machine = Machine(engine, built, running=not any(o.name == "-S" for o in line.accepted))
    try:
        return asyncio.run(_serve(machine, mons, qtest))
    finally:
        engine.close()


def _quit(message: str) -> None:
    """QEMU quits where the engine meets a fatal condition (blkverify's mismatch, whose
    line is already on standard error): so does the launcher, with status 1."""
    sys.stdout.flush()
    os._exit(1)


def _fail(text: str) -> int:
    print(f"{PROGRAM}: {text}", file=sys.stderr)
    return 1


async def _serve(machine: Machine, mons: list[Monitor], qtest: str | None) -> int:
    server = QMPServer(machine)
    await server.start()
    tasks: list[asyncio.Task[None]] = []
    try:
        for mon in mons:
            if mon.fd is not None:
                sock = socket.socket(fileno=mon.fd)
                sock.setblocking(False)
                await server.add_connection(sock)
            elif mon.server:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(mon.path or "")
                await server.listen_unix(mon.path or "")
            else:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                sock.connect(mon.path or "")
                sock.setblocking(False)
                await server.add_connection(sock)
        if qtest is not None:
            # the test harness holds the other end: when it goes, so does the engine
            # (a harness that died or gave up on a launch never leaves one behind)
            task = asyncio.ensure_future(serve_qtest(qtest, VirtualClock()))
            task.add_done_callback(lambda _: server.request_stop())
            tasks.append(task)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.add_signal_handler(sig, server.request_stop)
        await server.serve_forever()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await server.close()
    return 0
