"""engine/formats throughput: 256 MiB read and written, against qemu-io and qemu-img.

Every figure is MiB/s of guest data, the median of five runs of ours and five of the
anchor doing the same work, taken in turns (warm page cache for all of them):

- write 256 MiB of non-zero data sequentially into a fresh qcow2, as one request
  and as 1 MiB requests, vs ``qemu-io -c 'write -P 0x5a ...'`` (includes the final
  flush for both);
- read 256 MiB of a fully allocated qcow2 vs ``qemu-io -c 'read 0 256M'``;
- copy it to a raw file vs ``qemu-img convert -O raw`` (neither flushes the output:
  convert's default cache mode for it is "unsafe").

The whole-command anchors include starting the process (a few ms); ours include
opening the image. The "request only" rows compare the request itself with the
rate qemu-io prints for its own request (no process start, no open, no flush); the
buffer a request reads into is in memory before either clock starts (qemu-io fills
its own with a pattern before it times the read, ours is written once beforehand).
Target: at least qemu's throughput; below half is a bug.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from engine.formats import ChainReader, create_qcow2, open_chain, open_image
from engine.formats.buffers import aligned_buffer
from tests.bench.report import Report, alternate, timed
from tests.support.qemu import qemu_img, qemu_io

SIZE = 256 << 20
CHUNK = 1 << 20
BENCH = "formats"
TARGET = ">= 1x (< 0.5x is a bug)"


def _mibps(seconds: float) -> float:
    return (SIZE / (1 << 20)) / seconds


def _rate(fresh: list[Path], fn: Callable[[], object]) -> Callable[[], float]:
    """A run of ``fn`` as MiB/s, starting with the output files absent (untimed).

    Rewriting a file that was truncated in place makes some filesystems (ext4's
    auto_da_alloc) write it back on close, which would time the disk, not us.
    """
    def run() -> float:
        for f in fresh:
            f.unlink(missing_ok=True)
        return _mibps(timed(fn)[0])
    return run


_RATE = re.compile(r"\(([0-9.]+) (B|KiB|MiB|GiB|TiB)/sec")
_UNIT = {"B": 1 / (1 << 20), "KiB": 1 / 1024, "MiB": 1, "GiB": 1024, "TiB": 1 << 20}


def qemu_io_rate(output: str) -> float:
    """The MiB/s qemu-io reports for its own request (no process start, no flush)."""
    m = _RATE.search(output)
    if m is None:
        raise RuntimeError(f"no rate in qemu-io output: {output!r}")
    return float(m.group(1)) * _UNIT[m.group(2)]


def run(report: Report) -> None:
    tmp = Path(tempfile.mkdtemp(prefix="bg-bench-formats-"))
    try:
        _run(report, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# one benchmark script: each step measures one operation against qemu-img in turn
def _run(report: Report, tmp: Path) -> None:  # noqa: PLR0915
    data = aligned_buffer(SIZE)         # qemu-io writes from an aligned buffer too
    data.write(b"\x5a" * SIZE)
    ours_img, qemu_target = tmp / "ours.qcow2", tmp / "qemu.qcow2"

    def ours_write_one() -> None:
        create_qcow2(ours_img, SIZE)
        with open_image(ours_img, writable=True) as img:
            img.write(0, data)

    def ours_write_chunks() -> None:
        create_qcow2(ours_img, SIZE)
        view = memoryview(data)
        with open_image(ours_img, writable=True) as img:
            for off in range(0, SIZE, CHUNK):
                img.write(off, view[off:off + CHUNK])

    def qemu_write_one() -> None:
        qemu_img("create", "-q", "-f", "qcow2", str(qemu_target), str(SIZE))
        qemu_io(qemu_target, "write -P 0x5a 0 256M")

    def qemu_write_chunks() -> None:
        qemu_img("create", "-q", "-f", "qcow2", str(qemu_target), str(SIZE))
        qemu_io(qemu_target, *[f"write -P 0x5a {off} 1M" for off in range(0, SIZE, CHUNK)])

    # image creation is a few ms of metadata for both sides; it is inside both timings
    ours, theirs = alternate(_rate([ours_img], ours_write_one),
                             _rate([qemu_target], qemu_write_one))
    report.add(BENCH, "write 256 MiB qcow2 (one request)", ours, "MiB/s",
               anchor=theirs, anchor_name="qemu-io write", higher_is_better=True,
               target=TARGET)
    ours, theirs = alternate(_rate([ours_img], ours_write_chunks),
                             _rate([qemu_target], qemu_write_chunks))
    report.add(BENCH, "write 256 MiB qcow2 (1 MiB requests)", ours, "MiB/s",
               anchor=theirs, anchor_name="qemu-io write x256", higher_is_better=True,
               target=TARGET)
    qemu_img("compare", str(ours_img), str(qemu_target))   # same content, or this raises

    # the request alone, as qemu-io times its own: no process start, no open, no flush
    def ours_request() -> float:
        ours_img.unlink(missing_ok=True)
        create_qcow2(ours_img, SIZE)
        with open_image(ours_img, writable=True) as img:
            return _mibps(timed(lambda: img.write(0, data))[0])

    def qemu_request() -> float:
        qemu_target.unlink(missing_ok=True)
        qemu_img("create", "-q", "-f", "qcow2", str(qemu_target), str(SIZE))
        return qemu_io_rate(qemu_io(qemu_target, "write -P 0x5a 0 256M").stdout)

    ours, theirs = alternate(ours_request, qemu_request)
    report.add(BENCH, "write 256 MiB qcow2 (request only)", ours, "MiB/s",
               anchor=theirs, anchor_name="qemu-io write (its own timing)",
               higher_is_better=True, target=TARGET)

    buf = aligned_buffer(2 * CHUNK)     # qemu-img convert moves 2 MiB per request too

    def ours_read() -> None:
        with open_image(qemu_target) as img:
            view = memoryview(buf)
            for off in range(0, SIZE, len(buf)):
                img.readinto(off, view, prezeroed=False)

    def qemu_read() -> None:
        qemu_io(qemu_target, "read 0 256M")

    ours, theirs = alternate(_rate([], ours_read), _rate([], qemu_read))
    assert buf[:] == b"\x5a" * len(buf)      # the last chunk really was read
    report.add(BENCH, "read 256 MiB qcow2", ours, "MiB/s", anchor=theirs,
               anchor_name="qemu-io read", higher_is_better=True, target=TARGET)

    whole = memoryview(aligned_buffer(SIZE))     # qemu-io's buffer is aligned too
    whole[:] = b"\xab" * SIZE                   # and filled (paged in) before its clock
    with open_image(qemu_target) as img:
        ours, theirs = alternate(
            lambda: _mibps(timed(lambda: img.readinto(0, whole))[0]),
            lambda: qemu_io_rate(qemu_io(qemu_target, "read 0 256M").stdout))
    report.add(BENCH, "read 256 MiB qcow2 (request only)", ours, "MiB/s",
               anchor=theirs, anchor_name="qemu-io read (its own timing)",
               higher_is_better=True, target=TARGET)
    whole.release()

    out_ours, out_qemu = tmp / "ours.raw", tmp / "qemu.raw"

    def ours_convert() -> None:
        chain = open_chain(qemu_target)
        try:
            reader = ChainReader(chain)
            fd = os.open(out_ours, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.ftruncate(fd, SIZE)
            try:
                view = memoryview(buf)
                for off in range(0, SIZE, len(buf)):
                    reader.readinto(off, view)
                    os.pwrite(fd, view, off)
                # no flush: qemu-img convert's default output cache mode is "unsafe"
            finally:
                os.close(fd)
        finally:
            for img in chain:
                img.close()

    def qemu_convert() -> None:
        qemu_img("convert", "-O", "raw", str(qemu_target), str(out_qemu))

    ours, theirs = alternate(_rate([out_ours], ours_convert), _rate([out_qemu], qemu_convert))
    report.add(BENCH, "qcow2 -> raw 256 MiB", ours, "MiB/s", anchor=theirs,
               anchor_name="qemu-img convert -O raw", higher_is_better=True, target=TARGET)
    assert out_ours.read_bytes() == out_qemu.read_bytes()


if __name__ == "__main__":
    r = Report()
    run(r)
    print(r.table())
