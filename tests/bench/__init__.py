"""Benchmarks: each module ``bench_*.py`` has ``run(report)`` and measures blockgraph
beside its anchor (qemu-img, qemu-storage-daemon, Graphviz ``dot``) in the same run.

Run them all with ``scripts/bench`` (or ``python -m tests.bench [NAME ...]``).
"""
