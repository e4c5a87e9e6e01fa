"""The command-line front ends of ``blockgraph``'s subcommands: arguments in, exit status out.

Each module has a ``main(argv) -> int`` that parses its arguments and hands the work to
the package that does it (the scripting, tours, offline and image code, the scene's
exporters); :mod:`gui.cli` imports a front end only when its subcommand is run, so a
headless command never loads Qt. ``info`` and ``serve`` are the engine's own front
ends (:mod:`engine.formats.cli`, :mod:`engine.server.cli`).
"""
