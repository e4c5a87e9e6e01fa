"""The editor-memory benchmark measures the editor, not the process that started it.

Linux carries a parent's peak RSS across fork+exec into the child's ``ru_maxrss``: run
after the other benchmarks, the 5,000-node editor reported the bench runner's ~800 MiB.
"""

from __future__ import annotations

from tests.bench.bench_scene import child_peak_memory_mib


def test_child_peak_memory_is_not_the_parents() -> None:
    ballast = bytearray(400 * 1024 * 1024)  # the parent's peak: 400 MiB resident
    ballast[::4096] = b"x" * len(ballast[::4096])
    small = child_peak_memory_mib("x = 1\n")
    assert small < 100
    big = child_peak_memory_mib("b = bytearray(150 * 1024 * 1024)\n"
                                "b[::4096] = b'x' * len(b[::4096])\n")
    assert 150 <= big < 300
    del ballast
