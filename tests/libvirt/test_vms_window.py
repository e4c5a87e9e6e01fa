"""The VMs window with real widgets: three running domains of a private libvirtd at once,
one with a block job, kept live by libvirt's events — and nothing polling while
nothing changes.

Every wait is for a condition the window shows (``qtbot.waitUntil`` with a deadline):
a status in the VM list, a file in a frame's graph.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from PySide6.QtCore import QSettings, QTimer

from gui.libvirt.host import domain_address
from gui.session import Session
from gui.vms.discover_dialog import DiscoverDialog
from gui.vms.socket_watch import GROUP
from gui.vms.vm_frames import TABS
from gui.vms.window import VmsWindow
from tests.libvirt.conftest import Domain, remove_domain, start_domain
from tests.support import qtloop
from tests.support.libvirtd import LibvirtDaemon
from tests.support.qemu import QemuStorageDaemon

NAMES = ("bg-vms-a", "bg-vms-b", "bg-vms-c")
WAIT = 60_000


@pytest.fixture(scope="module")
def three(libvirtd: LibvirtDaemon, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[list[Domain]]:
    domains: list[Domain] = []
    try:
        for name in NAMES:
            domains.append(start_domain(libvirtd, name, tmp_path_factory.mktemp(name)))
        yield domains
    finally:
        for dom in domains:
            remove_domain(dom)


@pytest.fixture
def loop(qapp: Any) -> Iterator[asyncio.AbstractEventLoop]:
    shared = qtloop.shared_loop(qapp)
    qtloop.activate(shared)
    try:
        yield shared
    finally:
        qtloop.deactivate(shared)


@pytest.fixture
def window(qtbot: Any, loop: asyncio.AbstractEventLoop, tmp_path: Path) -> Iterator[VmsWindow]:
    win = VmsWindow(QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat))
    win.show()
    yield win
    task = loop.create_task(win.close_connections())
    qtbot.waitUntil(task.done, timeout=WAIT)
    win.close()
    win.deleteLater()
    qtbot.wait(10)
    gc.collect()


def run(qtbot: Any, loop: asyncio.AbstractEventLoop, coro: Any) -> Any:
    task = loop.create_task(coro)
    qtbot.waitUntil(task.done, timeout=WAIT)
    return task.result()


def session_of(window: VmsWindow, domain: Domain) -> Session:
    return dict(window.sessions())[domain_address(domain.uri, domain.name)]


def files(window: VmsWindow, domain: Domain) -> set[str]:
    """Every file name in the domain's frame, as drawn."""
    snapshot = window.frames.frames[domain_address(domain.uri, domain.name)].snapshot
    return {n.filename for n in snapshot.nodes.values()} if snapshot is not None else set()


def status(window: VmsWindow, domain: Domain) -> str:
    return window.vm_list.status(domain_address(domain.uri, domain.name))


def polling(window: VmsWindow, *, but: str = "") -> list[str]:
    """Whatever would wake up without an event: a session's poll deadline (graph or job
    progress) — except session ``but``'s — or an active timer of the window."""
    out = [f"{address} polls (every {s.poll_interval or s.job_poll_interval} s)"
           for address, s in window.sessions() if s.poll_deadline is not None
           and address != but]
    out += [f"timer {t.objectName() or t} every {t.interval()} ms"
            for t in window.findChildren(QTimer) if t.isActive()]
    return out


def test_three_domains_at_once_one_with_a_job_live_by_events(
        qtbot: Any, loop: asyncio.AbstractEventLoop, window: VmsWindow,
        three: list[Domain]) -> None:
    a, b, c = three
    assert run(qtbot, loop, window.open_address(a.uri))
    # every domain: a row with its state, a frame with its graph, its own name on it
    for dom in three:
        address = domain_address(dom.uri, dom.name)
        qtbot.waitUntil(lambda d=dom: str(d.dir / "top.qcow2") in files(window, d),
                        timeout=WAIT)
        assert status(window, dom) == "running"
        assert window.frames.frames[address].title() == f"{dom.name} — running"
        assert window.vm_list.rows[address].parent() is window.vm_list.groups[a.uri]
    assert {f.name for f in window.frames.shown()} >= set(NAMES)
    assert not polling(window), polling(window)

    # a job on a: an active commit waits, ready, for its pivot — the list says so
    a.virsh("blockcommit", a.name, "vda", "--active", "--shallow")
    qtbot.waitUntil(lambda: "commit ready" in status(window, a), timeout=WAIT)
    qtbot.waitUntil(lambda: any(k.startswith("job:") for k in window.frames.frames[
        domain_address(a.uri, a.name)].snapshot.nodes), timeout=WAIT)      # drawn too
    assert status(window, b) == status(window, c) == "running"
    # a's job is ready: nothing polls it, and b and c wait for events
    a_address = domain_address(a.uri, a.name)
    assert not polling(window, but=a_address), polling(window, but=a_address)

    # b changes (a media change through virsh): b's session reads it on QEMU's events
    sent: dict[str, list[str]] = {}
    unsubscribe = [s.on_traffic(lambda e, addr=addr: e.direction == "sent" and sent.setdefault(
        addr, []).append(str(e.message.get("execute")))) for addr, s in window.sessions()]
    cd2 = str(b.dir / "cd2.iso")
    b.virsh("change-media", b.name, "sda", cd2, "--update", "--live")
    qtbot.waitUntil(lambda: cd2 in files(window, b), timeout=WAIT)
    for off in unsubscribe:
        off()
    assert domain_address(c.uri, c.name) not in sent, sent
    assert "x-debug-query-block-graph" in sent[domain_address(b.uri, b.name)]
    # a reads no graph for b's change; its own job's events can still come in meanwhile
    # (BLOCK_JOB_READY a moment after the status change the list showed), and each asks
    # for a job read: query-jobs and query-block-jobs, nothing more
    assert set(sent.get(a_address, [])) <= {"query-jobs", "query-block-jobs"}, sent
    assert not polling(window, but=a_address), polling(window, but=a_address)

    # the job ends (aborted through virsh): a's row and frame follow
    ended: list[str] = []
    stop_watching = session_of(window, a).on_event(
        lambda e: e.get("event") == "JOB_STATUS_CHANGE" and e["data"]["status"] == "null"
        and ended.append(e["data"]["id"]))
    a.virsh("blockjob", a.name, "vda", "--abort")
    qtbot.waitUntil(lambda: status(window, a) == "running", timeout=WAIT)
    qtbot.waitUntil(lambda: not any(k.startswith("job:") for k in window.frames.frames[
        a_address].snapshot.nodes), timeout=WAIT)
    # no job, no change: nothing of the window wakes up without an event
    qtbot.waitUntil(lambda: not session_of(window, a).jobs, timeout=WAIT)
    # the job's last event (status null: libvirt dismisses it) may come after the graph
    # already showed it gone; the read it asks for is a's last before the window is quiet
    qtbot.waitUntil(lambda: bool(ended) and not session_of(window, a).reading, timeout=WAIT)
    stop_watching()
    qtbot.waitUntil(lambda: not polling(window), timeout=WAIT)

    # lifecycle events: c paused and resumed, as the list shows; a and b stay silent
    sent.clear()
    unsubscribe = [s.on_traffic(lambda e, addr=addr: e.direction == "sent" and sent.setdefault(
        addr, []).append(str(e.message.get("execute")))) for addr, s in window.sessions()]
    c.virsh("suspend", c.name)
    qtbot.waitUntil(lambda: status(window, c) == "paused", timeout=WAIT)
    c.virsh("resume", c.name)
    qtbot.waitUntil(lambda: status(window, c) == "running", timeout=WAIT)
    for off in unsubscribe:
        off()
    assert not {a_address, domain_address(b.uri, b.name)} & set(sent), sent
    assert not polling(window), polling(window)


def test_show_hide_focus_tabs_and_a_stopped_domain(
        qtbot: Any, loop: asyncio.AbstractEventLoop, window: VmsWindow,
        three: list[Domain]) -> None:
    a, b, c = three
    assert run(qtbot, loop, window.open_address(f"{a.uri}#{b.name}"))
    addr = {d.name: domain_address(d.uri, d.name) for d in three}
    for dom in three:
        qtbot.waitUntil(lambda d=dom: bool(files(window, d)), timeout=WAIT)
    window.vm_list.set_shown(addr[b.name], False)          # the check box, as a click does
    assert addr[b.name] not in {f.address for f in window.frames.shown()}
    assert window.frames.frames[addr[b.name]].parent() is None
    window.set_mode(TABS)
    titles = [window.frames.tabs.tabText(i) for i in range(window.frames.tabs.count())]
    assert b.name not in titles and {a.name, c.name} <= set(titles)
    window.vm_list.focusRequested.emit(addr[b.name])        # focusing shows it again
    assert window.frames.tabs.currentWidget() is window.frames.frames[addr[b.name]]
    # c stops: its session closes, the row says so, the frame says why there is no graph
    c.virsh("destroy", c.name)
    qtbot.waitUntil(lambda: status(window, c) == "shut off", timeout=WAIT)
    frame = window.frames.frames[addr[c.name]]
    assert frame.view.isHidden() and "shut off" in frame.note.text()
    assert addr[c.name] not in dict(window.sessions())
    c.virsh("start", c.name)
    qtbot.waitUntil(lambda: status(window, c) == "running" and bool(files(window, c)),
                    timeout=WAIT)
    assert not polling(window), polling(window)


def test_several_connections_are_groups_of_their_own(
        qtbot: Any, loop: asyncio.AbstractEventLoop, window: VmsWindow,
        three: list[Domain]) -> None:
    a = three[0]
    assert run(qtbot, loop, window.open_address(a.uri))
    # libvirt's built-in test driver: a second connection, whose one domain has no QEMU
    assert run(qtbot, loop, window.open_address("test:///default"))
    assert set(window.vm_list.groups) == {a.uri, "test:///default"}
    other = domain_address("test:///default", "test")
    assert window.vm_list.rows[other].parent() is window.vm_list.groups["test:///default"]
    assert window.vm_list.status(other).startswith("running, not readable: ")
    assert window.frames.frames[other].snapshot is None
    assert "not readable" in window.frames.frames[other].note.text()
    for dom in three:
        assert window.vm_list.rows[domain_address(dom.uri, dom.name)].parent() is \
            window.vm_list.groups[a.uri]
    assert window.vm_list.groups["test:///default"].text(0) == \
        "test:///default — 1 domain, 1 running"
    assert not run(qtbot, loop, window.open_address("qemu:///system?socket=/nonexistent"))
    assert "Failed to connect socket to '/nonexistent'" in window.vm_list.groups[
        "qemu:///system?socket=/nonexistent"].text(0)


def test_a_libvirtd_that_goes_away_is_said_and_nothing_is_lost(
        qtbot: Any, loop: asyncio.AbstractEventLoop, window: VmsWindow,
        libvirtd: LibvirtDaemon, tmp_path: Path) -> None:
    """A second private libvirtd, stopped under the window: its group and its VM say so,
    the other connection stays live."""
    other = LibvirtDaemon(tmp_path / "other")    # ``libvirtd`` said it can run here
    other.start()
    try:
        dom = start_domain(other, "bg-vms-lost", tmp_path / "lost")
        assert run(qtbot, loop, window.open_address(other.uri))
        assert run(qtbot, loop, window.open_address("test:///default"))
        address = domain_address(other.uri, dom.name)
        qtbot.waitUntil(lambda: bool(files(window, dom)), timeout=WAIT)
    finally:
        other.stop()
    qtbot.waitUntil(lambda: window.vm_list.groups[other.uri].text(0).startswith(
        f"{other.uri} — connection lost: "), timeout=WAIT)
    assert window.vm_list.status(address) == "unknown: connection to libvirt lost"
    assert "connection to libvirt lost" in window.frames.frames[address].note.text()
    assert address not in dict(window.sessions())
    assert window.vm_list.groups["test:///default"].text(0).endswith("1 domain, 1 running")
    assert not polling(window), polling(window)


@pytest.fixture
def qmp_socket(tmp_path: Path) -> Iterator[str]:
    """A qemu-storage-daemon whose monitor is free (started before the Qt loop runs)."""
    (tmp_path / "qsd").mkdir()
    with QemuStorageDaemon(tmp_path / "qsd") as qsd:
        assert qsd.qmp is not None
        qsd.qmp.close()                    # free the monitor for the window
        qsd.qmp = None
        yield f"unix:{qsd.socket_path}"


def test_connect_dialog_offers_libvirt_domains_and_qmp_sockets(
        qmp_socket: str, qtbot: Any, loop: asyncio.AbstractEventLoop, window: VmsWindow,
        three: list[Domain]) -> None:
    a, sock = three[0], qmp_socket
    assert run(qtbot, loop, window.open_address(a.uri))
    window.ask_connect()                   # File → Connect to…: found off the GUI thread
    qtbot.waitUntil(lambda: window.findChild(DiscoverDialog) is not None, timeout=WAIT)
    dialog = window.findChild(DiscoverDialog)
    texts = [dialog.offers.item(i).text() for i in range(dialog.offers.count())]
    assert any(t.startswith(f"{a.uri}#{a.name} ") and "running" in t for t in texts), texts
    row = next(i for i, t in enumerate(texts) if t.startswith(sock + " "))
    dialog.offers.setCurrentRow(row)
    assert dialog.address() == sock
    dialog.accept()
    qtbot.waitUntil(lambda: sock in window.vm_list.rows
                    and window.vm_list.status(sock) == "connected", timeout=WAIT)
    assert window.vm_list.rows[sock].parent() is window.vm_list.groups[GROUP]
    assert window.frames.frames[sock].snapshot is not None
    assert not polling(window), polling(window)
    run(qtbot, loop, window.close_connections())
