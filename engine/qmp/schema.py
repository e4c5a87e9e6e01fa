"""A small QAPI: argument schemas and the checks QEMU's input visitor makes.

Commands declare their arguments with these types; :func:`validate` walks a JSON
value the way QEMU's QObject input visitor does (members in declaration order,
unexpected members at the end of each object, in QDict order) and raises the same
``GenericError`` texts. The walk keeps its own stack (each type's :meth:`QType.visit`
is a generator that yields the members to check next), so options nested a thousand
deep are checked without deep recursion:

* ``Parameter 'X' is missing`` / ``Parameter 'X' is unexpected`` /
  ``Invalid parameter type for 'X', expected: T`` name the member by its full path
  (``file.filename``, ``options[0].node-name``);
* a bad enum value (``Parameter 'driver' does not accept value 'foo'``) and a wrong
  type for an alternate (``... for 'file', expected: BlockdevRef``) name the member
  plainly, as QEMU does.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.qdict import ghash_order, qdict_order
from engine.qmp.errors import generic

Path = tuple[str | int, ...]


def full_name(path: Path) -> str:
    """QEMU's name for a member: ``a.b`` for members, ``a[0]`` for list elements."""
    out = ""
    for seg in path:
        if isinstance(seg, int):
            out += f"[{seg}]"
        else:
            out += f".{seg}" if out else seg
    return out


def plain_name(path: Path) -> str:
    for seg in reversed(path):
        if isinstance(seg, str):
            return seg
    return "null"


def _type_error(path: Path, expected: str) -> Exception:
    return generic(f"Invalid parameter type for '{full_name(path)}', expected: {expected}")


#: a value still to check: its type, the value and its path
Task = tuple["QType", Any, Path]


class QType:
    """Base of schema types.

    ``check`` raises QMPError or returns None for the value itself; ``visit`` checks the
    value and yields the members it contains for the caller to check, in QEMU's order
    (a ``visit`` that resumes after its members runs the checks that come after them).
    """

    name = "any"

    def check(self, value: Any, path: Path) -> None:  # pragma: no cover - interface
        raise NotImplementedError

    def visit(self, value: Any, path: Path) -> Iterator[Task]:
        self.check(value, path)
        return iter(())


class AnyType(QType):
    def check(self, value: Any, path: Path) -> None:
        return None


class Str(QType):
    name = "string"

    def check(self, value: Any, path: Path) -> None:
        if not isinstance(value, str):
            raise _type_error(path, "string")


class Bool(QType):
    name = "boolean"

    def check(self, value: Any, path: Path) -> None:
        if not isinstance(value, bool):
            raise _type_error(path, "boolean")


class Int(QType):
    """An integer; ``size``-like members reject negative values with QEMU's text."""

    name = "integer"

    def __init__(self, non_negative: bool = False) -> None:
        self.non_negative = non_negative

    def check(self, value: Any, path: Path) -> None:
        if isinstance(value, bool) or not isinstance(value, int):
            raise _type_error(path, "integer")
        if self.non_negative and value < 0:
            raise generic(f"Parameter '{full_name(path)}' expects a non-negative value")


class Number(QType):
    name = "number"

    def check(self, value: Any, path: Path) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _type_error(path, "number")


class Enum(QType):
    def __init__(self, name: str, values: Sequence[str]) -> None:
        self.name = name
        self.values = frozenset(values)
        self.ordered = tuple(values)

    def check(self, value: Any, path: Path) -> None:
        if not isinstance(value, str):
            raise _type_error(path, "string")
        if value not in self.values:
            raise generic(f"Parameter '{plain_name(path)}' does not accept value '{value}'")


class ListOf(QType):
    name = "array"

    def __init__(self, element: QType) -> None:
        self.element = element

    def check(self, value: Any, path: Path) -> None:
        if not isinstance(value, list):
            raise _type_error(path, "array")

    def visit(self, value: Any, path: Path) -> Iterator[Task]:
        self.check(value, path)
        for i, item in enumerate(value):
            yield self.element, item, (*path, i)


@dataclass(frozen=True)
class Member:
    name: str
    type: QType
    optional: bool = False


def members(spec: Mapping[str, QType]) -> tuple[Member, ...]:
    """Members from a QAPI-style mapping: a leading ``*`` marks an optional member."""
    return tuple(Member(k.lstrip("*"), t, k.startswith("*")) for k, t in spec.items())


@dataclass
class Struct(QType):
    """A JSON object with declared members (``open``: accept undeclared ones too)."""

    name: str
    fields: tuple[Member, ...] = ()
    open: bool = False

    def check(self, value: Any, path: Path) -> None:
        if not isinstance(value, dict):
            raise _type_error(path, "object")

    def visit(self, value: Any, path: Path) -> Iterator[Task]:
        self.check(value, path)
        yield from self.members_of(value, path, self.fields)

    def members_of(self, value: dict[str, Any], path: Path,
                   fields: Sequence[Member], open_: bool | None = None,
                   also_declared: Sequence[Member] = ()) -> Iterator[Task]:
        for m in fields:
            if m.name not in value:
                if not m.optional:
                    raise generic(f"Parameter '{full_name((*path, m.name))}' is missing")
                continue
            yield m.type, value[m.name], (*path, m.name)
        if not (self.open if open_ is None else open_):
            declared = {m.name for m in fields} | {m.name for m in also_declared}
            extra = [k for k in ghash_order(qdict_order(value)) if k not in declared]
            if extra:
                raise generic(f"Parameter '{full_name((*path, extra[0]))}' is unexpected")


@dataclass
class Union(Struct):
    """A flat union: ``fields`` are the base, ``variants`` add members by discriminator.

    A discriminator value with no variant listed (a valid enum value whose members
    this engine does not model) accepts any further members.
    """

    discriminator: str = "driver"
    variants: dict[str, tuple[Member, ...]] = field(default_factory=dict)

    def visit(self, value: Any, path: Path) -> Iterator[Task]:
        self.check(value, path)
        base = self.fields
        yield from self.members_of(value, path, base, open_=True)
        variant = self.variants.get(value[self.discriminator])
        if variant is None:
            return
        yield from self.members_of(value, path, variant, open_=False, also_declared=base)


class Alternate(QType):
    """One of several types chosen by JSON kind (QEMU's ``alternate``)."""

    def __init__(self, name: str, *, obj: QType | None = None, string: QType | None = None,
                 null: bool = False) -> None:
        self.name = name
        self.obj, self.string, self.null = obj, string, null

    def check(self, value: Any, path: Path) -> None:
        if not ((isinstance(value, dict) and self.obj is not None)
                or (isinstance(value, str) and self.string is not None)
                or (value is None and self.null)):
            raise generic(f"Invalid parameter type for '{plain_name(path)}', "
                          f"expected: {self.name}")

    def visit(self, value: Any, path: Path) -> Iterator[Task]:
        self.check(value, path)
        if isinstance(value, dict) and self.obj is not None:
            yield self.obj, value, path
        elif isinstance(value, str) and self.string is not None:
            yield self.string, value, path


def validate(schema: QType | None, arguments: Any) -> None:
    """Check a command's arguments (a dict) against its schema, raising QMPError."""
    if schema is None:
        if arguments:
            first = ghash_order(qdict_order(arguments))[0]
            raise generic(f"Parameter '{first}' is unexpected")
        return
    stack: list[Iterator[Task]] = [schema.visit(arguments, ())]
    while stack:
        task = next(stack[-1], None)
        if task is None:
            stack.pop()
        else:
            qtype, value, path = task
            stack.append(qtype.visit(value, path))
