"""Refusals of QEMU's rules: one :class:`RuleViolation` subclass per kind of refusal.

Every class is a :class:`engine.refusal.Refusal` whose text is QEMU's exact text
(class ``GenericError`` unless said otherwise), so the engine sends it as it is and
the editor shows the same words before anything is sent.
"""

from __future__ import annotations

from engine.refusal import Refusal


class RuleViolation(Refusal):
    """A change QEMU would refuse; ``str()`` is QEMU's text (class ``GenericError``
    unless the subclass or ``error_class`` says otherwise)."""

    error_class = "GenericError"

    def __init__(self, text: str, error_class: str | None = None) -> None:
        super().__init__(error_class or type(self).error_class, text)


class NodeNotFound(RuleViolation):
    def __init__(self, name: str) -> None:
        super().__init__(f"Failed to find node with node-name='{name}'")
        self.name = name


class ReferenceNotFound(RuleViolation):
    """A child given by name that does not exist."""

    def __init__(self, name: str, device: str = "") -> None:
        super().__init__(f"Cannot find device='{device}' nor node-name='{name}'")
        self.name = name


class CycleViolation(RuleViolation):
    def __init__(self, child: str, role: str, parent: str) -> None:
        super().__init__(f"Making '{child}' a {role} child of '{parent}' would create a cycle")


class FrozenLink(RuleViolation):
    def __init__(self, role: str, parent: str, child: str) -> None:
        super().__init__(f"Cannot change frozen '{role}' link from '{parent}' to '{child}'")


class ImplicitChild(RuleViolation):
    def __init__(self, role: str, parent: str) -> None:
        super().__init__(f"Cannot replace implicit {role} child of {parent}")


class BackingMissing(RuleViolation):
    def __init__(self, name: str) -> None:
        super().__init__(f"backing is missing for '{name}'")


class NoBackingSupport(RuleViolation):
    def __init__(self, driver: str, name: str) -> None:
        super().__init__(f"Driver '{driver}' of node '{name}' does not support backing files")


class ReopenUnsupported(RuleViolation):
    def __init__(self, driver: str, name: str) -> None:
        super().__init__(
            f"Block format '{driver}' used by node '{name}' does not support reopening files")


class OptionChange(RuleViolation):
    """An option that cannot change on reopen (``node-name``, ``driver``, ...)."""

    def __init__(self, option: str) -> None:
        super().__init__(f"Cannot change the option '{option}'")
        self.option = option


class OptionReset(RuleViolation):
    def __init__(self, option: str) -> None:
        super().__init__(f"Option '{option}' cannot be reset to its default value")


class NodeNameMissing(RuleViolation):
    def __init__(self) -> None:
        super().__init__("node-name not specified")


class ReadOnlyWithWriters(RuleViolation):
    def __init__(self, name: str) -> None:
        super().__init__(f"Read-only block node '{name}' cannot support read-write users")


class NodeReadOnly(RuleViolation):
    def __init__(self) -> None:
        super().__init__("Block node is read-only")


class DetectZeroesUnmap(RuleViolation):
    def __init__(self) -> None:
        super().__init__("setting detect-zeroes to unmap is not allowed without setting "
                         "discard operation to unmap")


class NodeInUse(RuleViolation):
    def __init__(self, name: str) -> None:
        super().__init__(f"Node {name} is in use")


class NodeBusy(RuleViolation):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"Node '{name}' is busy: {reason}")


class NotMonitorOwned(RuleViolation):
    def __init__(self, name: str) -> None:
        super().__init__(f"Node {name} is not owned by the monitor")


class BlockDeviceInUse(RuleViolation):
    def __init__(self, name: str) -> None:
        super().__init__(f"Block device {name} is in use")


class InvalidNodeName(RuleViolation):
    """A user-given node name QEMU rejects (``Invalid node-name: 'x'``, too long)."""


class DuplicateNodeName(RuleViolation):
    def __init__(self, name: str) -> None:
        super().__init__(f"Duplicate nodes with node-name='{name}'")


class NotInChain(RuleViolation):
    """A base that is not below the streamed/committed node."""


class DeviceNotFound(RuleViolation):
    error_class = "DeviceNotFound"

    def __init__(self, name: str) -> None:
        super().__init__(f"Device '{name}' not found")


class JobIdInUse(RuleViolation):
    def __init__(self, job_id: str) -> None:
        super().__init__(f"Job ID '{job_id}' already in use")


class Unexpected(RuleViolation):
    """QAPI refused the arguments before QEMU looked at the graph."""


class PermissionConflict(RuleViolation):
    """Two parents of a node want what the other does not share (QEMU's text)."""

    def __init__(self, node: str, missing: str, wants: str, wants_role: str,
                 refuses: str, refuses_role: str) -> None:
        super().__init__(
            f"Permission conflict on node '{node}': permissions '{missing}' "
            f"are both required by {wants} (uses node '{node}' as '{wants_role}' child) "
            f"and unshared by {refuses} (uses node '{node}' as '{refuses_role}' child).")


class LockConflict(RuleViolation):
    """An image lock another node on the same host file holds (``Failed to get ...``)."""


class DeviceWithoutBackend(RuleViolation):
    def __init__(self) -> None:
        super().__init__("Device does not have a block device backend")
