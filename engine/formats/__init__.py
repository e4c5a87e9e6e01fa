"""Image formats on real files: qcow2 (v2, v3) and raw.

The public face: ``open_image``, ``open_chain``, ``ChainReader``,
``allocation_map``, ``create_qcow2``, ``create_raw`` and the :class:`Image` API;
errors come from :mod:`engine.formats.errors`.
"""

from engine.formats.chain import (
    ChainReader,
    allocation_map,
    close_chain,
    full_backing_filename,
    open_chain,
    open_image,
)
from engine.formats.create import create_qcow2, create_raw
from engine.formats.image import Extent, Image

__all__ = [
    "ChainReader",
    "Extent",
    "Image",
    "allocation_map",
    "close_chain",
    "create_qcow2",
    "create_raw",
    "full_backing_filename",
    "open_chain",
    "open_image",
]
