"""Image formats on real files: qcow2 (v2, v3) and raw."""
