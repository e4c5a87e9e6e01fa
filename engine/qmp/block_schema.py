"""QAPI schemas of the block commands (QEMU 7.2 ``qapi/block-core.json``), as data.

Only the shapes are restated here (member names, types, optionality, order); they
drive argument checking so malformed input gets QEMU's exact texts. Drivers valid in
QEMU but not modelled by the engine pass argument checking with their base members
and are refused later with a clear text.
"""

from __future__ import annotations

from engine.qmp.schema import (
    Alternate,
    Bool,
    Enum,
    Int,
    ListOf,
    Str,
    Struct,
    Union,
    members,
)

#: BlockdevDriver values of a Debian QEMU 7.2 qemu-storage-daemon.
BLOCKDEV_DRIVERS = (
    "blkdebug", "blklogwrites", "blkreplay", "blkverify", "bochs", "cloop", "compress",
    "copy-before-write", "copy-on-read", "dmg", "file", "snapshot-access", "ftp", "ftps",
    "gluster", "host_cdrom", "host_device", "http", "https", "io_uring", "iscsi", "luks",
    "nbd", "nfs", "null-aio", "null-co", "nvme", "nvme-io_uring", "parallels",
    "preallocate", "qcow", "qcow2", "qed", "quorum", "raw", "rbd", "replication", "ssh",
    "throttle", "vdi", "vhdx", "virtio-blk-vfio-pci", "virtio-blk-vhost-user",
    "virtio-blk-vhost-vdpa", "vmdk", "vpc", "vvfat",
)

Driver = Enum("BlockdevDriver", BLOCKDEV_DRIVERS)
OnOffAuto = Enum("OnOffAuto", ["auto", "on", "off"])
Aio = Enum("BlockdevAioOptions", ["threads", "native", "io_uring"])
Discard = Enum("BlockdevDiscardOptions", ["ignore", "unmap"])
DetectZeroes = Enum("BlockdevDetectZeroesOptions", ["off", "on", "unmap"])
Cache = Struct("BlockdevCacheOptions", members({"*direct": Bool(), "*no-flush": Bool()}))

BASE = members({
    "driver": Driver,
    "*node-name": Str(),
    "*discard": Discard,
    "*cache": Cache,
    "*read-only": Bool(),
    "*auto-read-only": Bool(),
    "*force-share": Bool(),
    "*detect-zeroes": DetectZeroes,
})

BlockdevRef = Alternate("BlockdevRef", string=Str())
BlockdevRefOrNull = Alternate("BlockdevRefOrNull", string=Str(), null=True)

_FILE = members({
    "filename": Str(), "*pr-manager": Str(), "*locking": OnOffAuto, "*aio": Aio,
    "*aio-max-batch": Int(), "*drop-cache": Bool(), "*x-check-cache-dropped": Bool(),
})
_GENERIC_FORMAT = members({"file": BlockdevRef})
_COW = (*_GENERIC_FORMAT, *members({"*backing": BlockdevRefOrNull}))
_OVERLAP = Alternate("Qcow2OverlapChecks", string=Enum(
    "Qcow2OverlapCheckMode", ["none", "constant", "cached", "all"]),
    obj=Struct("Qcow2OverlapCheckFlags", members({
        "*template": Enum("Qcow2OverlapCheckMode", ["none", "constant", "cached", "all"]),
        "*main-header": Bool(), "*active-l1": Bool(), "*active-l2": Bool(),
        "*refcount-table": Bool(), "*refcount-block": Bool(), "*snapshot-table": Bool(),
        "*inactive-l1": Bool(), "*inactive-l2": Bool(), "*bitmap-directory": Bool()})))
_QCOW2 = (*_COW, *members({
    "*lazy-refcounts": Bool(), "*pass-discard-request": Bool(),
    "*pass-discard-snapshot": Bool(), "*pass-discard-other": Bool(),
    "*overlap-check": _OVERLAP, "*cache-size": Int(), "*l2-cache-size": Int(),
    "*l2-cache-entry-size": Int(), "*refcount-cache-size": Int(),
    "*cache-clean-interval": Int(), "*encrypt": Struct("BlockdevQcow2Encryption", open=True),
    "*data-file": BlockdevRef,
}))
_RAW = (*_GENERIC_FORMAT, *members({"*offset": Int(), "*size": Int()}))
_NULL = members({"*size": Int(), "*latency-ns": Int(), "*read-zeroes": Bool()})
_THROTTLE = members({"throttle-group": Str(), "file": BlockdevRef})
_COR = (*_GENERIC_FORMAT, *members({"*bottom": Str()}))
_QUORUM = members({"*blkverify": Bool(), "children": ListOf(BlockdevRef),
                   "vote-threshold": Int(), "*rewrite-corrupted": Bool(),
                   "*read-pattern": Enum("QuorumReadPattern", ["quorum", "fifo"])})

BlockdevOptions = Union("BlockdevOptions", BASE, variants={
    "file": _FILE,
    "host_device": _FILE,
    "host_cdrom": _FILE,
    "qcow2": _QCOW2,
    "raw": _RAW,
    "null-co": _NULL,
    "null-aio": _NULL,
    "throttle": _THROTTLE,
    "copy-on-read": _COR,
    "compress": _GENERIC_FORMAT,
    "quorum": _QUORUM,
    "preallocate": (*_GENERIC_FORMAT, *members({"*prealloc-align": Int(),
                                                "*prealloc-size": Int()})),
    "qcow": _COW, "qed": _COW, "vmdk": _COW,
    "vdi": _GENERIC_FORMAT, "vhdx": _GENERIC_FORMAT, "vpc": _GENERIC_FORMAT,
    "parallels": _GENERIC_FORMAT, "bochs": _GENERIC_FORMAT, "cloop": _GENERIC_FORMAT,
    "dmg": _GENERIC_FORMAT,
})
BlockdevRef.obj = BlockdevOptions
BlockdevRefOrNull.obj = BlockdevOptions

BlockdevReopen = Struct("blockdev-reopen", members({"options": ListOf(BlockdevOptions)}))
BlockdevDel = Struct("blockdev-del", members({"node-name": Str()}))
QueryNamedBlockNodes = Struct("query-named-block-nodes", members({"*flat": Bool()}))
