"""Reading a backing chain from disk without trusting it: layers, allocation, broken links.

:func:`engine.formats.open_chain` refuses a chain with a missing file or a loop; an
editor has to *show* such a chain and offer a way out. :func:`inspect_chain` walks the
headers one image at a time, keeps every layer it could open (with its own allocation),
and stops at the first broken link with a :class:`LinkProblem` that says what is wrong
and which :class:`Fix` es apply. A fix is data: the header rewrite to do and the
``qemu-img`` command that does the same; :func:`engine.offline.edit.apply_fix` runs it.

Problems found (``LinkProblem.kind``):

``missing``
    the backing file does not exist (or cannot be opened). Fixes: point the header at
    an image found under the same name next to the overlay, or detach the backing.
    Only header rewrites are possible — the old content is gone — so both are unsafe.
``format``
    the header's backing format does not match the file (``qcow2`` recorded for a raw
    file is refused by QEMU; ``raw`` recorded for a qcow2 file makes the guest read
    qcow2 metadata as data). Fix: record the probed format.
``unformatted``
    the header has no backing-format extension, so QEMU probes the format at every
    open (a raw backing whose content starts with qcow2's magic would be misread).
    Fix: record the probed format. The chain below is still read.
``loop``
    a backing file is an image already in the chain. Fix: detach the closing link.
``unreadable``
    the backing file exists but is not a usable image (corrupt, unsupported). Fixes as
    for ``missing``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from engine.formats import allocation_map, open_image
from engine.formats.chain import backing_host_path
from engine.formats.errors import ImageError, ImageIOError
from engine.formats.image import DATA, ZERO, Extent, Image
from engine.offline.commands import rebase_command

MISSING = "missing"
FORMAT = "format"
UNFORMATTED = "unformatted"
LOOP = "loop"
UNREADABLE = "unreadable"


@dataclass(frozen=True, slots=True)
class Fix:
    """A header rewrite that repairs a link: set ``image``'s backing to ``backing_file``.

    ``backing_file`` None detaches. ``safe`` is False when the guest content may change
    (the old backing cannot be read, so nothing can be copied); ``warning`` says how.
    """

    label: str
    image: str
    image_format: str
    backing_file: str | None
    backing_format: str | None
    safe: bool = False
    warning: str = ""

    @property
    def command(self) -> str:
        """The equivalent ``qemu-img rebase`` command line."""
        return rebase_command(self.image, self.image_format, self.backing_file,
                              self.backing_format, safe=self.safe)


@dataclass(frozen=True, slots=True)
class LinkProblem:
    """A broken (or risky) backing link from ``overlay`` to ``backing``.

    ``backing`` is the header string, ``resolved`` the path QEMU would open.
    """

    kind: str
    overlay: str
    backing: str
    resolved: str
    message: str
    fixes: tuple[Fix, ...] = ()
    #: True when the chain continues below (a warning rather than a break)
    continues: bool = False


@dataclass(frozen=True, slots=True)
class Layer:
    """One opened image of the chain and what it holds itself."""

    path: str
    format: str
    virtual_size: int
    cluster_size: int | None
    backing_file: str | None
    backing_format: str | None
    actual_size: int
    extents: tuple[Extent, ...] = ()

    @property
    def resolved_backing(self) -> str | None:
        """The path QEMU opens for this layer's backing file (None without one)."""
        if not self.backing_file:
            return None
        return backing_host_path(self.path, self.backing_file)

    @property
    def data_bytes(self) -> int:
        return sum(e.length for e in self.extents if e.state == DATA)

    @property
    def zero_bytes(self) -> int:
        return sum(e.length for e in self.extents if e.state == ZERO)

    @property
    def name(self) -> str:
        return os.path.basename(self.path)


@dataclass(frozen=True, slots=True)
class ChainReport:
    """A chain as found on disk: the layers (top first) and its problems.

    A problem that breaks the chain is last in ``problems`` and has ``continues``
    False; the layers then end at the overlay holding the broken link.
    """

    layers: tuple[Layer, ...]
    problems: tuple[LinkProblem, ...] = ()
    #: like ``qemu-img map`` over the layers that opened (``depth`` indexes ``layers``)
    provider_map: tuple[dict[str, Any], ...] = field(default=(), compare=False)

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def broken(self) -> LinkProblem | None:
        """The link that stops the chain, if any."""
        if self.problems and not self.problems[-1].continues:
            return self.problems[-1]
        return None

    @property
    def top(self) -> Layer:
        return self.layers[0]

    def problem_for(self, path: str) -> list[LinkProblem]:
        """Problems on the backing link held by the image at ``path``."""
        return [p for p in self.problems if p.overlay == path]


def _identity(path: str) -> tuple[int, int] | str:
    try:
        st = os.stat(path)
    except OSError:
        return os.path.realpath(path)
    return (st.st_dev, st.st_ino)


def _probe(path: str) -> str | None:
    try:
        with open_image(path) as img:
            return img.format
    except ImageError:
        return None


def _layer(img: Image, with_extents: bool) -> Layer:
    extents = tuple(img.block_status(0, img.virtual_size)) if with_extents else ()
    return Layer(img.path, img.format, img.virtual_size, img.cluster_size, img.backing_file,
                 img.backing_format, img.actual_size(), extents)


def _candidates(overlay: str, backing: str) -> list[str]:
    """Images that may be the lost backing file: the same name next to the overlay."""
    found: list[str] = []
    base = os.path.basename(backing)
    here = os.path.dirname(overlay) or "."
    guess = os.path.join(here, base)
    if base and os.path.isfile(guess) and _identity(guess) != _identity(overlay):
        found.append(guess)
    return found


def _relink_name(overlay: str, target: str) -> str:
    """The header string for ``target``: relative to the overlay when beside it."""
    here = os.path.dirname(os.path.abspath(overlay))
    there = os.path.abspath(target)
    if os.path.dirname(there) == here:
        return os.path.basename(there)
    return there


def _missing_fixes(top: Layer, backing: str) -> tuple[Fix, ...]:
    fixes = []
    for cand in _candidates(top.path, backing):
        fmt = _probe(cand)
        name = _relink_name(top.path, cand)
        fixes.append(Fix(
            f"Point at {name} (header only)", top.path, top.format, name, fmt, safe=False,
            warning=f"Only the header is rewritten: the guest sees {name} below "
                    f"{top.name} — correct only if it is the lost backing file."))
    fixes.append(Fix(
        "Detach the backing file (header only)", top.path, top.format, None, None, safe=False,
        warning=f"The guest will read zeros wherever {top.name} holds no data of its own."))
    return tuple(fixes)


def inspect_chain(path: str | os.PathLike[str], fmt: str | None = None, *,
                  with_extents: bool = True) -> ChainReport:
    """Open ``path`` and walk its backing chain as far as it goes; never raises for a
    broken link (an unopenable *top* image raises its :class:`ImageError`).

    ``with_extents`` also reads each layer's own allocation (``Layer.extents``) and the
    chain's provider map (like ``qemu-img map``: which depth serves each range).
    """
    path = os.fspath(path)
    layers: list[Layer] = []
    problems: list[LinkProblem] = []
    opened: list[Image] = []
    seen: dict[tuple[int, int] | str, str] = {}
    try:
        img = open_image(path, fmt)
        while True:
            opened.append(img)
            seen[_identity(img.path)] = img.path
            layer = _layer(img, with_extents)
            layers.append(layer)
            if not img.backing_file:
                break
            resolved = backing_host_path(img.path, img.backing_file)
            problem, nxt = _follow(layer, resolved, seen)
            if problem is not None:
                problems.append(problem)
            if nxt is None:
                break
            img = nxt
        pmap: tuple[dict[str, Any], ...] = ()
        if with_extents:
            # with a broken link this covers the layers that opened: what they serve
            pmap = tuple(allocation_map(opened))
        return ChainReport(tuple(layers), tuple(problems), pmap)
    finally:
        for im in opened:
            im.close()


def _follow(layer: Layer, resolved: str,
            seen: dict[tuple[int, int] | str, str]) -> tuple[LinkProblem | None, Image | None]:
    """Check the link from ``layer`` to its backing file; open that file if usable."""
    backing = layer.backing_file or ""
    ident = _identity(resolved)
    if ident in seen:
        return LinkProblem(
            LOOP, layer.path, backing, resolved,
            f"{layer.name}: backing file '{backing}' is {os.path.basename(seen[ident])}, "
            f"already in this chain (a loop)",
            (Fix("Detach this backing link (header only)", layer.path, layer.format, None,
                 None, safe=False,
                 warning=f"The guest will read zeros wherever {layer.name} holds no data "
                         f"of its own."),)), None
    if not os.path.exists(resolved):
        return LinkProblem(
            MISSING, layer.path, backing, resolved,
            f"{layer.name}: backing file '{backing}' is missing "
            f"(looked for {resolved})", _missing_fixes(layer, backing)), None
    probed = _probe(resolved)
    if probed is None:
        try:
            open_image(resolved).close()
            reason = "it cannot be read"
        except ImageIOError as exc:
            reason = exc.message
        except ImageError as exc:
            reason = str(exc)
        return LinkProblem(
            UNREADABLE, layer.path, backing, resolved,
            f"{layer.name}: backing file '{backing}' is not usable: {reason}",
            _missing_fixes(layer, backing)), None
    set_format = Fix(
        f"Record the backing format as {probed} (header only)", layer.path, layer.format,
        backing, probed, safe=False,
        warning=f"Only the header is rewritten: QEMU will open {os.path.basename(resolved)} "
                f"as {probed}.")
    if layer.backing_format and layer.backing_format != probed:
        return LinkProblem(
            FORMAT, layer.path, backing, resolved,
            f"{layer.name}: the header says the backing file '{backing}' is "
            f"{layer.backing_format}, but it is a {probed} image", (set_format,)), None
    problem = None
    if not layer.backing_format:
        problem = LinkProblem(
            UNFORMATTED, layer.path, backing, resolved,
            f"{layer.name}: no backing format recorded for '{backing}'; QEMU probes it "
            f"(found {probed})", (set_format,), continues=True)
    try:
        return problem, open_image(resolved, probed)
    except ImageError as exc:
        return LinkProblem(
            UNREADABLE, layer.path, backing, resolved,
            f"{layer.name}: backing file '{backing}' is not usable: {exc}",
            _missing_fixes(layer, backing)), None
