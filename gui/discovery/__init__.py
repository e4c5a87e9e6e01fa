"""What this host offers to connect to (Qt-free): ``blockgraph --list`` and, later, the
Connect dialog.

    from gui.discovery import discover
    for offer in discover():                  # libvirt URIs and domains, QMP sockets
        print(offer.address, offer.description)

:mod:`gui.discovery.sockets` finds QMP monitors — Proxmox's ``/var/run/qemu-server/*.qmp``
and every socket named on a QEMU or qemu-storage-daemon command line in the process
list — and asks each for its greeting; :mod:`gui.discovery.libvirt_uris` lists the libvirt
connections this host has, with their domains.
"""

from gui.discovery.listing import Offer, discover, format_offers

__all__ = ["Offer", "discover", "format_offers"]
