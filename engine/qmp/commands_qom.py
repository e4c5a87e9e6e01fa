"""User-creatable objects: ``object-add``, ``object-del``, ``qom-get`` and ``qom-set``.

The objects the block layer uses are ``throttle-group`` objects (see
:mod:`engine.graph.throttle`); other object types are valid QMP but not modelled, and
are refused with a clear text. The objects live under ``/objects`` in QEMU's object
tree, so ``qom-get``/``qom-set`` find them by that path (absolute, or a partial path
such as the bare id).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from engine.graph.names import well_formed_id
from engine.graph.throttle import (
    LEGACY_PROPERTIES,
    LIMIT_MEMBERS,
    ThrottleError,
    ThrottleGroup,
    configure,
)
from engine.qmp.registry import command
from engine.qmp.schema import AnyType, Enum, Int, Str, Struct, Union, members, validate
from engine.refusal import device_not_found, generic, invalid_parameter_value

if TYPE_CHECKING:
    from engine.qmp.engine import Engine

#: ObjectType values of a Debian QEMU 7.2 qemu-storage-daemon
OBJECT_TYPES = (
    "authz-list", "authz-listfile", "authz-pam", "authz-simple", "can-bus",
    "can-host-socketcan", "colo-compare", "cryptodev-backend", "cryptodev-backend-builtin",
    "cryptodev-backend-lkcf", "cryptodev-vhost-user", "dbus-vmstate", "filter-buffer",
    "filter-dump", "filter-mirror", "filter-redirector", "filter-replay", "filter-rewriter",
    "input-barrier", "input-linux", "iothread", "main-loop", "memory-backend-epc",
    "memory-backend-file", "memory-backend-memfd", "memory-backend-ram", "pef-guest",
    "pr-manager-helper", "qtest", "rng-builtin", "rng-egd", "rng-random", "secret",
    "secret_keyring", "sev-guest", "thread-context", "s390-pv-guest", "throttle-group",
    "tls-creds-anon", "tls-creds-psk", "tls-creds-x509", "tls-cipher-suites",
    "x-remote-object", "x-vfio-user-server",
)

ThrottleLimits = Struct("ThrottleLimits", members({"*" + m: Int() for m in LIMIT_MEMBERS}))
_THROTTLE_GROUP = members({"*limits": ThrottleLimits,
                           **{"*" + p: Int() for p in LEGACY_PROPERTIES}})
ObjectOptions = Union("ObjectOptions", members({
    "qom-type": Enum("ObjectType", OBJECT_TYPES), "id": Str()}),
    discriminator="qom-type", variants={"throttle-group": _THROTTLE_GROUP})
_LIMITS_VALUE = Struct("qom-set", members({"limits": ThrottleLimits}))

_CONTAINER = "container"


@command("object-add", ObjectOptions, boxed=True)
def object_add(engine: Engine, args: dict[str, Any]) -> Any:
    """QEMU's order: the id's form, the type, the properties, the id's uniqueness, then
    the object's own completion (a group's limits checked as a whole)."""
    object_id, qom_type = args["id"], args["qom-type"]
    if not well_formed_id(object_id):
        raise invalid_parameter_value("id", "an identifier")
    if qom_type != "throttle-group":
        raise generic(f"Object type '{qom_type}' is not supported by the bundled engine")
    groups = engine.graph.io.throttle_groups
    try:
        config = configure(args)
        if object_id in groups:
            raise generic(f"attempt to add duplicate property '{object_id}' to object "
                          f"(type '{_CONTAINER}')")
        config.check()
    except ThrottleError as exc:
        raise generic(str(exc)) from exc
    groups[object_id] = ThrottleGroup(object_id, config)
    return {}


@command("object-del", Struct("object-del", members({"id": Str()})))
def object_del(engine: Engine, args: dict[str, Any]) -> Any:
    object_id = args["id"]
    groups = engine.graph.io.throttle_groups
    if object_id not in groups:
        raise generic(f"object '{object_id}' not found")
    if any(node.driver == "throttle" and node.options.get("throttle-group") == object_id
           for node in engine.graph.nodes.values()):
        raise generic(f"object '{object_id}' is in use, can not be deleted")
    del groups[object_id]
    return {}


def _resolve(engine: Engine, path: str) -> ThrottleGroup | str:
    """The object at ``path``: a group, or the ``/objects`` container (its name)."""
    parts = [p for p in path.split("/") if p]
    groups = engine.graph.io.throttle_groups
    if not path.startswith("/") and len(parts) == 1 and parts[0] in groups:
        return groups[parts[0]]             # a partial path: the id alone
    if parts == ["objects"]:
        return _CONTAINER
    if len(parts) == 2 and parts[0] == "objects" and parts[1] in groups:
        return groups[parts[1]]
    raise device_not_found(path)


def _container_property(engine: Engine, prop: str) -> Any:
    if prop == "type":
        return _CONTAINER
    if prop in engine.graph.io.throttle_groups:
        return f"/objects/{prop}"
    raise generic(f"Property '{_CONTAINER}.{prop}' not found")


QomGet = Struct("qom-get", members({"path": Str(), "property": Str()}))
QomSet = Struct("qom-set", members({"path": Str(), "property": Str(), "value": AnyType()}))


@command("qom-get", QomGet)
def qom_get(engine: Engine, args: dict[str, Any]) -> Any:
    target, prop = _resolve(engine, args["path"]), args["property"]
    if isinstance(target, str):
        return _container_property(engine, prop)
    try:
        return target.get_property(prop)
    except KeyError:
        raise generic(f"Property 'throttle-group.{prop}' not found") from None


@command("qom-set", QomSet)
def qom_set(engine: Engine, args: dict[str, Any]) -> Any:
    """A group's ``limits`` change in one step (members left out keep their figure); the
    one-figure ``x-*`` properties are fixed once the group exists."""
    target, prop, value = _resolve(engine, args["path"]), args["property"], args["value"]
    kind = _CONTAINER if isinstance(target, str) else "throttle-group"
    if isinstance(target, str):
        _container_property(engine, prop)
        raise generic(f"Property '{kind}.{prop}' is not writable")
    if prop == "limits":
        validate(_LIMITS_VALUE, {"limits": value})
        try:
            target.config = target.config.apply_limits(value)
        except ThrottleError as exc:
            raise generic(str(exc)) from exc
        return {}
    if prop in LEGACY_PROPERTIES:
        raise generic("Property cannot be set after initialization")
    if prop == "type":
        raise generic(f"Property '{kind}.type' is not writable")
    raise generic(f"Property '{kind}.{prop}' not found")
