"""Delivery of alert transitions to webhook receivers, never stalling the worker.

Each receiver (``[channel.NAME]`` in the rules file) has its own bounded queue and one
task that POSTs the alerts topic's JSON to it, with a timeout per attempt and retries
with exponential backoff (0.5 s doubling, at most 30 s). A slow or dead receiver fills
only its own queue; when that is full a transition is dropped for that receiver and
counted (``dropped``), and the worker moves on. Silenced transitions are not delivered,
nor transitions to a state the channel does not take (``states``: firing and resolved
unless it says otherwise).
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any

import aiohttp

from producers.alerts import Alert
from streams.rules import Channel

log = logging.getLogger(__name__)


class Receiver:
    """One webhook: a bounded queue and the task that empties it."""

    def __init__(self, channel: Channel, session: aiohttp.ClientSession) -> None:
        self.channel = channel
        self.session = session
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=channel.queue)
        self.counts = collections.Counter[str]()
        self.last_error: str | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    def offer(self, body: bytes) -> bool:
        try:
            self.queue.put_nowait(body)
        except asyncio.QueueFull:
            self.counts["dropped"] += 1
            return False
        return True

    async def _run(self) -> None:
        while True:
            body = await self.queue.get()
            try:
                await self._deliver(body)
            finally:
                self.queue.task_done()

    async def _deliver(self, body: bytes) -> None:
        channel = self.channel
        headers = {"Content-Type": "application/json", **dict(channel.headers)}
        timeout = aiohttp.ClientTimeout(total=channel.timeout_s)
        backoff = 0.5
        for attempt in range(channel.retries + 1):
            try:
                async with self.session.post(
                    channel.url, data=body, headers=headers, timeout=timeout
                ) as response:
                    if response.status < 300:
                        self.counts["delivered"] += 1
                        return
                    self.last_error = f"HTTP {response.status}"
                    if 400 <= response.status < 500 and response.status not in (408, 429):
                        break  # the receiver refuses it: retrying will not help
            except (aiohttp.ClientError, TimeoutError) as exc:
                self.last_error = f"{type(exc).__name__}: {exc}"[:300]
            if attempt < channel.retries:
                self.counts["retries"] += 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
        self.counts["failed"] += 1
        log.warning("webhook %s: gave up on an alert: %s", channel.name, self.last_error)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class Dispatcher:
    """Routes transitions to the receivers their rule names (every one when it names none)."""

    def __init__(self, channels: dict[str, Channel]) -> None:
        self.channels = channels
        self.receivers: dict[str, Receiver] = {}
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if not self.channels:
            return
        self._session = aiohttp.ClientSession()
        for name, channel in self.channels.items():
            receiver = self.receivers[name] = Receiver(channel, self._session)
            receiver.start()

    def dispatch(self, alerts: list[Alert], lines: list[bytes]) -> None:
        for alert, line in zip(alerts, lines, strict=True):
            if alert.silenced:
                continue
            for name in self.receivers if alert.channels is None else alert.channels:
                receiver = self.receivers.get(name)
                if receiver is not None and alert.state in receiver.channel.states:
                    receiver.offer(line)

    def stats(self) -> dict[str, Any]:
        return {
            name: {**r.counts, "queued": r.queue.qsize(), "last_error": r.last_error}
            for name, r in self.receivers.items()
        }

    async def close(self) -> None:
        for receiver in self.receivers.values():
            await receiver.close()
        if self._session is not None:
            await self._session.close()
