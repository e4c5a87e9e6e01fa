"""Random sequences of ``qemu-io`` writes, zero writes and discards on qcow2 images,
engine against QEMU 7.2: after every sequence both images have the same allocation
(``qemu-img map``, host offsets included), the same ``qemu-img check`` counts and the
same guest content.

Cluster sizes from 512 bytes to 64 KiB, with and without a backing file (whose
clusters are 64 KiB, so partial clusters of the overlay meet data, zeros and nothing
below, and past its end), image sizes that end inside a cluster, requests at any
byte. One QEMU and one engine serve every example (each example has its own images
and directory); the examples are derandomized and bounded so the suite stays deterministic and fast.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.differential.qemu_io_diff import (
    assert_same_image,
    engine_machine_peer,
    run_on,
    top_options,
)
from tests.support.differential import QemuSystemPeer
from tests.support.qemu import create, qemu_io

pytestmark = pytest.mark.qemu

BASE_CLUSTER = 65536


@st.composite
def scenarios(draw: Any) -> dict[str, Any]:
    cluster = 1 << draw(st.integers(9, 16))
    clusters = draw(st.integers(2, 12))
    size = cluster * clusters - draw(st.sampled_from([0, 0, 512, cluster // 2]))
    size = max(size, 512)
    backing = draw(st.booleans())
    v2 = draw(st.integers(0, 4)) == 0

    def request() -> st.SearchStrategy[str]:
        def build(kind: str, offset: int, length: int, pattern: int) -> str:
            length = max(1, min(length, size - offset))
            return kind.format(offset=offset, length=length, pattern=pattern)

        aligned = st.integers(0, size // 512 - 1).map(lambda s: s * 512)
        offsets = st.one_of(aligned, st.integers(0, size - 1))
        lengths = st.one_of(st.integers(1, 3 * cluster),
                            st.integers(1, 6).map(lambda s: s * cluster // 2))
        kinds = st.sampled_from([
            "write -q -P {pattern} {offset} {length}",
            "write -q -P 0 {offset} {length}",
            "write -q -z {offset} {length}",
            "write -q -z -u {offset} {length}",
            "discard -q {offset} {length}",
        ])
        return st.builds(build, kinds, offsets, lengths, st.integers(1, 255))

    commands = draw(st.lists(request(), min_size=1, max_size=8))
    return {"cluster": cluster, "size": size, "backing": backing, "v2": v2,
            "commands": commands}


def _setup(d: Path, scenario: dict[str, Any]) -> None:
    compat = "compat=0.10," if scenario["v2"] else ""
    options = f"{compat}cluster_size={scenario['cluster']}"
    if scenario["backing"]:
        create(d / "base.qcow2", "192k", options=f"{compat}cluster_size=65536")
        qemu_io(d / "base.qcow2", "write -q -P 0x5a 0 4k", "write -q -z 64k 64k",
                "write -q -P 0x5b 132k 8k")
        create(d / "top.qcow2", scenario["size"], backing="base.qcow2", options=options)
    else:
        create(d / "top.qcow2", scenario["size"], options=options)


@pytest.fixture(scope="module")
def peers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, Path]]:
    root = tmp_path_factory.mktemp("sequences")
    qemu = QemuSystemPeer(root)
    engine = engine_machine_peer()
    try:
        yield engine, qemu, root
    finally:
        engine.close()
        qemu.stop()


_counter = itertools.count()


@settings(max_examples=25, derandomize=True, deadline=None, database=None,
          phases=[Phase.explicit, Phase.generate], report_multiple_bugs=False,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(scenario=scenarios())
def test_random_write_sequences_match_qemu(peers: tuple[Any, Any, Path],
                                           scenario: dict[str, Any]) -> None:
    engine, qemu, root = peers
    example = root / f"example{next(_counter)}"
    dirs = {"engine": example / "engine", "qemu": example / "qemu"}
    for d in dirs.values():
        d.mkdir(parents=True)
        _setup(d, scenario)
    options = top_options(discard="unmap")
    answers = [run_on(peer, dirs[name], options, scenario["commands"])
               for name, peer in (("engine", engine), ("qemu", qemu))]
    assert answers[0] == answers[1]
    images = ["top.qcow2"] + (["base.qcow2"] if scenario["backing"] else [])
    for image in images:
        assert_same_image(dirs["engine"] / image, dirs["qemu"] / image,
                          [f"{scenario['cluster']}-byte clusters, size {scenario['size']}, "
                           f"{'v2' if scenario['v2'] else 'v3'}, "
                           f"{'backed' if scenario['backing'] else 'alone'}",
                           *scenario["commands"]])
