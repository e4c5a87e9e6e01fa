"""Every libvirt call and every libvirt event, on one private thread with its own loop.

libvirt delivers events (domain lifecycle, block jobs, raw QMP events) through an
event-loop implementation that is registered once per process, before the first
connection, and can never be replaced. This module registers ``libvirtaio``'s — the
binding's own asyncio adapter — on a private asyncio loop that runs in one daemon
thread, and makes every libvirt call on that thread too:

* ``libvirtaio`` is not thread-safe, and libvirt's remote driver changes its socket's
  watch from whichever thread makes a call; so calls and events share one thread;
* the callers' loops come and go — the editor's qasync loop, ``asyncio.run`` in a
  command, a loop per test — while the registration stays for the process's life;
* a call waits for libvirtd's reply (over ssh for a remote URI): made on the editor's
  loop, it would freeze the window.

Callers ``await runtime().run(fn, *args)`` from any loop, or ``submit`` from plain
threads; a callback that libvirt invokes runs on the private loop, and
:func:`deliver` hands its result to the loop that asked for it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import libvirt
import libvirtaio

from gui.libvirt.errors import LibvirtError

T = TypeVar("T")


class LibvirtRuntime:
    """The private thread: its loop runs libvirtaio, libvirt calls and the QMP bridges."""

    def __init__(self) -> None:
        self._loop = asyncio.new_event_loop()
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,),
                                        name="blockgraph-libvirt", daemon=True)
        self._thread.start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self._loop)
        # errors are raised as LibvirtError; libvirt's default handler would also print them
        libvirt.registerErrorHandler(_ignore_error, None)
        libvirtaio.virEventRegisterAsyncIOImpl(loop=self._loop)
        ready.set()
        self._loop.run_forever()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._loop

    def in_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def submit(self, fn: Callable[..., T], *args: Any) -> concurrent.futures.Future[T]:
        """Call ``fn(*args)`` on the libvirt thread; libvirt's errors become LibvirtError."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def call() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(fn(*args))
            except libvirt.libvirtError as exc:
                future.set_exception(LibvirtError.from_libvirt(exc, _name(fn)))
            except BaseException as exc:
                future.set_exception(exc)

        if self.in_thread():
            call()
        else:
            self._loop.call_soon_threadsafe(call)
        return future

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Await ``fn(*args)`` made on the libvirt thread, from any other loop."""
        return await asyncio.wrap_future(self.submit(fn, *args))

    def spawn(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Run a coroutine on the libvirt thread's loop (the QMP bridges live there)."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop)


def _ignore_error(_ctx: object, _error: object) -> None:
    return None


def _name(fn: Callable[..., Any]) -> str:
    return str(getattr(fn, "__name__", "") or getattr(fn, "__qualname__", "") or fn)


def deliver(loop: asyncio.AbstractEventLoop, callback: Callable[..., None], *args: Any) -> None:
    """Run ``callback(*args)`` on ``loop`` (from a libvirt callback); a closed loop is skipped."""
    if loop.is_closed():
        return
    with contextlib.suppress(RuntimeError):    # closed between the check and the call
        loop.call_soon_threadsafe(callback, *args)


_runtime: LibvirtRuntime | None = None
_lock = threading.Lock()


def runtime() -> LibvirtRuntime:
    """The process's libvirt thread, started on first use."""
    global _runtime
    with _lock:
        if _runtime is None:
            _runtime = LibvirtRuntime()
        return _runtime
