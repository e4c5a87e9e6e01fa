"""The ``blockgraph`` command.

``blockgraph`` alone opens the editor on the bundled engine with a demo chain;
``blockgraph SUBCOMMAND ...`` runs a headless tool. Each subcommand's front end is a
module with a ``main(argv) -> int`` (:mod:`gui.commands`, and the engine's own for
``info`` and ``serve``), imported only when used — so that ``blockgraph serve`` and
``blockgraph info`` never load Qt. Without a subcommand, :mod:`gui.window.app`.
"""

from __future__ import annotations

import importlib
import sys

import engine

#: subcommand -> (module, one-line description)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "info": ("engine.formats.cli", "describe an image file, like qemu-img info"),
    "serve": ("engine.server.cli", "serve the bundled engine over QMP on a socket"),
    "qemu": ("engine.launcher.cli", "start the bundled engine from a QEMU command line "
                                    "(-drive, -blockdev, -device, -qmp...)"),
    "render": ("gui.commands.render", "draw a graph to SVG/PNG/DOT/JSON without a window"),
    "tour": ("gui.commands.tour", "run a guided tour of QMP block operations"),
    "replay": ("gui.commands.replay", "replay a recorded QMP script against an endpoint"),
    "plan": ("gui.commands.plan", "plan an edit (rebase, snapshot, stream, commit, ...) "
                                  "as QMP, check it, print it, --apply it"),
    "offline": ("gui.commands.offline",
                "show image files' backing chains and fix them, without QEMU"),
}

USAGE = """\
usage: blockgraph [--connect unix:PATH|tcp:HOST:PORT | --demo | IMAGE ...]
       blockgraph --connect qemu:///system      every libvirt VM of a connection at once
       blockgraph --list [--connect URI ...]   what this host offers to connect to
       blockgraph --qemu-cmdline FILE|-        the block graph of a QEMU command line
       blockgraph SUBCOMMAND [ARGS ...]

With no arguments, opens the editor on the bundled engine with a demo disk chain.

subcommands:
{commands}

Run 'blockgraph SUBCOMMAND --help' for a subcommand's options.
"""


def _usage() -> str:
    width = max(len(name) for name in SUBCOMMANDS)
    lines = [f"  {name:<{width}}  {desc}" for name, (_, desc) in SUBCOMMANDS.items()]
    return USAGE.format(commands="\n".join(lines))


def main(argv: list[str] | None = None) -> int:
    """Dispatch to a subcommand or start the editor; returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in ("-h", "--help"):
        print(_usage())
        return 0
    if args and args[0] == "--version":
        print(f"blockgraph {engine.__version__}")
        return 0
    if args and args[0] == "--list":
        from gui.discovery.listing import main as list_main

        return list_main(args[1:])
    if args and args[0] in SUBCOMMANDS:
        module_name, _ = SUBCOMMANDS[args[0]]
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and module_name.startswith(exc.name):
                print(f"blockgraph: '{args[0]}' is not available in this build", file=sys.stderr)
                return 2
            raise
        return int(module.main(args[1:]) or 0)
    from gui.window import app  # lazily: the editor loads Qt, the subcommands need not

    return int(app.main(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
