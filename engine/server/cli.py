"""``blockgraph serve``: the bundled engine as a QMP server, like qemu-storage-daemon.

``blockgraph serve --socket PATH`` behaves like ``qemu-storage-daemon --chardev
socket,path=PATH,server=on,wait=off,id=c0 --monitor chardev=c0``: any QMP client
(``qmp-shell PATH``, qemu.qmp, libvirt-style tools) connects, gets the greeting,
negotiates and sends commands; several clients may be connected at once. The server
runs until a client sends ``quit`` or it receives SIGTERM/SIGINT, then closes every
image cleanly and removes its socket.

Options:

* ``--socket PATH`` (repeatable): a unix socket with owner-only permissions.
* ``--tcp HOST:PORT`` (repeatable): also listen on TCP. An empty HOST means
  127.0.0.1; listening beyond loopback must be asked for by name, since QMP has no
  authentication.
* ``--root DIR``: every file a command opens or creates must lie inside DIR
  (``..``, symlinks and absolute paths leading out are refused).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import os
import signal
import sys
from pathlib import Path

import engine
from engine.qmp import Engine
from engine.server.heap import tune_for_server
from engine.server.server import QMPServer, ServeError

DEFAULT_TCP_HOST = "127.0.0.1"
#: seconds a thread that wants the interpreter's lock waits before asking its holder
#: to hand it over (Python's default: 5 ms)
SWITCH_INTERVAL = 0.0005


def parse_tcp_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` → (host, port); an empty host is loopback; ``[v6]:port`` works."""
    host, sep, port_text = text.rpartition(":")
    if not sep:
        raise argparse.ArgumentTypeError(f"'{text}' is not HOST:PORT")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    try:
        port = int(port_text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{port_text}' is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port {port} is out of range")
    return host or DEFAULT_TCP_HOST, port


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="blockgraph serve",
        description="Serve the bundled block engine over QMP, like qemu-storage-daemon's "
                    "monitor. Connect with e.g. 'qmp-shell PATH'. Runs until a client "
                    "sends 'quit' or SIGTERM/SIGINT, then closes the images.")
    parser.add_argument("--socket", metavar="PATH", action="append", default=[],
                        help="listen on a unix socket (mode 0600); repeatable")
    parser.add_argument("--tcp", metavar="HOST:PORT", action="append", default=[],
                        type=parse_tcp_address,
                        help="also listen on TCP; an empty HOST means 127.0.0.1 "
                             "(QMP has no authentication); repeatable")
    parser.add_argument("--root", metavar="DIR", type=Path,
                        help="confine every file the engine opens or creates to DIR")
    parser.add_argument("--version", action="version",
                        version=f"blockgraph serve {engine.__version__}")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the server; the process ends with its status (0 after quit or a signal), or
    1 is returned when it could not start."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.socket and not args.tcp:
        parser.error("nothing to listen on: give --socket PATH and/or --tcp HOST:PORT")
    if args.root is not None and not args.root.is_dir():
        parser.error(f"--root {args.root}: not a directory")
    try:
        status = asyncio.run(_serve(args))
    except ServeError as exc:
        print(f"blockgraph serve: {exc}", file=sys.stderr)
        return 1
    # Clients, engine and images are all closed now. The interpreter's own teardown
    # (modules, threads, buffers a stuck client left) took a third of the one second
    # that quit and SIGTERM may take, so the process ends here.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)


async def _serve(args: argparse.Namespace) -> int:
    eng = Engine(root=args.root)
    eng.graph.io.fatal = _quit    # type: ignore[method-assign]
    server = QMPServer(eng)
    try:
        await server.start()
        for path in args.socket:
            where = await server.listen_unix(path)
            _announce(f"unix:{where}")
        for host, port in args.tcp:
            bound_host, bound_port = await server.listen_tcp(host, port)
            _announce(f"tcp:{bound_host}:{bound_port}")
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, server.request_stop)
        # What start-up made (modules, the engine) lives as long as the server: the
        # cyclic collector need not walk it again in every full collection, which
        # would pause every client for that long.
        gc.freeze()
        # The worker thread drops the interpreter's lock for every system call and
        # C call that releases it, and takes it straight back; the loop, which
        # drops it for every read and write, then waits the switch interval for it
        # again. A short interval keeps those waits short while the worker works.
        sys.setswitchinterval(SWITCH_INTERVAL)
        tune_for_server()
        await server.serve_forever()
    finally:
        await server.close()
        await asyncio.get_running_loop().run_in_executor(None, eng.close)
        with contextlib.suppress(Exception):
            for sig in (signal.SIGTERM, signal.SIGINT):
                asyncio.get_running_loop().remove_signal_handler(sig)
    return 0


def _quit(message: str) -> None:
    """Where qemu-storage-daemon quits (blkverify's mismatch, whose line is already on
    standard error), the server does too, with status 1, closing nothing: clients see
    the connection go, as with QEMU."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(1)


def _announce(where: str) -> None:
    print(f"blockgraph serve: listening on {where}", file=sys.stderr, flush=True)
