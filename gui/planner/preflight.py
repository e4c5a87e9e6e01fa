"""Preflight: the engine's rules (:mod:`engine.graph.rules`) asked about an intent.

Runs on every mouse move during a drag, so it must stay cheap (< 1 ms on 1,000 nodes):
it looks only at the nodes an intent touches and their neighbourhood.

Not wired yet: until :mod:`engine.graph.rules` exists these answer ``[]`` (nothing is
refused here; QEMU's own refusal still arrives as CommandFailed).
"""

from __future__ import annotations

from typing import Any


def check(ctx: Any, intent: Any) -> list[Exception]:
    """Typed reasons QEMU would refuse ``intent`` for on ``ctx.snapshot`` ([] = allowed)."""
    return []


def check_staged(ctx: Any, intents: list[Any]) -> list[Exception]:
    """Reasons to refuse a staged list of link edits, each checked on the graph before it."""
    return []
