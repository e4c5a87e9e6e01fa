"""The qcow2 header (cluster 0): parse, validate and serialise it.

Validation follows the order and the limits QEMU 7.2 applies when it opens an
image, so that an image QEMU refuses is refused here too, with a typed error
naming the file, the offset of the bad field and what is wrong with it. Nothing
here reads past cluster 0; the snapshot and bitmap directories are read by
:mod:`engine.formats.qcow2_directories`.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace

from engine.formats.errors import CorruptImageError, UnsupportedImageError

MAGIC = b"QFI\xfb"
V2_HEADER_LENGTH = 72
V3_HEADER_LENGTH = 104
#: what qemu-img 7.2 writes for v3: 104 bytes + compression type byte + 7 bytes padding
QEMU_V3_HEADER_LENGTH = 112
MIN_CLUSTER_BITS = 9
MAX_CLUSTER_BITS = 21
MAX_BACKING_NAME = 1023
MAX_L1_BYTES = 32 << 20          # QEMU's limit on the active L1 table
MAX_REFTABLE_BYTES = 8 << 20     # QEMU's limit on the refcount table
MAX_SNAPSHOTS = 65536
SNAPSHOT_HEADER_SIZE = 40
INT64_MAX = (1 << 63) - 1

# incompatible feature bits
INCOMPAT_DIRTY = 1 << 0
INCOMPAT_CORRUPT = 1 << 1
INCOMPAT_DATA_FILE = 1 << 2
INCOMPAT_COMPRESSION = 1 << 3
INCOMPAT_EXTL2 = 1 << 4
INCOMPAT_KNOWN = 0x1F
COMPAT_LAZY_REFCOUNTS = 1 << 0
AUTOCLEAR_BITMAPS = 1 << 0
AUTOCLEAR_DATA_FILE_RAW = 1 << 1
AUTOCLEAR_KNOWN = 0x3

# header extension types
EXT_END = 0x00000000
EXT_BACKING_FORMAT = 0xE2792ACA
EXT_FEATURE_TABLE = 0x6803F857
EXT_BITMAPS = 0x23852875
EXT_CRYPTO = 0x0537BE77
EXT_DATA_FILE = 0x44415441

_FIXED = struct.Struct(">4sIQIIQIIQQIIQ")          # the 72-byte v2 header
_V3 = struct.Struct(">QQQII")                       # bytes 72..103

#: names QEMU uses for the incompatible bits it knows (feature-name table entries)
INCOMPAT_NAMES = {0: "dirty bit", 1: "corrupt bit", 2: "external data file",
                  3: "compression type", 4: "extended L2 entries"}
COMPAT_NAMES = {0: "lazy refcounts"}
AUTOCLEAR_NAMES = {0: "bitmaps", 1: "raw external data"}


@dataclass(frozen=True, slots=True)
class HeaderExtension:
    """One header extension as found on disk (``offset`` of its 8-byte type/length)."""

    type: int
    data: bytes
    offset: int = 0


@dataclass(frozen=True, slots=True)
class Qcow2Header:
    """Every field of the header plus the parsed extensions and backing name."""

    version: int
    backing_file_offset: int
    backing_file_size: int
    cluster_bits: int
    size: int
    crypt_method: int
    l1_size: int
    l1_table_offset: int
    refcount_table_offset: int
    refcount_table_clusters: int
    nb_snapshots: int
    snapshots_offset: int
    incompatible_features: int = 0
    compatible_features: int = 0
    autoclear_features: int = 0
    refcount_order: int = 4
    header_length: int = V2_HEADER_LENGTH
    #: bytes from 104 to header_length (compression type, padding, unknown fields), kept
    trailing: bytes = b""
    extensions: tuple[HeaderExtension, ...] = ()
    backing_file: str | None = None
    backing_format: str | None = None
    #: end of the extension area (offset just past the end marker)
    extensions_end: int = 0
    feature_names: dict[tuple[int, int], str] = field(default_factory=dict)

    @property
    def cluster_size(self) -> int:
        return 1 << self.cluster_bits

    @property
    def refcount_bits(self) -> int:
        return 1 << self.refcount_order

    @property
    def compression_type(self) -> int:
        return self.trailing[0] if self.header_length > V3_HEADER_LENGTH and self.trailing else 0

    @property
    def dirty(self) -> bool:
        return bool(self.incompatible_features & INCOMPAT_DIRTY)

    @property
    def corrupt(self) -> bool:
        return bool(self.incompatible_features & INCOMPAT_CORRUPT)

    @property
    def lazy_refcounts(self) -> bool:
        return bool(self.compatible_features & COMPAT_LAZY_REFCOUNTS)

    def extension(self, ext_type: int) -> HeaderExtension | None:
        return next((e for e in self.extensions if e.type == ext_type), None)

    def with_fields(self, **changes: object) -> Qcow2Header:
        return replace(self, **changes)  # type: ignore[arg-type]

    # -- serialising ------------------------------------------------------------------------
    def pack_fixed(self) -> bytes:
        """The header fields (72 bytes for v2, ``header_length`` bytes for v3)."""
        head = _FIXED.pack(MAGIC, self.version, self.backing_file_offset,
                           self.backing_file_size, self.cluster_bits, self.size,
                           self.crypt_method, self.l1_size, self.l1_table_offset,
                           self.refcount_table_offset, self.refcount_table_clusters,
                           self.nb_snapshots, self.snapshots_offset)
        if self.version == 2:
            return head
        v3 = _V3.pack(self.incompatible_features, self.compatible_features,
                      self.autoclear_features, self.refcount_order, self.header_length)
        trailing = self.trailing.ljust(self.header_length - V3_HEADER_LENGTH, b"\0")
        return head + v3 + trailing


def pack_extension(ext_type: int, data: bytes) -> bytes:
    """Type, length, data and zero padding to a multiple of 8."""
    pad = (-len(data)) % 8
    return struct.pack(">II", ext_type, len(data)) + data + b"\0" * pad


def feature_table_data() -> bytes:
    """The feature-name table QEMU writes, for the features this engine knows."""
    entries = [(0, b, n) for b, n in INCOMPAT_NAMES.items()]
    entries += [(1, b, n) for b, n in COMPAT_NAMES.items()]
    entries += [(2, b, n) for b, n in AUTOCLEAR_NAMES.items()]
    return b"".join(struct.pack(">BB46s", t, b, n.encode()) for t, b, n in entries)


def _feature_list(bits: int, names: dict[tuple[int, int], str]) -> str:
    parts = []
    for bit in range(64):
        if bits & (1 << bit):
            name = names.get((0, bit))
            parts.append(name if name else f"Unknown incompatible feature: {1 << bit:x}")
    return ", ".join(parts)


def parse_header(cluster0: bytes, path: str, file_size: int) -> Qcow2Header:
    """Parse and validate the header and extensions found in ``cluster0``.

    ``cluster0`` holds the first bytes of the file (at least the first cluster when
    the file is that long). Raises CorruptImageError / UnsupportedImageError.
    """
    if len(cluster0) < V2_HEADER_LENGTH:
        raise CorruptImageError(
            f"Could not read qcow2 header: file is {len(cluster0)} bytes long, a header needs "
            f"{V2_HEADER_LENGTH}", path, 0)
    (magic, version, bfo, bfs, cluster_bits, size, crypt, l1_size, l1_off, rt_off, rt_clusters,
     nb_snap, snap_off) = _FIXED.unpack_from(cluster0, 0)
    if magic != MAGIC:
        raise CorruptImageError("Image is not in qcow2 format (bad magic)", path, 0)
    if version not in (2, 3):
        raise UnsupportedImageError(f"Unsupported qcow2 version {version}", path, 4,
                                    feature=f"qcow2 version {version}")
    if not MIN_CLUSTER_BITS <= cluster_bits <= MAX_CLUSTER_BITS:
        raise CorruptImageError(
            f"Unsupported cluster size: 2^{cluster_bits} (cluster_bits must be "
            f"{MIN_CLUSTER_BITS}..{MAX_CLUSTER_BITS})", path, 20)
    cluster_size = 1 << cluster_bits
    incompat = compat = autoclear = 0
    refcount_order, header_length, trailing = 4, V2_HEADER_LENGTH, b""
    if version == 3:
        (incompat, compat, autoclear, refcount_order, header_length,
         trailing) = _v3_fields(cluster0, cluster_size, path)
    if bfo > cluster_size:
        raise CorruptImageError(f"Invalid backing file offset {bfo:#x}", path, 8)
    ext_end = bfo if bfo else cluster_size

    fields = (version, bfo, bfs, cluster_bits, size, crypt, l1_size, l1_off, rt_off,
              rt_clusters, nb_snap, snap_off, incompat, compat, autoclear, refcount_order,
              header_length, trailing)
    compression = _compression_type(trailing, header_length, incompat, path)
    extensions, names, end = _parse_extensions(cluster0, header_length, ext_end, cluster_size,
                                               path, strict=not incompat & ~INCOMPAT_KNOWN)
    _refuse_unsupported(incompat, names, compression, refcount_order, crypt, path)
    _check_tables(rt_off, rt_clusters, snap_off, nb_snap, l1_off, l1_size, size, cluster_size,
                  path)
    backing_file = None
    if bfo:
        backing_file = _backing_name(cluster0, bfo, bfs, cluster_size, end, path)
    fmt_ext = next((e for e in extensions if e.type == EXT_BACKING_FORMAT), None)
    backing_format = (fmt_ext.data.decode("utf-8", errors="surrogateescape")
                      if fmt_ext is not None else None)
    _check_inside_file(l1_off, l1_size, rt_off, file_size, path)
    # built once, complete (a dataclasses.replace per open costs more than the parse)
    return Qcow2Header(*fields, extensions=tuple(extensions), backing_file=backing_file,
                       backing_format=backing_format, extensions_end=end, feature_names=names)


def _v3_fields(cluster0: bytes, cluster_size: int,
               path: str) -> tuple[int, int, int, int, int, bytes]:
    """A version 3 header's own fields: incompatible, compatible and autoclear
    features, refcount order, header length, and the bytes past the known fields."""
    if len(cluster0) < V3_HEADER_LENGTH:
        raise CorruptImageError(
            f"Could not read qcow2 header: file is {len(cluster0)} bytes long, a version 3 "
            f"header needs {V3_HEADER_LENGTH}", path, 0)
    incompat, compat, autoclear, refcount_order, header_length = _V3.unpack_from(
        cluster0, V2_HEADER_LENGTH)
    if header_length < V3_HEADER_LENGTH:
        raise CorruptImageError(f"qcow2 header too short (header_length {header_length})",
                                path, 100)
    if header_length > cluster_size:
        raise CorruptImageError(
            f"qcow2 header exceeds cluster size (header_length {header_length})", path, 100)
    if header_length > len(cluster0):
        raise CorruptImageError("Could not read qcow2 header: file ends inside the header",
                                path, len(cluster0))
    trailing = bytes(cluster0[V3_HEADER_LENGTH:header_length])
    return incompat, compat, autoclear, refcount_order, header_length, trailing


def _compression_type(trailing: bytes, header_length: int, incompat: int, path: str) -> int:
    """The compression type field (0 zlib, 1 zstd), checked against its feature bit."""
    compression = trailing[0] if header_length > V3_HEADER_LENGTH and trailing else 0
    if compression not in (0, 1):
        raise UnsupportedImageError(f"Unknown compression type {compression}", path, 104,
                                    feature="compression type")
    if bool(compression) != bool(incompat & INCOMPAT_COMPRESSION):
        raise CorruptImageError(
            "Compression type incompatible feature bit does not match the compression type "
            f"field ({compression})", path, 72)
    return compression


def _refuse_unsupported(incompat: int, names: dict[tuple[int, int], str], compression: int,
                        refcount_order: int, crypt: int, path: str) -> None:
    """Refuse the features this engine does not implement, in the order QEMU checks."""
    if incompat & ~INCOMPAT_KNOWN:
        unknown = incompat & ~INCOMPAT_KNOWN
        raise UnsupportedImageError(
            f"Unsupported qcow2 feature(s): {_feature_list(unknown, names)}", path, 72,
            feature="unknown incompatible feature")
    if incompat & INCOMPAT_DATA_FILE:
        raise UnsupportedImageError("Unsupported qcow2 feature: external data file", path, 72,
                                    feature="external data file")
    if incompat & INCOMPAT_EXTL2:
        raise UnsupportedImageError(
            "Unsupported qcow2 feature: extended L2 entries (subclusters)", path, 72,
            feature="extended L2")
    if compression == 1:
        raise UnsupportedImageError("Unsupported qcow2 feature: zstd compression", path, 104,
                                    feature="zstd compression")
    if refcount_order > 6:
        raise CorruptImageError(
            f"Reference count entry width too large; may not exceed 64 bits "
            f"(refcount_order {refcount_order})", path, 96)
    if crypt:
        kind = {1: "AES-CBC", 2: "LUKS"}.get(crypt, f"method {crypt}")
        raise UnsupportedImageError(f"Unsupported qcow2 feature: encryption ({kind})", path, 32,
                                    feature="encryption")


def _check_tables(rt_off: int, rt_clusters: int, snap_off: int, nb_snap: int, l1_off: int,
                  l1_size: int, size: int, cluster_size: int, path: str) -> None:
    """The refcount, snapshot and L1 tables are where they may be and big enough."""
    if rt_clusters == 0:
        raise CorruptImageError("Image does not contain a reference count table", path, 56)
    _validate_table(rt_off, rt_clusters, cluster_size, MAX_REFTABLE_BYTES,
                    "Reference count table", cluster_size, path, 48)
    _validate_table(snap_off, nb_snap, SNAPSHOT_HEADER_SIZE,
                    SNAPSHOT_HEADER_SIZE * MAX_SNAPSHOTS, "Snapshot table", cluster_size, path, 64)
    _validate_table(l1_off, l1_size, 8, MAX_L1_BYTES, "Active L1 table", cluster_size, path, 40)
    if size > INT64_MAX:
        raise CorruptImageError(f"Image is too big (virtual size {size})", path, 24)
    l2_entries = cluster_size // 8
    needed = -(-size // (cluster_size * l2_entries))
    if needed > 0x7FFFFFFF:
        raise CorruptImageError(f"Image is too big (virtual size {size})", path, 24)
    if l1_size < needed:
        raise CorruptImageError(
            f"L1 table is too small: {l1_size} entries, a virtual size of {size} needs {needed}",
            path, 36)


def _backing_name(cluster0: bytes, bfo: int, bfs: int, cluster_size: int, extensions_end: int,
                  path: str) -> str:
    """The backing file name at ``bfo`` (``bfs`` bytes), after the extensions."""
    if bfs > min(MAX_BACKING_NAME, cluster_size - bfo):
        raise CorruptImageError(
            f"Backing file name too long ({bfs} bytes at offset {bfo:#x})", path, 16)
    raw_name = bytes(cluster0[bfo:bfo + bfs])
    if len(raw_name) < bfs:
        raise CorruptImageError("Could not read backing file name: file ends inside it",
                                path, bfo)
    if extensions_end > bfo:
        raise CorruptImageError("Header extensions overlap the backing file name", path, bfo)
    return raw_name.decode("utf-8", errors="surrogateescape")


def _check_inside_file(l1_off: int, l1_size: int, rt_off: int, file_size: int,
                       path: str) -> None:
    """The L1 and refcount tables start inside the file."""
    if file_size and l1_size and l1_off >= file_size:
        raise CorruptImageError(
            f"Active L1 table at offset {l1_off:#x} lies past the end of the file "
            f"({file_size} bytes)", path, 40)
    if file_size and rt_off >= file_size:
        raise CorruptImageError(
            f"Reference count table at offset {rt_off:#x} lies past the end of the file "
            f"({file_size} bytes)", path, 48)


def _validate_table(offset: int, entries: int, entry_len: int, max_bytes: int, what: str,
                    cluster_size: int, path: str, field_offset: int) -> None:
    if entries > max_bytes // entry_len:
        raise CorruptImageError(f"{what} too large ({entries} entries)", path, field_offset)
    size = entries * entry_len
    if offset % cluster_size or offset + size > INT64_MAX:
        raise CorruptImageError(f"{what} offset invalid ({offset:#x})", path, field_offset)


def _parse_extensions(buf: bytes, start: int, limit: int, cluster_size: int, path: str,
                      strict: bool) -> tuple[list[HeaderExtension], dict[tuple[int, int], str],
                                             int]:
    """Walk the extension area; returns the extensions, feature names and area end."""
    exts: list[HeaderExtension] = []
    names: dict[tuple[int, int], str] = {}
    seen: set[int] = set()
    pos = start
    limit = min(limit, cluster_size)
    while True:
        if pos + 8 > limit or pos + 8 > len(buf):
            if not strict:
                return exts, names, pos
            raise CorruptImageError("Header extension area is not terminated", path, pos)
        ext_type, length = struct.unpack_from(">II", buf, pos)
        if ext_type == EXT_END:
            return exts, names, pos + 8
        if length > limit - pos - 8:
            if not strict:
                return exts, names, pos
            raise CorruptImageError(
                f"Header extension too large (type {ext_type:#010x}, length {length})", path, pos)
        data = bytes(buf[pos + 8:pos + 8 + length])
        if strict and ext_type in seen and ext_type in (EXT_BACKING_FORMAT, EXT_FEATURE_TABLE,
                                                        EXT_BITMAPS, EXT_CRYPTO, EXT_DATA_FILE):
            raise CorruptImageError(f"Duplicate header extension {ext_type:#010x}", path, pos)
        seen.add(ext_type)
        if ext_type == EXT_BACKING_FORMAT and length > 15 and strict:
            raise CorruptImageError(f"Backing format name too long ({length} bytes)", path, pos)
        if ext_type == EXT_FEATURE_TABLE:
            for i in range(0, len(data) - 47, 48):   # data may end early (short file)
                ftype, bit = data[i], data[i + 1]
                names[(ftype, bit)] = data[i + 2:i + 48].rstrip(b"\0").decode(
                    "utf-8", errors="replace")
        exts.append(HeaderExtension(ext_type, data, pos))
        pos += 8 + length + ((-length) % 8)


def layout_cluster0(header: Qcow2Header, extensions: list[tuple[int, bytes]],
                    backing_file: str | None, *, feature_table: bool = True,
                    name_at: int | None = None) -> tuple[bytes, Qcow2Header]:
    """Serialise header + extensions (+ feature table) + end marker + backing name.

    Returns the bytes up to the end of the backing name (or of the end marker)
    and the header with ``backing_file_offset``/``backing_file_size`` filled in.
    The name goes right after the end marker unless ``name_at`` says where.
    Raises ValueError when it does not fit in cluster 0.
    """
    ext_bytes = b"".join(pack_extension(t, d) for t, d in extensions)
    if feature_table:
        ext_bytes += pack_extension(EXT_FEATURE_TABLE, feature_table_data())
    ext_bytes += pack_extension(EXT_END, b"")
    name = backing_file.encode("utf-8", errors="surrogateescape") if backing_file else b""
    if len(name) > MAX_BACKING_NAME:
        raise ValueError(f"backing file name is {len(name)} bytes long; at most "
                         f"{MAX_BACKING_NAME} fit in a qcow2 header")
    fixed_len = header.header_length if header.version == 3 else V2_HEADER_LENGTH
    ext_end = fixed_len + len(ext_bytes)
    if name:
        bfo = ext_end if name_at is None else name_at
        if bfo < ext_end:
            raise ValueError("backing name would overlap the header extensions")
    else:
        bfo = 0
    new = replace(header, backing_file_offset=bfo, backing_file_size=len(name) if name else 0)
    end = max(ext_end, bfo + len(name))
    if end > header.cluster_size:
        raise ValueError(f"header, extensions and backing file name need {end} bytes; the "
                         f"cluster is {header.cluster_size} bytes")
    out = bytearray(end)
    fixed = new.pack_fixed()
    out[:len(fixed)] = fixed
    out[fixed_len:ext_end] = ext_bytes
    if name:
        out[bfo:bfo + len(name)] = name
    return bytes(out), new
