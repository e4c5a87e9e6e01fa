"""``blkdebug``'s rules: error injection, states and breakpoints, as QEMU 7.2 runs them.

A ``blkdebug`` node holds rules keyed by *event* (``read_aio``, ``write_aio``, …, the
points where the format driver above it says what it is about to do to its file):

* ``inject-error`` rules (from the node's options or its ``config`` file) become
  *active* when their event fires in their state (a state of 0: any). Every event
  whose processing activates at least one such rule replaces the active set; events
  that activate none leave it as it was. Each request the node then receives fails
  with the errno of the first active rule (the most recently added first) whose
  ``sector`` lies inside the request (or that has none) and whose ``iotype`` matches;
  a ``once`` rule is deleted when it fails a request.
* ``set-state`` rules move the node to ``new_state`` when their event fires in their
  state; the node starts in state 1.
* *breakpoints* (``qemu-io``'s ``break EVENT TAG``) suspend the request that fires
  their event, once; ``resume TAG`` lets one such request go on, ``remove_break TAG``
  deletes the breakpoints of a tag and lets all its requests go on.

``immediately`` (whether QEMU lets other coroutines run before the failure) changes
nothing here: a request fails in its own thread either way.

A suspended request is a thread waiting here: it waits on a condition over the
graph's I/O lock (``lock``), which it gives up while it waits, so that the monitor can
answer — and resume it — meanwhile.
"""

from __future__ import annotations

import errno as errno_mod
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: QEMU 7.2's BlkdebugEvent, in its order
EVENTS = (
    "l1_update", "l1_grow_alloc_table", "l1_grow_write_table", "l1_grow_activate_table",
    "l2_load", "l2_update", "l2_update_compressed", "l2_alloc_cow_read", "l2_alloc_write",
    "read_aio", "read_backing_aio", "read_compressed", "write_aio", "write_compressed",
    "vmstate_load", "vmstate_save", "cow_read", "cow_write", "reftable_load",
    "reftable_grow", "reftable_update", "refblock_load", "refblock_update",
    "refblock_update_part", "refblock_alloc", "refblock_alloc_hookup",
    "refblock_alloc_write", "refblock_alloc_write_blocks", "refblock_alloc_write_table",
    "refblock_alloc_switch_table", "cluster_alloc", "cluster_alloc_bytes", "cluster_free",
    "flush_to_os", "flush_to_disk", "pwritev_rmw_head", "pwritev_rmw_after_head",
    "pwritev_rmw_tail", "pwritev_rmw_after_tail", "pwritev", "pwritev_zero",
    "pwritev_done", "empty_image_prepare", "l1_shrink_write_table",
    "l1_shrink_free_l2_clusters", "cor_write", "cluster_alloc_space", "none",
)
#: QEMU 7.2's BlkdebugIOType
IOTYPES = ("read", "write", "write-zeroes", "discard", "flush", "block-status")
#: what an ``inject-error`` rule without ``iotype`` fails (all but block-status)
DEFAULT_IOTYPES = frozenset(IOTYPES[:-1])
SECTOR = 512

_INJECT_KEYS = ("event", "state", "iotype", "errno", "sector", "once", "immediately")
_SET_STATE_KEYS = ("event", "state", "new_state")
_GROUPS = {"inject-error": _INJECT_KEYS, "set-state": _SET_STATE_KEYS}


class BlkdebugError(Exception):
    """A rule or config file QEMU refuses; the text is QEMU's."""


@dataclass(eq=False)
class Rule:
    """One rule: ``action`` is ``inject``, ``set-state`` or ``suspend``."""

    event: str
    action: str
    state: int = 0
    errno: int = errno_mod.EIO
    offset: int | None = None          # the byte offset of ``sector`` (None: anywhere)
    once: bool = False
    immediately: bool = False
    iotypes: frozenset[str] = DEFAULT_IOTYPES
    new_state: int = 0
    tag: str = ""


@dataclass(eq=False)
class _Suspended:
    tag: str
    resumed: bool = False


@dataclass(eq=False)
class BlkdebugState:
    """The rules, the state and the suspended requests of one ``blkdebug`` node."""

    lock: Any = field(default_factory=threading.RLock)
    #: rules by event, the newest first (QEMU inserts at the head)
    rules: dict[str, list[Rule]] = field(default_factory=dict)
    active: list[Rule] = field(default_factory=list)
    state: int = 1
    suspended: list[_Suspended] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._cond = threading.Condition(self.lock)

    def add(self, rule: Rule) -> None:
        with self.lock:
            self.rules.setdefault(rule.event, []).insert(0, rule)

    def _remove(self, rule: Rule) -> None:
        listed = self.rules.get(rule.event, [])
        if rule in listed:
            listed.remove(rule)

    # -- requests --------------------------------------------------------------------
    def event(self, name: str) -> None:
        """The parent fires ``name``: activate, change state, suspend (here, waiting)."""
        mine: list[_Suspended] = []
        with self._cond:
            new_state = self.state
            injected = 0
            for rule in list(self.rules.get(name, ())):
                if rule.state and rule.state != self.state:
                    continue
                if rule.action == "inject":
                    injected += 1
                    if injected == 1:
                        self.active = []
                    self.active.insert(0, rule)
                elif rule.action == "set-state":
                    new_state = rule.new_state
                else:
                    self._remove(rule)
                    request = _Suspended(rule.tag)
                    self.suspended.insert(0, request)
                    mine.append(request)
            self.state = new_state
            if mine:
                self._cond.notify_all()
            for request in mine:
                while not request.resumed:
                    self._cond.wait()

    def check(self, iotype: str, offset: int, length: int) -> int:
        """The errno the request fails with (0: none), deleting a ``once`` rule that fires."""
        with self.lock:
            for rule in self.active:
                hit = rule.offset is None or (length and offset <= rule.offset < offset + length)
                if hit and iotype in rule.iotypes:
                    break
            else:
                return 0
            if not rule.errno:
                return 0
            if rule.once:
                self.active.remove(rule)
                self._remove(rule)
            return rule.errno

    # -- breakpoints -----------------------------------------------------------------
    def set_breakpoint(self, event: str, tag: str) -> int:
        """0, or -ENOENT for an event QEMU does not know."""
        if event not in EVENTS:
            return -errno_mod.ENOENT
        self.add(Rule(event, "suspend", tag=tag))
        return 0

    def resume(self, tag: str, *, every: bool = False) -> int:
        """Let one (``every``: all) suspended request of ``tag`` go on; -ENOENT if none."""
        with self._cond:
            found = [r for r in self.suspended if r.tag == tag]
            if not every:
                found = found[:1]
            for request in found:
                self.suspended.remove(request)
                request.resumed = True
            self._cond.notify_all()
        return 0 if found else -errno_mod.ENOENT

    def remove_breakpoint(self, tag: str) -> int:
        with self.lock:
            removed = False
            for listed in self.rules.values():
                for rule in [r for r in listed if r.action == "suspend" and r.tag == tag]:
                    listed.remove(rule)
                    removed = True
        resumed = self.resume(tag, every=True) == 0
        return 0 if removed or resumed else -errno_mod.ENOENT

    def is_suspended(self, tag: str) -> bool:
        with self.lock:
            return any(r.tag == tag for r in self.suspended)

    def resume_all(self) -> None:
        """The node goes away: nothing may stay suspended in it."""
        with self._cond:
            for request in self.suspended:
                request.resumed = True
            self.suspended.clear()
            self._cond.notify_all()


# -- building the rules ---------------------------------------------------------------
def _number(value: Any, key: str) -> int:
    if isinstance(value, bool):
        raise BlkdebugError(f"Parameter '{key}' expects a number")
    if isinstance(value, int):
        return value
    try:
        return int(str(value), 0)
    except ValueError:
        raise BlkdebugError(f"Parameter '{key}' expects a number") from None


def _bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value)
    if text in ("on", "yes", "true", "y"):
        return True
    if text in ("off", "no", "false", "n"):
        return False
    raise BlkdebugError(f"Parameter '{key}' expects 'on' or 'off'")


def make_rule(group: str, values: dict[str, Any]) -> Rule:
    """One ``[inject-error]`` or ``[set-state]`` group as a rule (QEMU's checks)."""
    for key in values:
        if key not in _GROUPS[group]:
            raise BlkdebugError(f"Invalid parameter '{key}'")
    event = values.get("event")
    if event is None:
        raise BlkdebugError("Missing event name for rule")
    event = str(event)
    if event not in EVENTS:
        raise BlkdebugError(f"invalid parameter value: {event}")
    state = _number(values.get("state", 0), "state")
    if group == "set-state":
        return Rule(event, "set-state", state=state,
                    new_state=_number(values.get("new_state", 0), "new_state"))
    sector = _number(values.get("sector", -1), "sector")
    iotype = values.get("iotype")
    if iotype is not None and str(iotype) not in IOTYPES:
        raise BlkdebugError(f"invalid parameter value: {iotype}")
    return Rule(event, "inject", state=state,
                errno=_number(values.get("errno", errno_mod.EIO), "errno"),
                offset=None if sector == -1 else sector * SECTOR,
                once=_bool(values.get("once", False), "once"),
                immediately=_bool(values.get("immediately", False), "immediately"),
                iotypes=frozenset({str(iotype)}) if iotype is not None else DEFAULT_IOTYPES)


_SECTION = re.compile(r'\[\s*([A-Za-z0-9_-]+)\s*(?:"[^"]*"\s*)?\]\s*$')
_ASSIGN = re.compile(r'\s*([A-Za-z0-9_.-]+)\s*=\s*"([^"]*)"\s*$')


def read_config(path: str) -> list[tuple[str, dict[str, str]]]:
    """The groups of a blkdebug config file (QEMU's ini-like syntax), in file order."""
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise BlkdebugError(f"Could not read blkdebug config file: "
                            f"{exc.strerror}") from exc
    groups: list[tuple[str, dict[str, str]]] = []
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        section = _SECTION.match(stripped)
        if section:
            name = section.group(1)
            if name not in _GROUPS:
                raise BlkdebugError(f"{path}:{number}: There is no option group '{name}'")
            groups.append((name, {}))
            continue
        assign = _ASSIGN.match(stripped)
        if assign is None:
            raise BlkdebugError(f"{path}:{number}: parse error")
        if not groups:
            raise BlkdebugError(f"{path}:{number}: no group defined")
        groups[-1][1][assign.group(1)] = assign.group(2)
    return groups


def build_state(options: dict[str, Any], lock: Any) -> BlkdebugState:
    """The node's rules from its ``config`` file, then its ``inject-error`` and
    ``set-state`` options (QEMU adds every inject rule before the set-state ones)."""
    groups: list[tuple[str, dict[str, Any]]] = []
    if options.get("config") is not None:
        groups.extend(read_config(str(options["config"])))
    for group in ("inject-error", "set-state"):
        groups.extend((group, dict(item)) for item in options.get(group, ()) or ())
    state = BlkdebugState(lock=lock)
    for wanted in ("inject-error", "set-state"):
        for group, values in groups:
            if group == wanted:
                state.add(make_rule(group, values))
    state.event("none")
    return state


def check_limits(options: dict[str, Any], child_alignment: int = 1) -> None:
    """QEMU's refusals of ``align``, ``max-transfer`` and the zero/discard limits."""
    int_max = (1 << 31) - 1
    align_opt = int(options.get("align", 0) or 0)
    if align_opt and (align_opt >= int_max or align_opt & (align_opt - 1)):
        raise BlkdebugError(f"Cannot meet constraints with align {align_opt}")
    align = max(align_opt, child_alignment)
    for key, unit in (("max-transfer", align), ("opt-write-zero", align),
                      ("max-write-zero", max(int(options.get("opt-write-zero", 0) or 0),
                                             align)),
                      ("opt-discard", align),
                      ("max-discard", max(int(options.get("opt-discard", 0) or 0), align))):
        value = int(options.get(key, 0) or 0)
        if value and (value >= int_max or value % unit):
            raise BlkdebugError(f"Cannot meet constraints with {key} {value}")

