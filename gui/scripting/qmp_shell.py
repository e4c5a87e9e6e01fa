"""qmp-shell syntax: the one reader and the one writer of it in blockgraph.

qmp-shell (from ``qemu.qmp``) reads a command as ``command key=value ...``. Words are
split at white space outside quotes (``"..."`` and ``'...'``, with backslash escapes,
may run inside a word); ``a.b=v`` nests ``v`` under ``a`` (qmp-shell itself goes on to
nest every later argument inside ``a`` too, a slip of its parser: blockgraph reads each
argument by its own key, and never writes a dotted key); a value is an integer when
``int()`` takes it, a boolean when it is ``true``/``false`` in any case, JSON when it
starts with ``{`` or ``[`` (or a Python literal with ``true``/``false``/``null``,
qmp-shell's "fuzzy JSON"), and otherwise the word itself, quotes and all. A line
``transaction(`` opens a transaction whose actions follow one per line, up to ``)``.

:func:`parse_command` reads exactly that. :func:`format_command` writes only what reads
back the same through qmp-shell and through :func:`parse_command`; a value that cannot
be written so (a string with white space or quotes, a string that reads as a number or
a boolean, a float, a null) raises :class:`Unrepresentable` — with one exception:
``blockdev-add``'s ``backing: null`` at the top level, which QEMU 7.2 also takes in its
older spelling, the empty string (``backing=``; it logs a deprecation note).

blockgraph's scripts add two comment lines that qmp-shell does not know (see
:mod:`gui.scripting.script`): ``# wait for job J to become S`` and
``# expect error: TEXT``, written by :func:`format_wait` and :func:`format_expected_error`.
"""

from __future__ import annotations

import ast
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

WAIT_RE = re.compile(r"#\s*wait for job (\S+) to become (\S+)\s*$")
EXPECT_RE = re.compile(r"#\s*expect error:\s*(.*)$")
#: top-level members QEMU takes as the empty string where qmp-shell cannot write null
_EMPTY_FOR_NULL = {("blockdev-add", "backing")}


class QmpShellError(ValueError):
    """A line that qmp-shell would not read as a command."""


class Unrepresentable(ValueError):
    """An argument qmp-shell syntax cannot carry (it would read back as something else)."""


# -- reading -----------------------------------------------------------------------------
def split_words(line: str) -> list[str]:
    """The words of a line: white space separates them, except inside quotes."""
    words: list[str] = []
    word: list[str] = []
    in_word = False
    i, n = 0, len(line)
    while i < n:
        c = line[i]
        if c.isspace():
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
            i += 1
            continue
        in_word = True
        if c in "\"'":
            end = _closing_quote(line, i)
            if end is None:                 # an unclosed quote is dropped and ends the word
                if word:
                    words.append("".join(word))
                word, in_word = [], False
                i += 1
                continue
            word.append(line[i:end + 1])
            i = end + 1
            continue
        word.append(c)
        i += 1
    if in_word:
        words.append("".join(word))
    return words


def _closing_quote(line: str, start: int) -> int | None:
    quote = line[start]
    i = start + 1
    while i < len(line):
        if line[i] == "\\" and i + 1 < len(line):
            i += 2
            continue
        if line[i] == quote:
            return i
        i += 1
    return None


def parse_value(text: str) -> Any:
    """A value as qmp-shell reads it."""
    try:
        return int(text)
    except ValueError:
        pass
    if text.lower() == "true":
        return True
    if text.lower() == "false":
        return False
    if text.startswith(("{", "[")):
        try:
            return json.loads(text)
        except ValueError:
            pass
        try:
            return ast.literal_eval(_Literals().visit(ast.parse(text, mode="eval")))
        except (SyntaxError, ValueError):
            pass
    return text


class _Literals(ast.NodeTransformer):
    """``true``/``false``/``null`` as Python literals (qmp-shell's fuzzy JSON)."""

    def visit_Name(self, node: ast.Name) -> ast.AST:
        names = {"true": True, "false": False, "null": None}
        if node.id in names:
            return ast.copy_location(ast.Constant(value=names[node.id]), node)
        return node


def parse_arguments(words: list[str]) -> dict[str, Any]:
    """``key=value`` words as a (nested) dict."""
    out: dict[str, Any] = {}
    for word in words:
        key, sep, raw = word.partition("=")
        if not sep:
            raise QmpShellError(f"Expected a key=value pair, got '{word}'")
        path = key.split(".")
        target = out
        for i, part in enumerate(path[:-1]):
            child = target.setdefault(part, {})
            if not isinstance(child, dict):
                raise QmpShellError(f"Cannot use \"{'.'.join(path[:i + 1])}\" as both "
                                    "leaf and non-leaf key")
            target = child
        if path[-1] in target:
            if isinstance(target[path[-1]], dict):
                raise QmpShellError(f"Cannot use \"{key}\" as both leaf and non-leaf key")
            raise QmpShellError(f"Cannot set \"{key}\" multiple times")
        target[path[-1]] = parse_value(raw)
    return out


def parse_command(line: str) -> tuple[str, dict[str, Any]]:
    """One command line as (command, arguments)."""
    words = split_words(line)
    if not words:
        raise QmpShellError("empty command")
    return words[0], parse_arguments(words[1:])


def parse_lines(lines: list[str]) -> Iterator[tuple[int, str, dict[str, Any]]]:
    """(line number, command, arguments) for each command of qmp-shell input; a
    ``transaction(`` ... ``)`` block is one ``transaction``. Comments and blank lines
    are skipped (the caller reads blockgraph's directive comments itself)."""
    actions: list[dict[str, Any]] | None = None
    start = 0
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        words = split_words(line)
        if words and words[0] == "transaction(" and actions is None:
            actions, start = [], lineno
            words = words[1:]
        if actions is None:
            yield lineno, words[0], parse_arguments(words[1:])
            continue
        if words and words[0] == ")":
            if len(words) > 1:
                raise QmpShellError("Unexpected input after close of Transaction sub-shell")
            yield start, "transaction", {"actions": actions}
            actions = None
            continue
        if not words:
            continue
        closing = words[-1] == ")"
        if closing:
            words = words[:-1]
        actions.append({"type": words[0], "data": parse_arguments(words[1:])})
        if closing:
            yield start, "transaction", {"actions": actions}
            actions = None
    if actions is not None:
        raise QmpShellError("transaction( is not closed with )")


# -- writing -----------------------------------------------------------------------------
def format_value(value: Any) -> str:
    """``value`` as a word qmp-shell reads back as ``value``; raises Unrepresentable."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, Mapping | list | tuple):
        text = json.dumps(_plain(value), separators=(",", ":"))
        if parse_value(text) != _plain(value):   # pragma: no cover - JSON reads back
            raise Unrepresentable(f"{text} does not read back")
        return text
    if isinstance(value, str):
        if value and not any(c.isspace() or c in "\"'" for c in value) \
                and not value.startswith(("{", "[")) and parse_value(value) == value:
            return value
        if value == "":
            return ""
        raise Unrepresentable(f"the string {value!r} cannot be written in qmp-shell syntax "
                              "(qmp-shell keeps quotes and splits at white space)")
    if value is None:
        raise Unrepresentable("qmp-shell syntax has no null outside JSON objects and lists")
    raise Unrepresentable(f"{value!r} cannot be written in qmp-shell syntax")


def format_command(command: str, arguments: Mapping[str, Any] | None = None) -> str:
    """``command key=value ...`` that qmp-shell and :func:`parse_command` both read as
    this command; raises Unrepresentable for an argument they would read otherwise."""
    parts = [command]
    for key, value in (arguments or {}).items():
        if value is None and (command, key) in _EMPTY_FOR_NULL:
            parts.append(f"{key}=")
            continue
        try:
            parts.append(f"{key}={format_value(value)}")
        except Unrepresentable as exc:
            raise Unrepresentable(f"{command} {key}: {exc}") from None
    return " ".join(parts)


def format_line(command: str, arguments: Mapping[str, Any] | None = None) -> str:
    """The command as a qmp-shell line, or — when that syntax cannot carry it — a
    comment saying why followed by the command as a JSON object on its own line (which
    ``blockgraph replay`` reads; qmp-shell does not). For copies and saved scripts."""
    try:
        return format_command(command, arguments)
    except Unrepresentable as exc:
        message: dict[str, Any] = {"execute": command}
        if arguments is not None:
            message["arguments"] = _plain(arguments)
        return f"# qmp-shell cannot carry this command ({exc}); as JSON:\n" \
               f"{json.dumps(message)}"


def format_wait(job: str, until: tuple[str, ...] | list[str]) -> str:
    return f"# wait for job {job} to become {'/'.join(until)}"


def format_expected_error(text: str) -> str:
    return f"# expect error: {text}"


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value
