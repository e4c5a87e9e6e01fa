"""File names that open a debugging filter over host files, as QEMU parses them.

``blkdebug:[CONFIG]:IMAGE`` opens a ``blkdebug`` node (rules from CONFIG, if given)
over the host file IMAGE; ``blkverify:RAW:TEST`` a ``blkverify`` node comparing the
host files RAW and TEST. Such names appear in ``-drive file=`` and in image headers
as backing file names. Only one level: the files below are plain host files.
"""

from __future__ import annotations

from typing import Any

PREFIXES = ("blkdebug:", "blkverify:")


class FilterNameError(ValueError):
    """A name QEMU refuses; the text is QEMU's."""


def filter_filename_options(name: str) -> dict[str, Any] | None:
    """The node options ``name`` stands for, or None when it names no such filter."""
    if name.startswith("blkdebug:"):
        config, sep, image = name[len("blkdebug:"):].partition(":")
        if not sep:
            raise FilterNameError("blkdebug requires both config file and image path")
        options: dict[str, Any] = {"driver": "blkdebug"}
        if config:
            options["config"] = config
        options["image"] = {"driver": "file", "filename": image}
        return options
    if name.startswith("blkverify:"):
        raw, sep, test = name[len("blkverify:"):].partition(":")
        if not sep:
            raise FilterNameError("blkverify requires raw copy and original image path")
        return {"driver": "blkverify", "raw": {"driver": "file", "filename": raw},
                "test": {"driver": "file", "filename": test}}
    return None
