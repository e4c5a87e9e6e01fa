"""The VMs window: every domain of one or more libvirt connections at once.

A VM list beside the canvas (:mod:`~gui.vms.vm_list`: one group per connection, a row
per domain with its state and jobs, a check box to show or hide it), each VM's graph in
its own labelled frame or tab (:mod:`~gui.vms.vm_frames`), and a Connect dialog that
lists what this host offers (:mod:`~gui.vms.discover_dialog`). The window
(:mod:`~gui.vms.window`) keeps all of it live from libvirt's events through
:class:`gui.libvirt.watch.HostWatch` — nothing polls while nothing changes.
"""
