"""The clients: :class:`Client` for asyncio code, :class:`SyncClient` for everything else.

Both share one core: the call-site API (:mod:`producers.signals`, workflow hooks,
decorators) in front of one :class:`producers.sender.Sender`. The asyncio client runs
the sender as a task on the host's loop; the sync client runs it on its own loop in a
daemon thread. Calls never block and never raise (unless ``strict``); ``flush`` and
``close`` return within their timeout even when the broker is down.

Example::

    async with producers.Client(settings) as vigil:
        vigil.metric("latency_ms", 12.5, {"route": "/checkout"})

    with producers.SyncClient(settings) as vigil:
        with vigil.execution("etl", total_steps=2) as run:
            with run.step("extract"):
                ...
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import logging
import os
import threading
import time
import weakref
from collections.abc import Mapping
from typing import Any, Self

from producers import runtime
from producers.decorators import DecoratorMethods, install, installed
from producers.resources import ResourceSampler
from producers.settings import ProducerSettings, from_env
from producers.signals import Signals
from producers.workflows import WorkflowHooks

log = logging.getLogger("producers")


class _Lifecycle(Signals, WorkflowHooks, DecoratorMethods):
    _runtime_task: asyncio.Task[None] | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **kwargs: Any) -> Self:
        """A client configured by the ``VIGIL_*`` variables (see ProducerSettings)."""
        settings = from_env(ProducerSettings, os.environ if environ is None else environ)
        return cls(settings, **kwargs)

    def _on_start(self) -> None:
        if installed() is None:
            install(self)

    def _on_close(self) -> None:
        if installed() is self:
            install(None)

    def _begin(self) -> asyncio.Task[None] | None:
        """On the sender's loop: start the sender, publish the runtime (read on a thread:
        listing packages takes about 0.1 s) and start the resource sampler if it is on."""
        self._sender.start()
        loop = asyncio.get_running_loop()
        if self.settings.capture_runtime:
            self._runtime_task = loop.create_task(self._publish_runtime())
        if self.settings.resource_interval_s <= 0:
            return None
        try:
            sampler = ResourceSampler()
        except Exception as exc:  # a sandbox may refuse /proc: run without samples
            self._internal(exc)
            return None
        return loop.create_task(sampler.run(self, self.settings.resource_interval_s))

    async def _publish_runtime(self) -> None:
        try:
            info = await asyncio.get_running_loop().run_in_executor(None, runtime.capture)
        except Exception as exc:  # a sandbox may refuse a read: start without it
            self._internal(exc)
            return
        where = f" at {info['revision'][:12]}" if "revision" in info else ""
        message = f"{info['implementation']} {info['python']} on {info['host']}{where}"
        self.log("info", message, name=runtime.NAME, attrs=info)

    async def _settled(self, timeout: float) -> float:
        """Let the runtime line (read on a thread at start) be queued before a flush or a
        close, waiting at most half of ``timeout`` (and 2 s); returns the time left."""
        task = self._runtime_task
        if task is None or task.done():
            return timeout
        started = time.monotonic()
        await asyncio.wait({task}, timeout=min(timeout / 2, 2.0))
        return max(timeout - (time.monotonic() - started), 0.0)

    async def _flush(self, timeout: float) -> bool:
        return await self._sender.flush(await self._settled(timeout))

    async def _close(self, timeout: float) -> bool:
        return await self._sender.close(await self._settled(timeout))


class Client(_Lifecycle):
    """The asyncio client: ``async with Client(settings) as vigil``."""

    _sampler_task: asyncio.Task[None] | None = None

    async def start(self) -> Client:
        """Start the sender task on the running loop; returns at once, broker or not."""
        if self.enabled:
            self._sampler_task = self._begin()
        self._on_start()
        return self

    async def flush(self, timeout: float = 10.0) -> bool:
        """Wait for every queued event to be acknowledged; False when ``timeout`` ran out."""
        if self._sender._task is None:
            return not self._sender.queued
        return await self._flush(timeout)

    async def close(self, timeout: float = 10.0) -> bool:
        """Flush and stop, within ``timeout`` seconds; unsent events count as failed."""
        self._on_close()
        if self._sampler_task is not None:
            self._sampler_task.cancel()
            await asyncio.gather(self._sampler_task, return_exceptions=True)
        if self._sender._task is None:
            return not self._sender.queued
        return await self._close(timeout)

    async def __aenter__(self) -> Client:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


def _after_fork_in_child(ref: weakref.ref[SyncClient]) -> None:
    """Restart the client behind ``ref`` in each forked child, as long as it lives."""

    def hook() -> None:
        client = ref()
        if client is not None:
            client._restart_in_child()

    os.register_at_fork(after_in_child=hook)  # hooks cannot be removed: it holds a weakref


class SyncClient(_Lifecycle):
    """The client for code without a loop: the sender runs on a daemon thread's loop."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._closed = False
        self._fork_hooked = False

    def start(self) -> SyncClient:
        if self._thread is not None or not self.enabled:
            self._on_start()
            return self
        loop = self._loop = asyncio.new_event_loop()
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._main, args=(loop, started), name="vigil-sender", daemon=True
        )
        self._thread.start()
        started.wait(5.0)
        atexit.register(self._at_exit)
        self._on_start()
        if not self._fork_hooked:
            _after_fork_in_child(weakref.ref(self))
            self._fork_hooked = True
        return self

    def _restart_in_child(self) -> None:
        """After ``os.fork()``: the child has no sender thread; it gets its own."""
        if self._thread is None or self._closed:
            return
        self._sender.forget_after_fork()
        self._thread = self._loop = None
        atexit.unregister(self._at_exit)  # inherited from the parent; start() adds it back
        try:
            self.start()
        except Exception as exc:  # the child must start even if its analytics cannot
            self._internal(exc)

    def _main(self, loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
        asyncio.set_event_loop(loop)
        self._sender_loop_start()
        started.set()
        try:
            loop.run_forever()
        finally:
            pending = asyncio.all_tasks(loop)
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.close()

    def _sender_loop_start(self) -> None:
        async def begin() -> None:
            self._begin()  # the loop's end cancels what it started

        assert self._loop is not None
        self._loop.run_until_complete(begin())

    def _call(self, coro: Any, timeout: float) -> Any:
        """Run ``coro`` on the sender's loop; wait at most ``timeout``."""
        assert self._loop is not None
        future = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            return False

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until every queued event is acknowledged, at most ``timeout`` seconds."""
        if self._loop is None or self._closed:
            return not self._sender.queued
        return bool(self._call(self._flush(timeout), timeout + 0.05))

    def close(self, timeout: float = 10.0) -> bool:
        """Flush and stop the thread, within ``timeout`` seconds."""
        self._on_close()
        if self._loop is None or self._closed:
            return not self._sender.queued
        self._closed = True
        atexit.unregister(self._at_exit)
        deadline = time.monotonic() + timeout
        flushed = bool(self._call(self._close(timeout * 0.9), timeout * 0.95))
        self._loop.call_soon_threadsafe(self._loop.stop)
        assert self._thread is not None
        # A daemon thread: if it lingers, it cannot keep the host from exiting.
        self._thread.join(max(deadline - time.monotonic(), 0.01))
        return flushed

    def _at_exit(self) -> None:
        self.close(timeout=5.0)

    def __enter__(self) -> SyncClient:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
