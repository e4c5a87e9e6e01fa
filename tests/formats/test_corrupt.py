"""Corrupt and unsupported images: typed errors naming file, offset and problem;
never garbage, never a hang, never a traceback from ``blockgraph info``."""

from __future__ import annotations

import resource
import struct
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from engine.formats import ChainReader, open_chain, open_image
from engine.formats import cli as info_cli
from engine.formats.errors import (
    BackingChainError,
    CorruptImageError,
    ImageError,
    ImageReadOnlyError,
    UnsupportedImageError,
)
from tests.support.qemu import QEMU_IO, check, create, qemu_img, qemu_io

pytestmark = [pytest.mark.qemu, pytest.mark.timeout(20)]

MiB = 1 << 20


def patch(path: Path, offset: int, fmt: str, *values: int) -> Path:
    with path.open("r+b") as f:
        f.seek(offset)
        f.write(struct.pack(fmt, *values))
    return path


def u64_at(path: Path, offset: int) -> int:
    with path.open("rb") as f:
        f.seek(offset)
        return struct.unpack(">Q", f.read(8))[0]


def good(tmp: Path, name: str = "img.qcow2", options: str | None = None) -> Path:
    img = create(tmp / name, 4 * MiB, options=options)
    qemu_io(img, "write -P 0x42 0 256k")
    return img


def cli_fails(capsys: pytest.CaptureFixture[str], path: Path, *extra: str) -> str:
    code = info_cli.main([*extra, str(path)])
    out, err = capsys.readouterr()
    assert code == 1, (out, err)
    assert out == ""
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert str(path.name) in err
    return err


# (name, how to break a good image, expected error type, words the message must contain)
Breaker = Callable[[Path], Path]
CASES: list[tuple[str, Breaker, type[ImageError], str]] = [
    ("truncated header", lambda p: _truncate(p, 50), CorruptImageError, "header"),
    ("truncated v3 header", lambda p: _truncate(p, 90), CorruptImageError, "version 3 header"),
    ("bad version", lambda p: patch(p, 4, ">I", 4), UnsupportedImageError, "version 4"),
    ("version 1", lambda p: patch(p, 4, ">I", 1), UnsupportedImageError, "version 1"),
    ("cluster_bits too small", lambda p: patch(p, 20, ">I", 8), CorruptImageError,
     "cluster size"),
    ("cluster_bits too large", lambda p: patch(p, 20, ">I", 22), CorruptImageError,
     "cluster size"),
    ("cluster_bits absurd", lambda p: patch(p, 20, ">I", 0xFFFFFFFF), CorruptImageError,
     "cluster size"),
    ("unknown incompatible bit", lambda p: patch(p, 72, ">Q", 1 << 20), UnsupportedImageError,
     "Unknown incompatible feature: 100000"),
    ("high incompatible bit", lambda p: patch(p, 72, ">Q", 1 << 63), UnsupportedImageError,
     "incompatible feature"),
    ("header_length too short", lambda p: patch(p, 100, ">I", 96), CorruptImageError,
     "too short"),
    ("header_length beyond cluster", lambda p: patch(p, 100, ">I", 1 << 20), CorruptImageError,
     "exceeds cluster size"),
    ("refcount_order too large", lambda p: patch(p, 96, ">I", 7), CorruptImageError,
     "64 bits"),
    ("refcount table too large", lambda p: patch(p, 56, ">I", 0xFFFFFFFF), CorruptImageError,
     "Reference count table too large"),
    ("refcount table unaligned", lambda p: patch(p, 48, ">Q", 0x10008), CorruptImageError,
     "Reference count table offset invalid"),
    ("refcount table past EOF", lambda p: patch(p, 48, ">Q", 1 << 40), CorruptImageError,
     "past the end"),
    ("no refcount table", lambda p: patch(p, 56, ">I", 0), CorruptImageError,
     "reference count table"),
    ("L1 size overflow", lambda p: patch(p, 36, ">I", 0xFFFFFFFF), CorruptImageError,
     "L1 table too large"),
    ("L1 too small for size", lambda p: patch(p, 36, ">I", 0), CorruptImageError,
     "L1 table is too small"),
    ("L1 offset unaligned", lambda p: patch(p, 40, ">Q", 0x30010), CorruptImageError,
     "L1 table offset invalid"),
    ("L1 table past EOF", lambda p: patch(p, 40, ">Q", 1 << 40), CorruptImageError,
     "past the end"),
    ("huge virtual size", lambda p: patch(p, 24, ">Q", (1 << 64) - 1), CorruptImageError,
     "too big"),
    ("virtual size needs a bigger L1", lambda p: patch(p, 24, ">Q", 1 << 62), CorruptImageError,
     "too big"),
    ("backing name offset beyond cluster 0",
     lambda p: patch(p, 8, ">QI", 0x10008, 10), CorruptImageError, "backing file offset"),
    ("backing name runs past cluster 0",
     lambda p: patch(p, 8, ">QI", 0xFFF0, 100), CorruptImageError, "name too long"),
    ("backing name too long", lambda p: patch(p, 8, ">QI", 0x300, 2000), CorruptImageError,
     "name too long"),
    ("extension length overflow", lambda p: patch(p, 0x70, ">II", 0x12345678, 0xFFFFFF00),
     CorruptImageError, "extension"),
    ("snapshot table unaligned", lambda p: patch(p, 60, ">IQ", 1, 0x10001), CorruptImageError,
     "Snapshot table offset invalid"),
    ("too many snapshots", lambda p: patch(p, 60, ">IQ", 0x7FFFFFFF, 0x10000), CorruptImageError,
     "Snapshot table too large"),
    ("compression type byte without its bit", lambda p: patch(p, 104, ">B", 1),
     CorruptImageError, "compression type"),
    ("unknown compression type", lambda p: patch(p, 104, ">B", 9), UnsupportedImageError,
     "compression type 9"),
    ("encryption method", lambda p: patch(p, 32, ">I", 1), UnsupportedImageError,
     "encryption"),
    ("LUKS encryption method", lambda p: patch(p, 32, ">I", 2), UnsupportedImageError,
     "encryption (LUKS)"),
]


def _truncate(p: Path, n: int) -> Path:
    with p.open("r+b") as f:
        f.truncate(n)
    return p


@pytest.mark.parametrize("name,breaker,error,words", CASES, ids=[c[0] for c in CASES])
def test_broken_headers(tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str,
                        breaker: Breaker, error: type[ImageError], words: str) -> None:
    img = breaker(good(tmp_path))
    with pytest.raises(error) as info:
        open_image(img, "qcow2")
    msg = str(info.value)
    assert words.lower() in msg.lower(), msg
    assert info.value.path == str(img) and str(img) in msg
    err = cli_fails(capsys, img, "-f", "qcow2")
    assert words.lower() in err.lower()


def test_bad_magic(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = patch(good(tmp_path), 0, ">I", 0x12345678)
    with pytest.raises(CorruptImageError, match="not in qcow2 format"):
        open_image(img, "qcow2")
    cli_fails(capsys, img, "-f", "qcow2")
    with open_image(img) as probed:        # without -f it is just bytes: raw
        assert probed.format == "raw"


@pytest.mark.parametrize("option,feature", [
    ("extended_l2=on", "extended L2"), ("compression_type=zstd", "zstd"),
    ("data_file={dir}/data.raw", "external data file")])
def test_unsupported_features_made_by_qemu(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           option: str, feature: str) -> None:
    img = create(tmp_path / "f.qcow2", MiB, options=option.format(dir=tmp_path))
    with pytest.raises(UnsupportedImageError) as info:
        open_image(img)
    assert feature in str(info.value)
    assert info.value.feature
    assert feature in cli_fails(capsys, img)


def test_encrypted_image_made_by_qemu(  # legacy AES: LUKS key setup takes seconds
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = tmp_path / "enc.qcow2"
    qemu_img("create", "-q", "--object", "secret,id=s0,data=pw", "-f", "qcow2", "-o",
             "encrypt.format=aes,encrypt.key-secret=s0", str(img), "1M")
    with pytest.raises(UnsupportedImageError, match="encryption"):
        open_image(img)
    assert "encryption" in cli_fails(capsys, img)


def test_l2_table_past_eof(tmp_path: Path) -> None:
    img = good(tmp_path)
    with open_image(img) as opened:
        l1_off = opened.header.l1_table_offset
    patch(img, l1_off, ">Q", (1 << 63) | (1 << 40))
    with open_image(img) as opened, pytest.raises(CorruptImageError, match="past the end") as e:
        opened.read(0, 4096)
    assert e.value.offset == l1_off


def test_l2_and_data_offsets_unaligned(tmp_path: Path) -> None:
    img = good(tmp_path)
    with open_image(img) as opened:
        l1_off = opened.header.l1_table_offset
    l2_off = u64_at(img, l1_off) & 0x00FFFFFFFFFFFE00
    data_entry = u64_at(img, l2_off)
    patch(img, l2_off, ">Q", data_entry + 512)             # data cluster not aligned
    with open_image(img) as opened, pytest.raises(CorruptImageError, match="unaligned"):
        opened.read(0, 10)
    patch(img, l1_off, ">Q", (1 << 63) | (l2_off + 512))   # L2 table not aligned
    with open_image(img) as opened, pytest.raises(CorruptImageError, match="L2 table offset"):
        opened.block_status(0, MiB)


def test_data_cluster_past_eof(tmp_path: Path) -> None:
    img = good(tmp_path)
    with open_image(img) as opened:
        l2_off = opened.l1[0] & 0x00FFFFFFFFFFFE00
    patch(img, l2_off, ">Q", (1 << 63) | (1 << 40))
    with open_image(img) as opened, pytest.raises(CorruptImageError, match="past the end"):
        opened.read(0, 4096)


def test_garbage_compressed_cluster(tmp_path: Path) -> None:
    src = good(tmp_path, "src.qcow2")
    comp = tmp_path / "c.qcow2"
    qemu_img("convert", "-c", "-O", "qcow2", str(src), str(comp))
    with open_image(comp) as opened:
        ext = opened.block_status(0, 65536)[0]
        assert ext.compressed
        entry = opened._l2(0)[0]
    coff = entry & ((1 << 54) - 1)
    patch(comp, coff, ">Q", 0xFFFFFFFFFFFFFFFF)
    with open_image(comp) as opened, pytest.raises(CorruptImageError, match="ecompress"):
        opened.read(0, 65536)


def test_corrupt_bit_is_read_only(tmp_path: Path) -> None:
    img = patch(good(tmp_path), 72, ">Q", 2)
    with open_image(img) as opened:
        assert opened.read(0, 4) == b"\x42" * 4
        assert opened.info()["format-specific"]["data"]["corrupt"] is True
    with pytest.raises(ImageReadOnlyError, match="corrupt"):
        open_image(img, writable=True)


def test_dirty_image_reads_and_is_repaired_before_writing(tmp_path: Path) -> None:
    """A lazy-refcounts image QEMU left dirty (killed mid-run): stale refcounts."""
    img = create(tmp_path / "dirty.qcow2", 8 * MiB, options="lazy_refcounts=on,cluster_size=4096")
    subprocess.run(   # qemu-io's "abort" kills it mid-run; no core file, please
        [QEMU_IO, "-f", "qcow2", "-c", "write -P 1 0 1M", "-c", "write -P 2 3M 100k",
         "-c", "abort", str(img)], cwd=tmp_path, capture_output=True,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_CORE, (0, 0)))
    assert qemu_img("check", str(img), check=False).returncode == 2   # really stale
    raw = tmp_path / "dirty.raw"
    qemu_img("convert", "-O", "raw", str(img), str(raw))
    expected = bytearray(raw.read_bytes())
    with open_image(img) as opened:
        assert opened.dirty and opened.info()["dirty-flag"] is True
        assert opened.read(0, 8 * MiB) == expected
    with open_image(img, writable=True) as opened:
        opened.write(500_000, b"\x03" * 700_000)
        expected[500_000:1_200_000] = b"\x03" * 700_000
        assert not opened.dirty
    report = check(img)
    assert report["check-errors"] == 0
    with open_image(img) as opened:
        assert opened.read(0, 8 * MiB) == expected


def test_dirty_image_with_snapshots_refuses_writes(tmp_path: Path) -> None:
    img = good(tmp_path, options="lazy_refcounts=on")
    qemu_img("snapshot", "-c", "s", str(img))
    patch(img, 72, ">Q", 1)
    with open_image(img, writable=True) as opened:
        assert opened.read(0, 4) == b"\x42" * 4
        with pytest.raises(UnsupportedImageError, match="snapshots"):
            opened.write(0, b"x")


def test_snapshot_table_past_eof(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    img = patch(good(tmp_path), 60, ">IQ", 3, 1 << 30)
    with open_image(img) as opened, pytest.raises(CorruptImageError, match="Snapshot table"):
        opened.info()
    cli_fails(capsys, img)


def test_self_and_long_loops(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    me = create(tmp_path / "me.qcow2", MiB)
    qemu_img("rebase", "-u", "-b", "me.qcow2", "-F", "qcow2", str(me))
    with pytest.raises(BackingChainError, match="loop"):
        open_chain(me)
    assert "loop" in cli_fails(capsys, me, "--backing-chain")
    # a -> b -> c -> a, with names written differently (./b.qcow2, absolute path)
    a = create(tmp_path / "a.qcow2", MiB)
    b = create(tmp_path / "b.qcow2", MiB)
    c = create(tmp_path / "c.qcow2", MiB, backing=str(a))
    qemu_img("rebase", "-u", "-b", "./b.qcow2", "-F", "qcow2", str(a))
    qemu_img("rebase", "-u", "-b", "c.qcow2", "-F", "qcow2", str(b))
    with pytest.raises(BackingChainError, match="loop"):
        open_chain(c)


def test_missing_backing_and_broken_backing(tmp_path: Path) -> None:
    create(tmp_path / "base.qcow2", MiB)
    top = create(tmp_path / "top.qcow2", MiB, backing="base.qcow2")
    (tmp_path / "base.qcow2").unlink()
    with pytest.raises(BackingChainError, match=r"base\.qcow2") as info:
        open_chain(top)
    assert info.value.path == str(top)
    base = tmp_path / "base.qcow2"
    base.write_bytes(b"QFI\xfb" + b"\0" * 10)            # a truncated qcow2 as backing file
    with pytest.raises(BackingChainError, match=r"base\.qcow2"):
        open_chain(top)


def test_out_of_range_requests(tmp_path: Path) -> None:
    img = good(tmp_path)
    with open_image(img) as opened:
        for off, n in [(-1, 1), (0, -1), (4 * MiB, 1), (4 * MiB - 1, 2)]:
            with pytest.raises(ValueError):
                opened.read(off, n)
        with pytest.raises(ImageReadOnlyError):
            opened.write(0, b"x")
    chain = open_chain(img)
    with pytest.raises(ValueError):
        ChainReader(chain).read(4 * MiB, 1)
    for i in chain:
        i.close()


def test_unknown_format_and_empty_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                       ) -> None:
    empty = tmp_path / "empty.img"
    empty.write_bytes(b"")
    with pytest.raises(UnsupportedImageError, match="vmdk"):
        open_image(empty, "vmdk")
    with pytest.raises(CorruptImageError):
        open_image(empty, "qcow2")
    with open_image(empty) as img:
        assert img.format == "raw" and img.virtual_size == 0
    code = info_cli.main(["--output=json", str(empty)])
    assert code == 0 and '"virtual-size": 0' in capsys.readouterr().out
