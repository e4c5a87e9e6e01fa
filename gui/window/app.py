"""``blockgraph`` with no subcommand: the editor window, on qasync's Qt event loop.

    blockgraph                          the bundled engine with the demo chains
    blockgraph --connect unix:PATH      a remote QEMU / qemu-storage-daemon
    blockgraph --connect qemu:///system every VM of a libvirt connection (gui.vms)
    blockgraph IMAGE ...                the bundled engine with these images open
    blockgraph --qemu-cmdline FILE|-    the block graph a QEMU command line builds
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QApplication

from gui.lifecycle.display import exit_status_without_display
from gui.lifecycle.event_loop import run_window
from gui.widgets.command_line import last_command_line
from gui.window.main_window import MainWindow


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="blockgraph", description=__doc__.split("\n\n")[0])
    parser.add_argument("--connect", metavar="ADDR", help="unix:PATH or tcp:HOST:PORT; "
                        "a libvirt URI shows all its VMs")
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
            window.open_images(args.images)      # one review, in the order given
    else:
        await window.open_bundled(args.demo_dir)


def _names_a_libvirt_host(address: str | None) -> bool:
    """A libvirt URI opens the VMs window (``qemu:///system#vm1``: with vm1 focused)."""
    scheme, sep, _ = (address or "").partition(":")
    return bool(sep) and (scheme in ("qemu", "test") or scheme.startswith(("qemu+", "test+")))


def read_command_line(source: str) -> str:
    """The command line in file ``source`` (``-``: standard input); from a libvirt
    domain log, its last one."""
    text = sys.stdin.read() if source == "-" else Path(source).read_text(
        encoding="utf-8", errors="replace")
    return last_command_line(text)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(list(sys.argv[1:] if argv is None else argv))
    if _names_a_libvirt_host(args.connect):
        # the VMs window needs the libvirt binding: loaded only for a libvirt URI
        from gui.vms import app as vms_app

        return vms_app.main([args.connect], args.settings)
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

    def abandon() -> None:
        # Qt ended its loop by itself: settings saved, the session and the teaching
        # engines dropped, at once
        window.save_settings()
        window.abandon_session()
        window.abandon_teaching()

    async def finish() -> None:
        await window.close_session()
        await window.close_teaching()

    return run_window(app, window, start=lambda: window.spawn(start(window, args), "start"),
                      finish=finish, abandon=abandon)


if __name__ == "__main__":
    os.environ.setdefault("QT_API", "pyside6")
    sys.exit(main())
