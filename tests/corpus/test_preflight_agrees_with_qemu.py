"""Preflight's verdict equals what QEMU 7.2 does, on every edit of every corpus graph.

Each graph of :mod:`tests.corpus.graphs` is made by real QEMU (qemu-storage-daemon or
``qemu-system-x86_64 -M q35 -nodefaults -S``). For every node, every edit the editor
offers on it is planned as ``blockgraph plan`` plans it and judged by preflight; then the
plan is sent to QEMU (unchecked) and QEMU's outcome recorded: accepted, or refused with
its error text. The two must be equal — text for text — and an accepted plan must leave
the graph its promise describes. After an edit that changed anything the graph is
started again from its pristine images, so every edit meets the same graph.

An error text that names a node QEMU has just created and named at random
(``#block123`` of a job's filter) is compared with that name as
:data:`engine.graph.rules.NEW_AUTO_NAME`: no one can know it in advance.

What QEMU's queries do not show is not in the corpus: whether a *named* node was
created inside another's options (``file.node-name=``) — which decides between "not
owned by the monitor" and "in use" when it is deleted — is known only to the client that
created it (the editor's session remembers it). The corpus's named nodes are all added
on their own, as libvirt adds them.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.graph import perms as P
from engine.graph import rules
from tests.corpus.graphs import CORPUS, CorpusGraph
from tests.corpus.harness import GraphRun, edits_on

pytestmark = pytest.mark.qemu

#: totals over the whole corpus, printed at the end of the module
TOTALS: collections.Counter[str] = collections.Counter()


@pytest.fixture(scope="module", autouse=True)
def report_counts(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if TOTALS["graphs"]:
        with capture.global_and_fixture_disabled():
            print(f"\npreflight agrees with QEMU 7.2 on {TOTALS['agree']} of {TOTALS['edits']} "
                  f"edits ({TOTALS['accepted']} accepted, {TOTALS['refused']} refused) over "
                  f"{TOTALS['nodes']} nodes of {TOTALS['graphs']} graphs; "
                  f"{TOTALS['starts']} QEMU starts")


@pytest.mark.parametrize("spec", CORPUS, ids=lambda g: g.name)
def test_every_edit_is_judged_as_qemu_judges_it(spec: CorpusGraph, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    run = GraphRun(spec, tmp_path)
    try:
        graph = run.start()
        edits = list(edits_on(graph, run.devices, spec.media))
        outcomes = [run.check(edit) for edit in edits]
    finally:
        run.stop()
    disagree = [o for o in outcomes if not o.agrees]
    accepted = sum(o.qemu == "accepted" for o in outcomes)
    nodes = len(graph.block_nodes())
    with capsys.disabled():
        print(f"\n{spec.name}: {nodes} nodes, {len(run.devices)} devices, {len(edits)} edits "
              f"({accepted} accepted, {len(edits) - accepted} refused), "
              f"{len(edits) - len(disagree)} agree, {run.starts} QEMU starts")
    TOTALS.update(graphs=1, nodes=nodes, edits=len(edits), accepted=accepted,
                  refused=len(edits) - accepted, starts=run.starts,
                  agree=len(edits) - len(disagree))
    assert accepted and len(edits) - accepted, "the graph must both accept and refuse"
    assert not disagree, "\n".join(
        f"{o.edit}: preflight {o.preflight!r}, QEMU {o.qemu!r}"
        + (f", graph after: {list(o.mismatches)}" if o.mismatches else "")
        for o in disagree)


@pytest.mark.parametrize("spec", CORPUS, ids=lambda g: g.name)
def test_the_permission_model_gives_every_link_qemus_permissions(spec: CorpusGraph,
                                                                 tmp_path: Path) -> None:
    """What preflight computes a link takes and shares is what QEMU reports for it."""
    run = GraphRun(spec, tmp_path)
    try:
        graph = run.start()
    finally:
        run.stop()
    sim = rules.PermissionSim(graph)
    wrong = []
    for node in graph.block_nodes():
        perm, shared = sim.cumulative(node.key)
        for e in graph.children(node.key):
            got = rules.child_link_perms(node, e.role, writable=not node.read_only,
                                         parent_perm=perm, parent_shared=shared)
            want = (rules.perm_bits(e.perm), rules.perm_bits(e.shared_perm))
            if got != want:
                wrong.append(f"{e.parent} -{e.role}-> {e.child}: {P.qmp_names(got[0])} / "
                             f"{P.qmp_names(got[1])}, QEMU {e.perm} / {e.shared_perm}")
    assert graph.edges and not wrong, wrong
