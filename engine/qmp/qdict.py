"""QEMU's QDict member order for the QMP layer (the implementation: :mod:`engine.qdict`)."""

from engine.qdict import QEMUOrdered, ghash_order, qdict_bucket, qdict_order, qdict_sorted

__all__ = ["QEMUOrdered", "ghash_order", "qdict_bucket", "qdict_order", "qdict_sorted"]
