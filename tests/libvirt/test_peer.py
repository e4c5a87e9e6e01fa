"""libvirt as a peer: domains listed, each domain's graph read through libvirt's QMP
passthrough into an ordinary session, kept live by the events libvirt relays."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Callable

import pytest

from engine.graph.snapshot import GraphSnapshot
from gui.libvirt import DomainState, LibvirtHost
from gui.libvirt.bridge import refusal_text
from gui.session import CommandFailed, ConnectFailed, ConnectionStatus, Session
from tests.libvirt.conftest import Domain, remove_domain, start_domain


def passthrough(domain: Domain, command: str, arguments: dict | None = None) -> object:
    """What ``virsh qemu-monitor-command`` returns (the reference for the session)."""
    msg: dict = {"execute": command}
    if arguments is not None:
        msg["arguments"] = arguments
    return json.loads(domain.virsh("qemu-monitor-command", domain.name, json.dumps(msg)))["return"]


def vda_chain(graph: GraphSnapshot) -> list[str]:
    """Filenames of the virtio disk's chain, top first, read off the graph."""
    backend = next(k for k in graph.nodes if k.startswith("backend:") and "virtio" in k)
    node = graph.child(backend, "root")
    chain = []
    while node is not None:
        file_child = graph.child(node, "file")
        chain.append(graph.nodes[file_child].filename if file_child else graph.nodes[node].filename)
        node = graph.backing(node)
    return chain


async def wait_for(condition: Callable[[], bool], changed: asyncio.Event,
                   timeout: float = 30) -> None:
    """Wait until ``condition()`` holds, re-checking whenever ``changed`` fires."""
    async with asyncio.timeout(timeout):
        while not condition():
            changed.clear()
            await changed.wait()


async def test_the_test_driver_lists_its_domain_and_relays_lifecycle_events() -> None:
    async with LibvirtHost("test:///default") as host:
        (info,) = await host.domains()
        assert (info.name, info.state, info.running) == ("test", DomainState.RUNNING, True)
        seen: list[tuple[str, str]] = []
        arrived = asyncio.Event()
        host.on_domain_event(lambda e: (seen.append((e.domain, e.kind)), arrived.set()))
        dom = await host.lookup("test")
        await host.call(dom.suspend)
        await wait_for(lambda: ("test", "suspended") in seen, arrived)
        assert (await host.domains())[0].state is DomainState.PAUSED
        await host.call(dom.resume)
        await wait_for(lambda: ("test", "resumed") in seen, arrived)


async def test_a_driver_without_qmp_fails_to_connect_in_libvirts_words() -> None:
    async with LibvirtHost("test:///default") as host:
        session = host.session("test", auto_reconnect=False)
        with pytest.raises(ConnectFailed, match="not supported"):
            await session.connect()
        await session.close()


async def test_running_and_stopped_domains_are_listed(domain: Domain, tmp_path) -> None:
    xml = domain.dir / "domain.xml"
    stopped = xml.read_text().replace(f"<name>{domain.name}</name>", "<name>bg-stopped</name>")
    (tmp_path / "stopped.xml").write_text(stopped)
    domain.virsh("define", str(tmp_path / "stopped.xml"))
    try:
        async with LibvirtHost(domain.uri) as host:
            listed = {d.name: d for d in await host.domains()}
        assert listed[domain.name].state is DomainState.RUNNING
        assert listed["bg-stopped"].state is DomainState.SHUT_OFF
        assert not listed["bg-stopped"].running and listed["bg-stopped"].persistent
    finally:
        domain.virsh("undefine", "bg-stopped")


async def test_the_session_reads_what_passthrough_answers(domain: Domain) -> None:
    async with LibvirtHost(domain.uri) as host:
        session = host.session(domain.name, auto_reconnect=False)
        graph = await session.connect()
        try:
            expected = GraphSnapshot.from_qmp(
                passthrough(domain, "x-debug-query-block-graph"),
                passthrough(domain, "query-named-block-nodes", {"flat": True}))
            assert graph == expected
            assert vda_chain(graph) == [str(domain.dir / "top.qcow2"),
                                        str(domain.dir / "base.qcow2")]
            assert "backend:sata0-0-0" in graph.nodes
            assert session.state.address == f"{domain.uri}#{domain.name}"
            assert session.capabilities is not None and session.capabilities.version[0] >= 7
        finally:
            await session.close()


async def test_changes_made_by_others_arrive_by_events_not_polling(domain: Domain) -> None:
    async with LibvirtHost(domain.uri) as host:
        session = host.session(domain.name, auto_reconnect=False)
        assert session.poll_interval is None
        await session.connect()
        changed = asyncio.Event()
        session.on_graph_changed(lambda g: changed.set())
        before = vda_chain(session.snapshot)
        overlay = domain.dir / "others.qcow2"
        try:
            domain.virsh("snapshot-create-as", domain.name, "others", "--disk-only",
                         "--no-metadata", "--diskspec", f"vda,file={overlay}",
                         "--diskspec", "sda,snapshot=no")
            await wait_for(lambda: vda_chain(session.snapshot) == [str(overlay), *before],
                           changed)
            domain.virsh("blockcommit", domain.name, "vda", "--active", "--shallow",
                         "--pivot", "--wait")
            await wait_for(lambda: vda_chain(session.snapshot) == before, changed)
            # the nodes libvirt deleted after the pivot are gone from the session's graph too
            reference = GraphSnapshot.from_qmp(
                passthrough(domain, "x-debug-query-block-graph"),
                passthrough(domain, "query-named-block-nodes", {"flat": True}))
            await wait_for(lambda: set(session.snapshot.nodes) == set(reference.nodes), changed)
            # every read of the graph followed an event: nothing was polled
            entries = [e for e in session.traffic if e.background or e.kind == "event"]
            reads = [i for i, e in enumerate(entries) if e.direction == "sent"
                     and e.message.get("execute") == "x-debug-query-block-graph"]
            for prev, cur in itertools.pairwise(reads):
                between = entries[prev + 1:cur]
                assert any(e.kind == "event" for e in between), \
                    "a graph read that no event asked for"
        finally:
            await session.close()


async def test_changing_commands_are_refused_unless_the_gate_is_opened(domain: Domain) -> None:
    async with LibvirtHost(domain.uri) as host:
        session = host.session(domain.name, auto_reconnect=False)
        await session.connect()
        try:
            with pytest.raises(CommandFailed) as refused:
                await session.execute("blockdev-del", {"node-name": "nothing-here"})
            assert str(refused.value) == refusal_text("blockdev-del")
            with host.gate.allow("blockdev-del"), pytest.raises(CommandFailed) as qemu:
                await session.execute("blockdev-del", {"node-name": "nothing-here"})
            assert str(qemu.value) == "Failed to find node with node-name='nothing-here'"
            assert not host.gate.permits("blockdev-del")
        finally:
            await session.close()


async def test_a_stopped_domain_drops_its_session_and_says_why_it_cannot_reconnect(
        libvirtd, tmp_path) -> None:
    other = start_domain(libvirtd, "bg-stops", tmp_path / "stops")
    try:
        async with LibvirtHost(libvirtd.uri) as host:
            session = host.session(other.name, auto_reconnect=False)
            await session.connect()
            lost = asyncio.Event()
            session.on_connection_state(
                lambda s: lost.set() if s.status is ConnectionStatus.LOST else None)
            other.virsh("destroy", other.name)
            async with asyncio.timeout(30):
                await lost.wait()
            with pytest.raises(ConnectFailed, match="domain 'bg-stops' is not running"):
                await session.connect()
            await session.close()
    finally:
        remove_domain(other)
    assert isinstance(session, Session)
