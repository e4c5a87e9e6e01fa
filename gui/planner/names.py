"""Names a plan makes up: job ids QEMU accepts, for nodes whatever their names.

QEMU's job ids follow its node-name rule (a letter first, then letters, digits, ``-``
``.`` ``_``), so a job on an auto-named node (``#block258``) cannot be called
``stream-#block258``: the id is made from the name's valid characters
(``stream-block258``) and made unique among the jobs the graph shows.
"""

from __future__ import annotations

import re

from engine.graph.view import GraphView

_INVALID = re.compile(r"[^A-Za-z0-9\-._]")


def job_id_for(graph: GraphView, kind: str, node: str) -> str:
    """``kind-node`` as a valid job id no job in ``graph`` has."""
    stem = _INVALID.sub("", node) or "node"
    base = f"{kind}-{stem}"
    job_id, n = base, 2
    while graph.node_info(f"job:{job_id}") is not None:
        job_id, n = f"{base}-{n}", n + 1
    return job_id
