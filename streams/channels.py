"""Delivery of alert transitions to channels, never stalling the worker.

Each channel (``[channel.NAME]`` in the rules file) has its own bounded queue and one
task that sends to it, with a timeout per attempt and retries with exponential backoff
(0.5 s doubling, at most 30 s). A slow or dead receiver fills only its own queue; when
that is full a transition is dropped for that channel and counted (``dropped``), and the
worker moves on. Silenced transitions are not delivered, nor transitions to a state the
channel does not take (``states``: firing and resolved unless it says otherwise).

A plain webhook gets each transition as the alerts topic's JSON. An Alertmanager webhook
and an Apprise channel get groups (``streams.notifications``: what goes out, when): the
Alertmanager body, or the channel's title and body sent through Apprise (Slack,
PagerDuty, Teams, Telegram, email, ...). Grouping is per worker: with several workers, one
group's alerts may come in one message from each worker that holds some of them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson

from producers.alerts import Alert
from streams import notifications
from streams.rules import Channel

log = logging.getLogger(__name__)


class _Refused(Exception):
    """A receiver refused a message (a 4xx other than 408 and 429)."""


class Receiver:
    """One channel: a bounded queue (or, for grouped kinds, the groups waiting) and the
    task that empties it."""

    def __init__(
        self,
        channel: Channel,
        session: aiohttp.ClientSession,
        *,
        external_url: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.channel = channel
        self.session = session
        self.external_url = external_url
        self.clock = clock
        self.queue: asyncio.Queue[bytes] = asyncio.Queue(maxsize=channel.queue)
        self.groups = notifications.Grouper(
            group_by=channel.group_by,
            wait_ms=int(channel.group_wait_s * 1000),
            repeat_ms=int(channel.repeat_s * 1000),
        )
        self.counts = collections.Counter[str]()
        self.last_error: str | None = None
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._apprise: Any = None

    def start(self) -> None:
        run = self._run_groups if self.channel.grouped else self._run
        self._task = asyncio.get_running_loop().create_task(run())

    def offer(self, alert: Alert, line: bytes) -> bool:
        if self.channel.grouped:
            if self.groups.waiting >= self.channel.queue:
                self.counts["dropped"] += 1
                return False
            self.groups.add(alert, now_ms=self._now_ms())
            self._wake.set()
            return True
        try:
            self.queue.put_nowait(line)
        except asyncio.QueueFull:
            self.counts["dropped"] += 1
            return False
        return True

    def _now_ms(self) -> int:
        return int(self.clock() * 1000)

    async def _run(self) -> None:
        while True:
            body = await self.queue.get()
            try:
                await self._deliver(lambda body=body: self._post(body), "an alert")
            finally:
                self.queue.task_done()

    async def _run_groups(self) -> None:
        while True:
            for group in self.groups.due(now_ms=self._now_ms()):
                await self._deliver(lambda group=group: self._send(group), f"{len(group)} alerts")
            upcoming = self.groups.next_ms()
            wait = None if upcoming is None else max(0.0, (upcoming - self._now_ms()) / 1000)
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._wake.wait()

    async def _send(self, group: list[Alert]) -> str | None:
        """Send one group; None when it went out, else why not."""
        channel = self.channel
        if channel.kind == "alertmanager":
            body = notifications.alertmanager(
                group, receiver=channel.name, group_by=channel.group_by,
                external_url=self.external_url,
            )  # fmt: skip
            return await self._post(orjson.dumps(body))
        title, text = notifications.message(
            group, title=channel.title, body=channel.body, external_url=self.external_url
        )
        if self._apprise is None:
            import apprise

            self._apprise = apprise.Apprise()
            self._apprise.add(channel.url.split())
        async with asyncio.timeout(channel.timeout_s):
            sent = await self._apprise.async_notify(title=title, body=text)
        return None if sent else "Apprise could not deliver it (its log says why)"

    async def _post(self, body: bytes) -> str | None:
        """POST ``body``; None when taken, else why not (:class:`_Refused` when retrying
        will not help)."""
        channel = self.channel
        headers = {"Content-Type": "application/json", **dict(channel.headers)}
        timeout = aiohttp.ClientTimeout(total=channel.timeout_s)
        async with self.session.post(
            channel.url, data=body, headers=headers, timeout=timeout
        ) as response:
            if response.status < 300:
                return None
            if 400 <= response.status < 500 and response.status not in (408, 429):
                raise _Refused(f"HTTP {response.status}")
            return f"HTTP {response.status}"

    async def _deliver(self, attempt: Callable[[], Any], what: str) -> None:
        channel = self.channel
        backoff = 0.5
        for n in range(channel.retries + 1):
            try:
                error = await attempt()
            except _Refused as exc:  # the receiver refuses it: retrying will not help
                self.last_error = str(exc)
                break
            except (aiohttp.ClientError, TimeoutError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}"[:300]
            if error is None:
                self.counts["delivered"] += 1
                return
            self.last_error = error
            if n < channel.retries:
                self.counts["retries"] += 1
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
        self.counts["failed"] += 1
        log.warning("channel %s: gave up on %s: %s", channel.name, what, self.last_error)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


class Dispatcher:
    """Routes transitions to the receivers their rule names (every one when it names none)."""

    def __init__(self, channels: dict[str, Channel], *, external_url: str = "") -> None:
        self.channels = channels
        self.external_url = external_url
        self.receivers: dict[str, Receiver] = {}
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        if not self.channels:
            return
        self._session = aiohttp.ClientSession()
        for name, channel in self.channels.items():
            receiver = Receiver(channel, self._session, external_url=self.external_url)
            self.receivers[name] = receiver
            receiver.start()

    async def update(self, channels: dict[str, Channel]) -> None:
        """Use ``channels`` from now on (a rules reload): a channel whose definition did
        not change keeps its receiver, queue and groups; the others are closed (what they
        still held is dropped) or started."""
        for name, receiver in list(self.receivers.items()):
            if channels.get(name) != receiver.channel:
                await receiver.close()
                del self.receivers[name]
        self.channels = channels
        if channels and self._session is None:
            self._session = aiohttp.ClientSession()
        for name, channel in channels.items():
            if name not in self.receivers:
                assert self._session is not None
                receiver = Receiver(channel, self._session, external_url=self.external_url)
                self.receivers[name] = receiver
                receiver.start()

    def dispatch(self, alerts: list[Alert], lines: list[bytes]) -> None:
        for alert, line in zip(alerts, lines, strict=True):
            if alert.silenced:
                continue
            for name in self.receivers if alert.channels is None else alert.channels:
                receiver = self.receivers.get(name)
                if receiver is not None and alert.state in receiver.channel.states:
                    receiver.offer(alert, line)

    def stats(self) -> dict[str, Any]:
        return {
            name: {
                **r.counts,
                "queued": r.queue.qsize() + r.groups.waiting,
                "last_error": r.last_error,
            }
            for name, r in self.receivers.items()
        }

    async def close(self) -> None:
        for receiver in self.receivers.values():
            await receiver.close()
        if self._session is not None:
            await self._session.close()
