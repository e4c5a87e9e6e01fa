"""Node names: QEMU's validity rules and its auto-generated ``#blockNNN`` names.

An auto name is ``#block`` + a process-wide counter (from 0, +1 per generated name)
+ two random decimal digits. The random source is injectable (``rng``) or seedable
(``seed``) so tests and demos get reproducible names, and the namer's state can be
saved and restored so a failed transaction leaves the counter exactly as it was.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

MAX_NAME_LENGTH = 31
_NAME_RE = re.compile(r"[A-Za-z][A-Za-z0-9\-._]*\Z")


def well_formed_id(name: str) -> bool:
    """QEMU's rule for identifiers (object ids): letters, digits, ``-._``, a letter first."""
    return bool(_NAME_RE.match(name))


def check_node_name(name: str) -> str | None:
    """QEMU's error text for an invalid user-given node name, or None if it is valid."""
    if not _NAME_RE.match(name):
        return f"Invalid node-name: '{name}'"
    if len(name) > MAX_NAME_LENGTH:
        return "Node name too long"
    return None


def check_job_id(job_id: str) -> str | None:
    """Job ids follow the node-name charset rule but have no length limit."""
    if not _NAME_RE.match(job_id):
        return f"Invalid job ID '{job_id}'"
    return None


@dataclass(frozen=True)
class NamerState:
    counter: int
    rng_state: object


class AutoNamer:
    """Generates ``#block<counter><two random digits>`` like QEMU's ``id_generate``."""

    def __init__(self, seed: int | None = None, rng: random.Random | None = None) -> None:
        self.rng = rng if rng is not None else random.Random(seed)
        self.counter = 0

    def next_name(self) -> str:
        name = f"#block{self.counter:d}{self.rng.randrange(100):02d}"
        self.counter += 1
        return name

    def save(self) -> NamerState:
        return NamerState(self.counter, self.rng.getstate())

    def restore(self, state: NamerState) -> None:
        self.counter = state.counter
        self.rng.setstate(state.rng_state)  # type: ignore[arg-type]
