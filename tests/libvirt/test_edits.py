"""Edits of a running libvirt domain through libvirt's own APIs, checked with virsh
(``domblklist``, ``snapshot-list``, ``dumpxml``): libvirt's view must stay true.

One domain serves the module; each test reads the chain it starts from and leaves one
that the others can start from too (vda always has an active layer over a backing).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from gui.libvirt import LibvirtError, LibvirtHost, NoLibvirtApi, NotLibvirtShaped
from gui.libvirt.editor import ConfirmationRequired, DomainEditor
from gui.libvirt.edits import (
    PASSTHROUGH_WARNING,
    AbortJob,
    BlockCopy,
    LibvirtPlan,
    PivotJob,
    WaitBlockJob,
    disk_chain_nodes,
    locate,
    resolve_name,
)
from gui.planner.intents import (
    AddImage,
    ChangeMedium,
    Commit,
    Delete,
    ExternalSnapshot,
    SetBacking,
    Stream,
)
from tests.libvirt.conftest import Domain, remove_domain, start_domain
from tests.support.libvirtd import LibvirtDaemon
from tests.support.qemu import create


@pytest.fixture
async def editor(domain: Domain) -> AsyncIterator[DomainEditor]:
    async with LibvirtHost(domain.uri) as host:
        session = host.session(domain.name, auto_reconnect=False)
        await session.connect()
        ed = DomainEditor(host, domain.name, session, job_timeout=120)
        try:
            yield ed
        finally:
            ed.close()
            await session.close()


async def vda(editor: DomainEditor) -> list[str]:
    """vda's chain, top first, as node keys of the current graph."""
    ctx = await editor.context()
    return disk_chain_nodes(ctx.graph, ctx.description.disk("vda"))


async def vda_paths(editor: DomainEditor) -> list[str]:
    ctx = await editor.context()
    return [layer.path for layer in ctx.description.disk("vda").chain]


async def snapshot(editor: DomainEditor, domain: Domain, name: str) -> Path:
    top = (await vda(editor))[0]
    path = domain.dir / f"{name}.qcow2"
    report = await editor.run(await editor.plan(ExternalSnapshot(top, name, str(path))))
    assert report.as_expected, report.mismatches
    return path


def snapshot_names(domain: Domain) -> list[str]:
    return domain.virsh("snapshot-list", domain.name, "--name").split()


async def test_external_snapshot_shows_in_domblklist_and_snapshot_list(
        editor: DomainEditor, domain: Domain) -> None:
    before = await vda_paths(editor)
    plan = await editor.plan(ExternalSnapshot((await vda(editor))[0], "snap-a",
                                              str(domain.dir / "snap-a.qcow2")))
    assert plan.ok and plan.as_virsh().startswith(f"virsh snapshot-create-as {domain.name} "
                                                  "snap-a --disk-only --atomic")
    report = await editor.run(plan)
    assert report.as_expected, report.mismatches
    assert domain.blklist()["vda"] == str(domain.dir / "snap-a.qcow2")
    assert domain.blklist()["sda"] == str(domain.dir / "cd1.iso")      # snapshot='no'
    assert "snap-a" in snapshot_names(domain)
    assert await vda_paths(editor) == [str(domain.dir / "snap-a.qcow2"), *before]


async def test_active_commit_pivots_back_to_the_base_chosen(
        editor: DomainEditor, domain: Domain) -> None:
    before = await vda_paths(editor)
    await snapshot(editor, domain, "snap-b")
    overlay, old_top = (await vda(editor))[:2]
    plan = await editor.plan(Commit(overlay, old_top))
    assert "--active" in plan.as_virsh() and "--pivot" in plan.as_virsh()
    report = await editor.run(plan)
    assert report.as_expected, report.mismatches
    assert domain.blklist()["vda"] == before[0]
    assert await vda_paths(editor) == before


async def test_intermediate_commit_drops_the_layer_from_libvirts_chain(
        editor: DomainEditor, domain: Domain) -> None:
    before = await vda_paths(editor)
    await snapshot(editor, domain, "snap-c")
    await snapshot(editor, domain, "snap-d")
    nodes = await vda(editor)
    plan = await editor.plan(Commit(nodes[1], nodes[2]))      # snap-c into the old top
    assert "--top vda[" in plan.as_virsh()
    report = await editor.run(plan)
    assert report.as_expected, report.mismatches
    assert await vda_paths(editor) == [str(domain.dir / "snap-d.qcow2"), *before]
    assert domain.blklist()["vda"] == str(domain.dir / "snap-d.qcow2")


async def test_stream_pulls_the_chain_into_the_active_layer(
        editor: DomainEditor, domain: Domain) -> None:
    old = await vda_paths(editor)
    assert len(old) >= 2
    overlay = await snapshot(editor, domain, "snap-e")
    nodes = await vda(editor)
    report = await editor.run(await editor.plan(Stream(nodes[0], nodes[-1])))
    assert report.as_expected, report.mismatches
    assert await vda_paths(editor) == [str(overlay), old[-1]]
    assert domain.blklist()["vda"] == str(overlay)


async def test_stream_into_a_lower_layer_is_refused_with_the_reason(
        editor: DomainEditor, domain: Domain) -> None:
    await snapshot(editor, domain, "snap-g")
    nodes = await vda(editor)
    plan = await editor.plan(Stream(nodes[1]))
    assert not plan.ok and not plan.steps
    assert isinstance(plan.refusals[0], NotLibvirtShaped)
    assert "libvirt streams into a disk's active layer only" in str(plan.refusals[0])


async def test_media_change_and_eject_show_in_domblklist(
        editor: DomainEditor, domain: Domain) -> None:
    cd2 = str(domain.dir / "cd2.iso")
    report = await editor.run(await editor.plan(ChangeMedium("sda", cd2)))
    assert report.as_expected, report.mismatches
    assert domain.blklist()["sda"] == cd2
    report = await editor.run(await editor.plan(ChangeMedium("sata0-0-0", None)))
    assert report.as_expected, report.mismatches
    assert domain.blklist()["sda"] == "-"
    await editor.run(await editor.plan(ChangeMedium("sda", str(domain.dir / "cd1.iso"))))
    assert domain.blklist()["sda"] == str(domain.dir / "cd1.iso")
    plan = await editor.plan(ChangeMedium("vda", cd2))
    assert not plan.ok and "not a removable drive" in str(plan.refusals[0])


async def test_block_copy_pivots_to_the_copy(editor: DomainEditor, domain: Domain) -> None:
    old = await vda_paths(editor)
    target = domain.dir / "copy.qcow2"
    report = await editor.run(await editor.plan(
        BlockCopy((await vda(editor))[0], str(target), shallow=True)))
    assert report.as_expected, report.mismatches
    assert domain.blklist()["vda"] == str(target)
    assert await vda_paths(editor) == [str(target), *old[1:]]


async def wait_for_job(editor: DomainEditor) -> str:
    """The id of the job the graph shows, once it shows one (the session reads it on events)."""
    changed = asyncio.Event()
    unsubscribe = editor.session.on_graph_changed(lambda g: changed.set())
    try:
        async with asyncio.timeout(60):
            while True:
                jobs = [k for k in editor.session.snapshot.nodes if k.startswith("job:")]
                if jobs:
                    return jobs[0]
                changed.clear()
                await changed.wait()
    finally:
        unsubscribe()


async def test_a_ready_job_is_aborted_or_pivoted(editor: DomainEditor, domain: Domain) -> None:
    before = await vda_paths(editor)
    overlay = await snapshot(editor, domain, "snap-f")
    domain.virsh("blockcommit", domain.name, "vda", "--active", "--shallow")
    job = await wait_for_job(editor)
    plan = await editor.plan(AbortJob(job))
    assert plan.as_virsh() == f"virsh blockjob {domain.name} vda --abort\n" \
        "# wait for the block job on vda to become canceled/completed"
    await editor.run(plan)
    assert await vda_paths(editor) == [str(overlay), *before]
    domain.virsh("blockcommit", domain.name, "vda", "--active", "--shallow")
    job = await wait_for_job(editor)
    report = await editor.run(await editor.plan(PivotJob(job)))
    assert report.snapshot is not None
    assert await vda_paths(editor) == before
    assert domain.blklist()["vda"] == before[0]


async def test_libvirts_refusal_is_shown_in_libvirts_words(
        editor: DomainEditor, domain: Domain) -> None:
    existing = create(domain.dir / "exists.qcow2", "1M")
    plan = await editor.plan(ExternalSnapshot((await vda(editor))[0], "snap-x", str(existing)))
    with pytest.raises(LibvirtError) as err:
        await editor.run(plan)
    virsh = domain.daemon.virsh("snapshot-create-as", domain.name, "snap-x", "--disk-only",
                                "--atomic", "--diskspec", f"vda,snapshot=external,file={existing}",
                                "--diskspec", "sda,snapshot=no", check=False)
    assert virsh.returncode != 0
    assert virsh.stderr.strip() == f"error: {err.value}"
    assert "snap-x" not in snapshot_names(domain)


async def test_edits_without_a_libvirt_api_are_refused_or_confirmed(
        editor: DomainEditor, domain: Domain) -> None:
    nodes = await vda(editor)
    refused = await editor.plan(SetBacking(nodes[0], nodes[-1]))
    assert not refused.ok and refused.passthrough_possible
    assert isinstance(refused.refusals[0], NoLibvirtApi)
    owned = await editor.plan(Delete(nodes[-1]), allow_passthrough=True)
    assert not owned.ok and not owned.passthrough_possible
    assert "libvirt owns" in str(owned.refusals[0])
    # a node of our own: opened and deleted through passthrough, only once confirmed
    extra = create(domain.dir / "extra.qcow2", "1M")
    plan = await editor.plan(AddImage("bg-extra", str(extra)), allow_passthrough=True)
    assert plan.ok and plan.confirmation == PASSTHROUGH_WARNING
    assert plan.as_virsh().startswith(f"virsh qemu-monitor-command {domain.name} "
                                      "'{\"execute\": \"blockdev-add\"")
    with pytest.raises(ConfirmationRequired):
        await editor.run(plan)
    report = await editor.run(plan, confirmed=True)
    assert report.as_expected and "bg-extra" in report.snapshot.nodes
    listed = json.loads(domain.virsh("qemu-monitor-command", domain.name,
                                     '{"execute":"query-named-block-nodes"}'))["return"]
    assert "bg-extra" in {n["node-name"] for n in listed}
    report = await editor.run(await editor.plan(Delete("bg-extra"), allow_passthrough=True),
                              confirmed=True)
    assert "bg-extra" not in report.snapshot.nodes
    assert not editor.host.gate.permits("blockdev-add")


async def test_disk_targets_name_nodes_as_virsh_users_know_them(editor: DomainEditor) -> None:
    ctx = await editor.context()
    nodes = disk_chain_nodes(ctx.graph, ctx.description.disk("vda"))
    assert resolve_name(ctx.graph, ctx.description, "vda") == nodes[0]
    places = locate(ctx.graph, ctx.description)
    bottom = places[nodes[-1]]
    assert resolve_name(ctx.graph, ctx.description, bottom.name) == nodes[-1]
    assert os.path.basename(bottom.layer.path) == "base.qcow2"
    assert places[resolve_name(ctx.graph, ctx.description, "sda")].disk.device == "cdrom"


async def test_a_wait_for_a_block_job_ends_when_the_domain_stops(
        libvirtd: LibvirtDaemon, tmp_path: Path) -> None:
    """No block-job event comes once QEMU is gone: the wait says so instead of hanging."""
    dom = start_domain(libvirtd, "bg-edits-stops", tmp_path / "stops")
    try:
        async with LibvirtHost(dom.uri) as host:
            session = host.session(dom.name, auto_reconnect=False)
            await session.connect()
            editor = DomainEditor(host, dom.name, session, job_timeout=600)
            plan = LibvirtPlan(None, dom.name, "wait for a job that never ends",
                               steps=(WaitBlockJob("vda"),))
            running = asyncio.ensure_future(editor.run(plan))
            await asyncio.sleep(0)                 # the run has begun: it waits from now on
            await asyncio.to_thread(dom.virsh, "destroy", dom.name)
            with pytest.raises(LibvirtError) as err:
                async with asyncio.timeout(120):
                    await running
            assert str(err.value) == \
                f"domain '{dom.name}' stopped while its block job on vda ran"
            editor.close()
            await session.close()
    finally:
        remove_domain(dom)
