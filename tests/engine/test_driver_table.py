"""The driver table against QEMU 7.2: every driver it knows, and what each one is.

The table is the one place the engine, the rules and the editor learn what a driver
is; these tests hold it to the real qemu-storage-daemon's schema and to the facts of
QEMU's block drivers.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.formats.probe import FORMATS
from engine.graph import drivers
from engine.qmp import Engine
from engine.qmp.block_schema import BLOCKDEV_DRIVERS
from engine.qmp.errors import QMPError
from tests.support.peer import started_peer
from tests.support.qemu import create

LIBBLKIO = {"io_uring", "nvme-io_uring", "virtio-blk-vfio-pci", "virtio-blk-vhost-user",
            "virtio-blk-vhost-vdpa"}


def _qsd_blockdev_drivers(tmp_path: Path) -> set[str]:
    with started_peer("qsd", tmp_path) as qsd:
        schema = qsd.ok("query-qmp-schema")
    assert isinstance(schema, list)
    ref = next(e["arg-type"] for e in schema
               if e["meta-type"] == "command" and e["name"] == "blockdev-add")
    add = next(e for e in schema if e["name"] == ref)
    driver_type = next(m["type"] for m in add["members"] if m["name"] == "driver")
    enum = next(e for e in schema if e["name"] == driver_type)
    return set(enum["values"])


def test_the_table_lists_every_driver_qemu_accepts_and_no_other(tmp_path: Path) -> None:
    offered = _qsd_blockdev_drivers(tmp_path)
    listed = {name for name, d in drivers.DRIVERS.items() if not d.internal}
    # QEMU offers the libblkio drivers only when built with libblkio (Debian's is not);
    # a remote QEMU may have them
    assert listed - offered == LIBBLKIO
    assert offered <= listed
    assert set(BLOCKDEV_DRIVERS) == listed
    internal = drivers.INTERNAL_DRIVERS
    assert internal == {"commit_top", "mirror_top"}


def test_filters_are_qemus_is_filter_drivers() -> None:
    # the drivers whose BlockDriver sets is_filter in QEMU 7.2's block/*.c
    filters = drivers.FILTER_DRIVERS
    assert filters == {
        "blkdebug", "blklogwrites", "blkreplay", "blkverify", "commit_top", "compress",
        "copy-before-write", "copy-on-read", "mirror_top", "preallocate", "replication",
        "throttle"}
    for name in drivers.FILTER_DRIVERS:
        assert drivers.filtered_role(name) is not None, name


def test_kinds_of_the_drivers_that_are_no_filters() -> None:
    assert drivers.driver("quorum").fans_out and not drivers.driver("quorum").holds_data
    assert not drivers.driver("snapshot-access").holds_data
    assert drivers.driver("nbd").is_protocol and drivers.driver("vvfat").is_protocol
    passing, backing = drivers.PASS_THROUGH_DRIVERS, drivers.BACKING_DRIVERS
    images = drivers.IMAGE_DRIVERS
    assert passing == drivers.FILTER_DRIVERS | {"quorum", "snapshot-access"}
    assert backing == {"qcow2", "qcow", "qed", "vmdk"}
    assert images >= backing | {"raw", "luks", "vdi"}
    assert not images & (drivers.PROTOCOL_DRIVERS | passing)
    # an unknown name is a format of its own data the engine cannot open
    assert drivers.driver("no-such-driver").is_image and not drivers.opens("no-such-driver")


def test_the_engines_image_drivers_are_the_formats_it_reads() -> None:
    engine_images = drivers.ENGINE_IMAGE_DRIVERS
    assert engine_images == set(FORMATS)
    assert all(drivers.opens(name) for name in engine_images)


@pytest.mark.parametrize("fmt", ["vvfat", "iscsi", "http", "io_uring", "no-such-format"])
def test_snapshot_to_a_driver_that_creates_no_image_fails_as_in_qemu(
        tmp_path: Path, fmt: str) -> None:
    """Built-in drivers are known formats that create no image; drivers of a module
    this QEMU has not loaded (qemu-block-extra, libblkio) are unknown formats."""
    create(tmp_path / "a.qcow2", "1M")
    add = {"driver": "qcow2", "node-name": "n",
           "file": {"driver": "file", "filename": str(tmp_path / "a.qcow2")}}
    args = {"node-name": "n", "snapshot-file": str(tmp_path / "s.img"),
            "snapshot-node-name": "s", "format": fmt}
    with started_peer("qsd", tmp_path) as qsd, Engine() as eng:
        qsd.ok("blockdev-add", add)
        eng.execute("blockdev-add", add)
        expected = qsd.execute("blockdev-snapshot-sync", args)["error"]
        with pytest.raises(QMPError) as got:
            eng.execute("blockdev-snapshot-sync", args)
    assert (got.value.error_class, got.value.desc) == (expected["class"], expected["desc"])
