"""The other workers of the consumer group, and asking them what they hold.

Every worker answers every live page for the whole group: it answers from the partitions
it holds and asks its peers for theirs (``?scope=local``: only what the asked worker
holds). The peers are found through the group's own membership: at each rebalance the
group leader hands every member the map of member URLs to the partitions each one got
(Faust's assignor carries the URLs in the group protocol's metadata), so there is no
registry to run and the map is exactly the group Kafka formed. Why peers rather than a
topic of summaries every worker reads: a page is as fresh as the worker that holds the
partition (no second of publishing delay), nothing is republished every second for
pages nobody opens, and the embedded broker has no log compaction to keep such a topic
bounded.

A peer that does not answer within ``timeout`` seconds (killed, before the group notices
about 6 s later) is reported with the partitions it held, so a page says what it is
missing instead of silently showing less.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

#: The query parameter that asks a worker for only what it holds.
LOCAL = "scope"
LOCAL_VALUE = "local"


def advertised_url(host: str, port: int, configured: str = "") -> str:
    """The URL peers reach this worker's web server at: ``configured`` when set; else
    ``host``, or this machine's address when the server listens on every interface.

    >>> advertised_url("127.0.0.1", 6066)
    'http://127.0.0.1:6066'
    >>> advertised_url("0.0.0.0", 6066, "http://worker-1:6066/")
    'http://worker-1:6066'
    """
    if configured:
        return configured.rstrip("/")
    if host in ("0.0.0.0", "::", ""):
        try:
            host = socket.gethostbyname(socket.gethostname())
        except OSError:
            host = socket.gethostname()
    return f"http://{host}:{port}"


@dataclass(frozen=True)
class Answer:
    """One peer's answer: its HTTP status and JSON body, or ``error`` when it gave none."""

    url: str
    partitions: tuple[int, ...]
    status: int | None
    body: Any = None
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200


class Peers:
    """The group's other members (``members()``: URL -> partitions held, as the last
    rebalance handed out) and concurrent requests to them with this worker's token."""

    def __init__(
        self,
        members: Callable[[], Mapping[str, Collection[int]]],
        me: str,
        *,
        token: str | None,
        timeout: float = 2.0,
    ) -> None:
        self.members = members
        self.me = me.rstrip("/")
        self.token = token
        self.timeout = timeout
        self._session: Any = None

    def others(self) -> dict[str, tuple[int, ...]]:
        """Each other member's URL and the partitions it holds."""
        out = {}
        for url, partitions in self.members().items():
            url = url.rstrip("/")
            if url != self.me:
                out[url] = tuple(sorted(partitions))
        return out

    async def ask(self, path: str, params: Mapping[str, str] | None = None) -> list[Answer]:
        """``GET path?scope=local`` of every other member, concurrently, in URL order."""
        others = self.others()
        if not others:
            return []
        query = {**(params or {}), LOCAL: LOCAL_VALUE}
        asked = [self._get(url, held, path, query) for url, held in sorted(others.items())]
        return list(await asyncio.gather(*asked))

    async def _get(
        self, url: str, held: tuple[int, ...], path: str, query: Mapping[str, str]
    ) -> Answer:
        import aiohttp

        if self._session is None:
            headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
            self._session = aiohttp.ClientSession(headers=headers)
        try:
            async with self._session.get(
                url + path, params=dict(query), timeout=aiohttp.ClientTimeout(total=self.timeout)
            ) as response:
                return Answer(url, held, response.status, await response.json())
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            return Answer(url, held, None, error=f"{type(exc).__name__}: {exc}".rstrip(": "))

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
