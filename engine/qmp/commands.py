"""Every QMP command module of the engine, imported here by name.

Importing a command module registers its commands (:mod:`engine.qmp.registry`); the
engine imports this module, so the whole command table exists — or the import fails
at start-up — before the first command runs.
"""

from engine.qmp import (
    commands_backend,
    commands_block,
    commands_children,
    commands_core,
    commands_jobs,
    commands_qom,
    commands_snapshot,
)

MODULES = (commands_core, commands_block, commands_backend, commands_jobs, commands_snapshot,
           commands_qom, commands_children)
