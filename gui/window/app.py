"""``blockgraph`` with no subcommand: the editor window, on qasync's Qt event loop.

    blockgraph                          the bundled engine with the demo chains
    blockgraph --connect unix:PATH      a remote QEMU / qemu-storage-daemon
    blockgraph IMAGE ...                the bundled engine with these images open
    blockgraph --qemu-cmdline FILE|-    the block graph a QEMU command line builds
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import qasync
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from gui.lifecycle.display import exit_status_without_display
from gui.lifecycle.shutdown import end_without_teardown
from gui.lifecycle.signals import close_on_signals
from gui.widgets.command_line import last_command_line
from gui.window.main_window import MainWindow


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="blockgraph", description=__doc__.split("\n\n")[0])
    parser.add_argument("--connect", metavar="ADDR", help="unix:PATH or tcp:HOST:PORT")
    parser.add_argument("--demo", action="store_true", help="the bundled engine with the "
                        "demo chains (the default without --connect or images)")
    parser.add_argument("--demo-dir", type=Path, help="where to write the demo images")
    parser.add_argument("--qemu-cmdline", metavar="FILE", help="the block graph of a QEMU "
                        "command line read from FILE ('-': standard input), e.g. a libvirt "
                        "domain log (its last command line)")
    parser.add_argument("--dark", action="store_true", help="dark colours")
    parser.add_argument("--settings", type=Path, help="settings file (default: the user's)")
    parser.add_argument("images", nargs="*", help="image files to open on the bundled engine")
    return parser.parse_args(argv)


async def start(window: MainWindow, args: argparse.Namespace) -> None:
    if args.connect:
        await window.open_remote(args.connect)
    elif args.qemu_cmdline:
        await window.connection.open_command_line(args.qemu_cmdline_text)
    elif args.images:
        if await window.open_bundled(demo=False):
            for path in args.images:
                window.open_image(path)
    else:
        await window.open_bundled(args.demo_dir)


def read_command_line(source: str) -> str:
    """The command line in file ``source`` (``-``: standard input); from a libvirt
    domain log, its last one."""
    text = sys.stdin.read() if source == "-" else Path(source).read_text(
        encoding="utf-8", errors="replace")
    return last_command_line(text)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    if args.qemu_cmdline:
        try:
            args.qemu_cmdline_text = read_command_line(args.qemu_cmdline)
        except OSError as exc:
            print(f"blockgraph: --qemu-cmdline {args.qemu_cmdline}: {exc.strerror}",
                  file=sys.stderr)
            return 2
    if (status := exit_status_without_display()) is not None:
        return status
    app = QApplication.instance() or QApplication([sys.argv[0]])
    assert isinstance(app, QApplication)
    app.setApplicationName("blockgraph")
    app.setOrganizationName("blockgraph")
    app.setDesktopFileName("blockgraph")
    settings = (QSettings(str(args.settings), QSettings.Format.IniFormat) if args.settings
                else QSettings())
    window = MainWindow(settings, scheme="dark" if args.dark else None)
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    closed = asyncio.Event()
    # The loop must outlive the window: closing it only starts the shutdown, and the
    # session is closed on the loop before run_until_complete returns. (With Qt quitting
    # on the last window, a close while the session was busy ended in "Event loop
    # stopped before Future completed" and exit status 1.)
    app.setQuitOnLastWindowClosed(False)
    app.lastWindowClosed.connect(closed.set)
    quitting = False

    def qt_quitting() -> None:
        # Qt ends its loop by itself (the X server went away, as when Ctrl+C reaches
        # both xvfb-run's server and the editor): nothing can be awaited after this,
        # so settings are saved and the session dropped here, synchronously.
        nonlocal quitting
        if not quitting:
            quitting = True
            window.save_settings()
            window.abandon_session()
        closed.set()

    app.aboutToQuit.connect(qt_quitting)
    window.show()
    close_on_signals(window.close, window)

    async def run() -> None:
        window.spawn(start(window, args), "start")
        await closed.wait()
        if not quitting:
            await window.close_session()

    with loop:
        try:
            loop.run_until_complete(run())
        except RuntimeError:
            if not quitting:
                raise
            # the loop stopped with Qt's before run() saw the event: expected here
        if quitting:   # before the loop is closed: nothing of it is torn down
            end_without_teardown(0)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("QT_API", "pyside6")
    sys.exit(main())
