"""The engine's QMP face: :class:`Engine` (``execute`` / events) and :class:`QMPError`.

Commands are registered with :func:`engine.qmp.registry.command` and checked
against schemas from :mod:`engine.qmp.schema`.
"""

from engine.qmp.engine import Engine
from engine.qmp.errors import QMPError

__all__ = ["Engine", "QMPError"]
