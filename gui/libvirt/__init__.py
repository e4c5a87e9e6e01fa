"""libvirt's VMs as block-graph peers (asyncio; never imports Qt).

Most VMs live under libvirt: ``qemu:///system``, ``qemu:///session``, remote
``qemu+ssh://HOST/system``. There QEMU's monitor belongs to libvirtd, so blockgraph
reads each domain's graph through libvirt's QMP passthrough and edits it through
libvirt's own APIs, so that libvirt's view (its domain XML, ``virsh domblklist``,
``virsh snapshot-list``) stays true.

    from gui.libvirt import LibvirtHost, DomainEditor

    async with LibvirtHost("qemu:///system") as host:
        await host.domains()                     # [DomainInfo(name, uuid, state, persistent)]
        session = host.session("vm1")           # a gui.session.Session: same API as any peer
        await session.connect()                  # graph read by passthrough, live by events
        editor = DomainEditor(host, "vm1", session)
        plan = await editor.plan(Commit("vda's top node"))   # gui.planner.intents
        plan.as_virsh()                          # what virsh would run
        report = await editor.run(plan)          # libvirt's APIs; waits for libvirt's job events

Modules: :mod:`~gui.libvirt.runtime` (the libvirt thread: libvirtaio's loop, every
call), :mod:`~gui.libvirt.host` (a connection, its domains and events, a session per
domain), :mod:`~gui.libvirt.bridge` (a domain as a QMP endpoint),
:mod:`~gui.libvirt.edits` (intent -> libvirt calls, pure), :mod:`~gui.libvirt.editor`
(runs those plans), :mod:`~gui.libvirt.errors`.

The binding is libvirt-python from PyPI (``pip install blockgraph[libvirt]``, built
against the system's libvirt: Debian's ``libvirt-dev`` and ``pkg-config``); importing
this package without it raises ImportError, so callers import it lazily.
"""

from gui.libvirt.errors import LibvirtError, NoLibvirtApi, NotLibvirtShaped
from gui.libvirt.host import (
    BlockJobEvent,
    DomainEvent,
    DomainInfo,
    DomainState,
    LibvirtHost,
    domain_address,
    is_libvirt_uri,
    split_domain_address,
)

__all__ = [
    "BlockJobEvent", "DomainEvent", "DomainInfo", "DomainState", "LibvirtError", "LibvirtHost",
    "NoLibvirtApi", "NotLibvirtShaped", "domain_address", "is_libvirt_uri",
    "split_domain_address",
]
