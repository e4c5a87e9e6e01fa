"""Regenerate the seed corpus in ``tests/fuzz/corpus/`` with the real ``qemu-img``.

The seeds are small, valid images that cover the structures the readers parse:
qcow2 v2 and v3, several cluster sizes and refcount widths, data and zero
clusters, a compressed cluster, a backing file with its format extension, an
internal snapshot, a dirty bitmap extension, an external data file and extended
L2 entries (both refused with a typed error), and raw. The fuzz targets mutate
them; committing them keeps runs reproducible. Run ``python -m tests.fuzz.make_corpus``.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

CORPUS = Path(__file__).parent / "corpus" / "images"


def _run(*args: str, cwd: Path) -> None:
    subprocess.run(args, cwd=cwd, check=True, capture_output=True)


def _io(path: str, *cmds: str, cwd: Path, fmt: str = "qcow2") -> None:
    args = ["qemu-io", "-f", fmt]
    for c in cmds:
        args += ["-c", c]
    _run(*args, path, cwd=cwd)


def make(out: Path = CORPUS) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    for old in out.iterdir():
        old.unlink()
    d = out
    _run("qemu-img", "create", "-f", "raw", "base.raw", "64K", cwd=d)
    _io("base.raw", "write -P 0x11 0 8K", "write -P 0x22 40K 4K", cwd=d, fmt="raw")

    _run("qemu-img", "create", "-f", "qcow2", "-o", "cluster_size=512", "v3-512.qcow2", "64K",
         cwd=d)
    _io("v3-512.qcow2", "write -P 0xaa 0 1K", "write -z 4K 2K", "write -P 0xbb 60K 512",
        cwd=d)

    _run("qemu-img", "create", "-f", "qcow2", "-o", "compat=0.10,cluster_size=1024",
         "v2-1k.qcow2", "128K", cwd=d)
    _io("v2-1k.qcow2", "write -P 0x5a 3K 5K", "write -P 0x00 64K 1K", cwd=d)

    _run("qemu-img", "create", "-f", "qcow2", "-o", "cluster_size=4096", "-b", "base.raw",
         "-F", "raw", "overlay.qcow2", "64K", cwd=d)
    _io("overlay.qcow2", "write -P 0xcc 4K 4K", "write -z 40K 4K", cwd=d)

    _run("qemu-img", "create", "-f", "qcow2", "-o", "cluster_size=512,refcount_bits=1",
         "refcount1.qcow2", "32K", cwd=d)
    _io("refcount1.qcow2", "write -P 0x33 1K 3K", cwd=d)
    _run("qemu-img", "create", "-f", "qcow2",
         "-o", "cluster_size=512,refcount_bits=64,lazy_refcounts=on",
         "refcount64.qcow2", "32K", cwd=d)
    _io("refcount64.qcow2", "write -P 0x44 0 2K", cwd=d)

    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "src.raw"
        _run("qemu-img", "create", "-f", "raw", str(src), "32K", cwd=d)
        _io(str(src), "write -P 0x61 0 16K", cwd=d, fmt="raw")
        _run("qemu-img", "convert", "-c", "-O", "qcow2", "-o", "cluster_size=4096",
             str(src), "compressed.qcow2", cwd=d)

    _run("qemu-img", "create", "-f", "qcow2", "-o", "cluster_size=512", "snapshot.qcow2",
         "16K", cwd=d)
    _io("snapshot.qcow2", "write -P 0x71 0 1K", cwd=d)
    _run("qemu-img", "snapshot", "-c", "snap1", "snapshot.qcow2", cwd=d)
    _io("snapshot.qcow2", "write -P 0x72 512 1K", cwd=d)

    _run("qemu-img", "create", "-f", "qcow2", "-o", "cluster_size=512", "bitmap.qcow2", "16K",
         cwd=d)
    _run("qemu-img", "bitmap", "--add", "bitmap.qcow2", "b0", cwd=d)

    _run("qemu-img", "create", "-f", "qcow2", "-o", "cluster_size=512,data_file=data.raw",
         "datafile.qcow2", "16K", cwd=d)
    _run("qemu-img", "create", "-f", "qcow2", "-o", "cluster_size=16384,extended_l2=on",
         "extl2.qcow2", "64K", cwd=d)
    _io("extl2.qcow2", "write -P 0x7e 0 1K", cwd=d)
    return sorted(p for p in out.iterdir())


if __name__ == "__main__":
    for p in make():
        print(f"{p.stat().st_size:8d}  {p.name}")
