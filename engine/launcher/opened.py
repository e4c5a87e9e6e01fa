"""A pasted QEMU command line opened on the bundled engine, for looking at, not running.

The editor opens the command line ``ps`` shows or libvirt writes into its log: the
graph it builds (nodes, drives, devices), served like any bundled engine, and the
options blockgraph does not model named next to it — nothing is refused, since the
user wants to see what can be seen. Monitors, qtest and the like are read but not
served: this engine answers only the editor.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.launcher.build import build
from engine.launcher.cmdline import CommandLine, parse, split_words
from engine.launcher.machine import Machine
from engine.qmp.engine import Engine


@dataclass
class OpenedCommandLine:
    """The engine built from a command line, and what the line held."""

    machine: Machine
    line: CommandLine

    def unmodelled(self) -> list[str]:
        """The options blockgraph does not model, as written."""
        return [o.text() for o in self.line.unmodelled]


def open_command_line(text: str, engine: Engine | None = None) -> OpenedCommandLine:
    """Build the graph of ``text`` (a whole command line, quoted as a shell would have
    it, with or without libvirt's environment prefix and line continuations).

    Raises :class:`engine.launcher.cmdline.CommandLineError` or
    :class:`engine.launcher.build.BuildError` with QEMU's text when QEMU would refuse
    the line too.
    """
    line = parse(split_words(text))
    eng = engine if engine is not None else Engine()
    try:
        built = build(eng, line)
    except Exception:
        if engine is None:
            eng.close()
        raise
    return OpenedCommandLine(Machine(eng, built), line)
