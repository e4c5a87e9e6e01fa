"""Tours as data: what a tour file says (see ``resources/tours/README.md``).

A :class:`Tour` has a name, a title, an introduction, a :class:`Setup` (scratch images
to create, in a fresh temporary directory substituted for ``${DIR}``) and a list of
:class:`TourStep`. Each step explains one thing, optionally runs one QMP command, says
whether that command must succeed or fail (with QEMU's exact error text), may wait for
a job, may state facts the graph must show afterwards (:class:`GraphCheck`), and names
the nodes to highlight on the canvas.

Loading validates everything up front and raises :class:`TourError` naming the file and
the offending member, so a broken tour never half-runs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.graph.drivers import ENGINE_IMAGE_DRIVERS

#: where the bundled tours live
TOURS_DIR = Path(__file__).resolve().parents[2] / "resources" / "tours"

_SIZE = re.compile(r"^(\d+)([kKmMgG]?)$")
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
_NAME = re.compile(r"^[a-z][a-z0-9-]*$")


class TourError(ValueError):
    """A tour file is malformed; the message names the file and the member."""


def parse_size(value: int | str, where: str = "") -> int:
    """``4M`` → 4194304; plain integers are bytes."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    m = _SIZE.match(str(value))
    if not m:
        raise TourError(f"{where}: '{value}' is not a size (like 65536, 64k, 4M)")
    return int(m.group(1)) * _UNITS[m.group(2).lower()]


@dataclass(frozen=True, slots=True)
class DataWrite:
    """Fill ``[offset, offset+length)`` with byte ``pattern`` (0 writes zeros)."""

    offset: int
    length: int
    pattern: int


@dataclass(frozen=True, slots=True)
class ImageSpec:
    """A scratch image: ``file`` (a name inside ``${DIR}``), format, size, backing."""

    file: str
    size: int
    format: str = "qcow2"
    backing: str | None = None          # header string, as written
    backing_format: str | None = None
    data: tuple[DataWrite, ...] = ()


@dataclass(frozen=True, slots=True)
class Setup:
    images: tuple[ImageSpec, ...] = ()


@dataclass(frozen=True, slots=True)
class Expect:
    """The outcome a step's command must have: success, or an error with this text."""

    error: str | None = None
    error_class: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def describe(self) -> str:
        if self.ok:
            return "succeeds"
        cls = f"{self.error_class}: " if self.error_class else ""
        return f"fails with {cls}{self.error}"


@dataclass(frozen=True, slots=True)
class WaitSpec:
    job: str
    until: tuple[str, ...] = ("null",)
    timeout: float = 60.0


@dataclass(frozen=True, slots=True)
class GraphCheck:
    """Facts the graph must show after a step (node names; ``${DIR}`` substituted)."""

    backing: Mapping[str, str | None] = field(default_factory=dict)
    present: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()
    header_backing: Mapping[str, str | None] = field(default_factory=dict)
    read_only: Mapping[str, bool] = field(default_factory=dict)

    @property
    def empty(self) -> bool:
        return not (self.backing or self.present or self.absent or self.header_backing
                    or self.read_only)


@dataclass(frozen=True, slots=True)
class TourStep:
    title: str
    explain: str
    command: str | None = None
    arguments: Mapping[str, Any] | None = None
    expect: Expect = Expect()
    wait: WaitSpec | None = None
    check: GraphCheck = GraphCheck()
    highlight: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Tour:
    name: str
    title: str
    intro: str
    setup: Setup
    steps: tuple[TourStep, ...]
    path: Path | None = None


# -- loading ------------------------------------------------------------------------------

def _req(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise TourError(f"{where}: '{key}' is missing")
    value = obj[key]
    if not isinstance(value, kind):
        raise TourError(f"{where}: '{key}' has the wrong type")
    return value


def _text(value: Any) -> str:
    """Text members may be a string or a list of lines (joined with spaces)."""
    if isinstance(value, list):
        return " ".join(str(v) for v in value)
    return str(value)


def _only(obj: Mapping[str, Any], allowed: set[str], where: str) -> None:
    extra = sorted(set(obj) - allowed)
    if extra:
        raise TourError(f"{where}: unknown member(s) {', '.join(extra)}")


def _image(obj: Any, where: str) -> ImageSpec:
    if not isinstance(obj, dict):
        raise TourError(f"{where}: an image must be an object")
    _only(obj, {"file", "size", "format", "backing", "backing_format", "data"}, where)
    file = _req(obj, "file", str, where)
    if "/" in file or file in ("", ".", ".."):
        raise TourError(f"{where}: 'file' must be a plain file name inside ${{DIR}}")
    fmt = obj.get("format", "qcow2")
    if fmt not in ENGINE_IMAGE_DRIVERS:
        raise TourError(f"{where}: format must be qcow2 or raw")
    writes = []
    for i, w in enumerate(obj.get("data", [])):
        wh = f"{where}.data[{i}]"
        if not isinstance(w, dict):
            raise TourError(f"{wh}: must be an object")
        _only(w, {"offset", "length", "pattern"}, wh)
        pattern = w.get("pattern", 0)
        if isinstance(pattern, str):
            pattern = int(pattern, 0)
        if not isinstance(pattern, int) or not 0 <= pattern <= 255:
            raise TourError(f"{wh}: pattern must be a byte (0..255 or '0xab')")
        writes.append(DataWrite(parse_size(w.get("offset", 0), wh),
                                parse_size(_req(w, "length", (int, str), wh), wh), pattern))
    backing = obj.get("backing")
    if backing is not None and fmt != "qcow2":
        raise TourError(f"{where}: only qcow2 images have a backing file")
    return ImageSpec(file, parse_size(_req(obj, "size", (int, str), where), where), fmt,
                     backing, obj.get("backing_format"), tuple(writes))


def _step(obj: Any, where: str) -> TourStep:
    if not isinstance(obj, dict):
        raise TourError(f"{where}: a step must be an object")
    _only(obj, {"title", "explain", "qmp", "expect", "wait", "check", "highlight"}, where)
    command = arguments = None
    if obj.get("qmp") is not None:
        qmp = obj["qmp"]
        if not isinstance(qmp, dict):
            raise TourError(f"{where}: 'qmp' must be a command object")
        _only(qmp, {"execute", "arguments"}, f"{where}.qmp")
        command = _req(qmp, "execute", str, f"{where}.qmp")
        arguments = qmp.get("arguments")
        if arguments is not None and not isinstance(arguments, dict):
            raise TourError(f"{where}.qmp: 'arguments' must be an object")
    expect = Expect()
    raw_expect = obj.get("expect", "ok")
    if raw_expect != "ok":
        if not isinstance(raw_expect, dict) or not isinstance(raw_expect.get("error"), str):
            raise TourError(f"{where}: 'expect' is \"ok\" or {{\"error\": TEXT}}")
        _only(raw_expect, {"error", "class"}, f"{where}.expect")
        expect = Expect(raw_expect["error"], raw_expect.get("class"))
        if command is None:
            raise TourError(f"{where}: an expected error needs a 'qmp' command")
    wait = None
    if obj.get("wait") is not None:
        w = obj["wait"]
        if not isinstance(w, dict):
            raise TourError(f"{where}: 'wait' must be an object")
        _only(w, {"job", "until", "timeout"}, f"{where}.wait")
        until = w.get("until", ["null"])
        until = [until] if isinstance(until, str) else until
        wait = WaitSpec(_req(w, "job", str, f"{where}.wait"), tuple(str(u) for u in until),
                        float(w.get("timeout", 60.0)))
    check = GraphCheck()
    if obj.get("check") is not None:
        c = obj["check"]
        if not isinstance(c, dict):
            raise TourError(f"{where}: 'check' must be an object")
        _only(c, {"backing", "present", "absent", "header_backing", "read_only"},
              f"{where}.check")
        check = GraphCheck(dict(c.get("backing", {})), tuple(c.get("present", ())),
                           tuple(c.get("absent", ())), dict(c.get("header_backing", {})),
                           {str(k): bool(v) for k, v in c.get("read_only", {}).items()})
    highlight = obj.get("highlight", [])
    if isinstance(highlight, str):
        highlight = [highlight]
    return TourStep(_text(_req(obj, "title", str, where)),
                    _text(_req(obj, "explain", (str, list), where)),
                    command, arguments, expect, wait, check, tuple(highlight))


def parse_tour(data: Any, path: Path | None = None) -> Tour:
    where = str(path) if path else "tour"
    if not isinstance(data, dict):
        raise TourError(f"{where}: a tour is a JSON object")
    _only(data, {"name", "title", "intro", "setup", "steps"}, where)
    name = _req(data, "name", str, where)
    if not _NAME.match(name):
        raise TourError(f"{where}: name '{name}' must be lower-case words joined by '-'")
    setup = data.get("setup", {})
    if not isinstance(setup, dict):
        raise TourError(f"{where}: 'setup' must be an object")
    _only(setup, {"images"}, f"{where}.setup")
    images = tuple(_image(im, f"{where}.setup.images[{i}]")
                   for i, im in enumerate(setup.get("images", [])))
    files = [im.file for im in images]
    if len(set(files)) != len(files):
        raise TourError(f"{where}.setup: two images have the same file name")
    steps = tuple(_step(s, f"{where}.steps[{i}]")
                  for i, s in enumerate(_req(data, "steps", list, where)))
    if not steps:
        raise TourError(f"{where}: a tour needs at least one step")
    return Tour(name, _text(_req(data, "title", str, where)),
                _text(data.get("intro", "")), Setup(images), steps, path)


def load_tour(path: str | Path) -> Tour:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise TourError(f"{path}: not valid JSON: {exc}") from None
    return parse_tour(data, path)


def list_tours(directory: str | Path | None = None) -> list[Tour]:
    """Every tour in ``directory`` (default: the bundled tours), in file-name order."""
    d = Path(directory) if directory is not None else TOURS_DIR
    return [load_tour(p) for p in sorted(d.glob("*.json"))]


def find_tour(name: str, directory: str | Path | None = None) -> Tour:
    for tour in list_tours(directory):
        if tour.name == name:
            return tour
    p = Path(name)
    if p.suffix == ".json" and p.is_file():
        return load_tour(p)
    raise TourError(f"no tour named '{name}'")
