"""Every qcow2 image the engine writes in a test must pass ``qemu-img check`` and open
with ``qemu-img info --backing-chain``.

An autouse fixture (registered in ``tests/conftest.py``) records the host files the
in-process engine writes or truncates (through :class:`engine.formats.hostfile.HostFile`)
and, when the test is over and its engines and daemons are gone, asks qemu-img about
each that still exists and is a qcow2 image. A test that makes the engine write a
damaged image on purpose (a simulated crash, an injected write error, a corrupt input,
a backing name of a file that is not there) says so with
``@pytest.mark.engine_writes_damaged_images``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.formats.hostfile import HostFile
from tests.support.qemu import qemu_img

QCOW2_MAGIC = b"QFI\xfb"
MARK = "engine_writes_damaged_images"


def _recording(written: dict[int, str], method: str) -> object:
    """``HostFile.<method>`` that notes the file's path at its first write."""
    original = getattr(HostFile, method)

    def record(self: HostFile, *args: object, **kwargs: object) -> object:
        if id(self) not in written:
            written[id(self)] = self.real_path()
        return original(self, *args, **kwargs)

    return record


def _is_qcow2(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(4) == QCOW2_MAGIC
    except OSError:
        return False


def problems_of(path: str) -> list[str]:
    """What qemu-img says is wrong with the image at ``path`` (nothing: a clean image)."""
    out: list[str] = []
    proc = qemu_img("check", "--output=json", "-U", "-f", "qcow2", path, check=False)
    if proc.returncode != 0:
        out.append(f"qemu-img check exited {proc.returncode}: {proc.stdout}{proc.stderr}")
    else:
        report = json.loads(proc.stdout)
        if report.get("check-errors", 0) or "corruptions" in report or "leaks" in report:
            out.append(f"qemu-img check: {report}")
    failure = _chain_failure(path)
    if failure is not None and failure != _qemus_twin_failure(path):
        out.append(f"qemu-img info --backing-chain failed: {failure}")
    return out


def _chain_failure(path: str | Path) -> str | None:
    proc = qemu_img("info", "--output=json", "-U", "--backing-chain", str(path), check=False)
    return proc.stderr.strip() if proc.returncode != 0 else None


def _qemus_twin_failure(path: str) -> str | None:
    """How the same image written by qemu-storage-daemon in a differential run
    (``<tmp>/engine/x`` beside ``<tmp>/qsd/x``) fails to open, in the engine's terms.

    QEMU writes some backing names that it opens itself but ``qemu-img info
    --backing-chain`` cannot (a ``json:`` name with a ``backing`` option of its own,
    read with the backing chain left closed): the engine writing the very same name is
    QEMU's behaviour, not a fault."""
    image = Path(path)
    if image.parent.name != "engine":
        return None
    qsd_dir = image.parent.parent / "qsd"
    twin = qsd_dir / image.name
    if not twin.exists():
        return None
    failure = _chain_failure(twin)
    return failure.replace(str(qsd_dir), str(image.parent)) if failure is not None else None


@pytest.fixture(autouse=True)
def engine_written_images_are_sound(request: pytest.FixtureRequest,
                                    monkeypatch: pytest.MonkeyPatch
                                    ) -> Iterator[dict[int, str]]:
    written: dict[int, str] = {}
    for method in ("pwrite", "pwritev", "truncate"):
        monkeypatch.setattr(HostFile, method, _recording(written, method))
    yield written
    if request.node.get_closest_marker(MARK) is not None:
        return
    images = sorted(p for p in set(written.values()) if _is_qcow2(p))
    found = {p: problems_of(p) for p in images}
    bad = {Path(p).name: text for p, text in found.items() if text}
    assert not bad, f"images the engine wrote are not sound: {bad}"
