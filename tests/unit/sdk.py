"""Offline SDK clients for unit tests: events stay in the queue and are read back encoded.

An offline client is a real client that was never started: every call goes through
the real call-site code, and :func:`wire` runs the real sender encoding on what was
queued, so tests see exactly the JSON that would go to Kafka.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import orjson

from producers import Client, ProducerSettings
from producers.envelopes import split

NOW_MS = 1_800_000_000_000
OFFLINE = ProducerSettings(
    kafka_bootstrap="127.0.0.1:9", namespace="unit", resource_interval_s=0, service="api"
)


def offline(**overrides: Any) -> Client:
    """A client that queues and never sends; its clock says :data:`NOW_MS`."""
    strict = overrides.pop("strict", False)
    rng = overrides.pop("rng", None)
    settings = dataclasses.replace(OFFLINE, **overrides)
    extra = {"rng": rng} if rng is not None else {}
    return Client(settings, strict=strict, clock=lambda: NOW_MS / 1000, **extra)


def wire(client: Client) -> list[dict[str, Any]]:
    """Encode everything queued, as the sender does, and decode it, in call order."""
    sender = client._sender

    async def encode() -> None:
        while sender.queue:  # one at a time: envelopes per partition would reorder them
            sender._encode(1)
            sender._close_envelopes()

    asyncio.run(encode())
    out = [orjson.loads(line) for _, envelope, _ in sender._ready for line in split(envelope)]
    sender._ready.clear()
    sender.backlog = 0
    return out


def kinds(events: list[dict[str, Any]]) -> list[str]:
    return [e["kind"] for e in events]
