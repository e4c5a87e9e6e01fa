"""The block graph model and the rules QEMU applies to it."""
