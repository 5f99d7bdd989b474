"""The sender's encoding: envelopes within their limits, routing, oversize events."""

from __future__ import annotations

import asyncio

import orjson
import pytest

from producers.envelopes import split
from producers.events import partition_for, routing_key
from tests.unit.sdk import offline


def _encode_all(vigil) -> list[tuple[int, bytes, int]]:
    sender = vigil._sender

    async def run() -> None:
        sender._encode(len(sender.queue))
        sender._close_envelopes()

    asyncio.run(run())
    return list(sender._ready)


def test_envelopes_respect_both_limits_and_keep_per_partition_order():
    vigil = offline(envelope_max_events=7, envelope_max_bytes=400, events_partitions=3)
    for i in range(300):
        vigil.metric("latency_ms", float(i), {"route": f"/r{i % 5}"}, attrs={"pad": "x" * (i % 40)})
    envelopes = _encode_all(vigil)
    seen = []
    for partition, envelope, count in envelopes:
        lines = split(envelope)
        assert len(lines) == count <= 7
        assert len(envelope) <= 400
        for line in lines:
            event = orjson.loads(line)
            assert partition == partition_for(routing_key(event), 3)
            seen.append((partition, event["value"]))
    assert sorted(v for _, v in seen) == [float(i) for i in range(300)]
    for p in range(3):
        values = [v for q, v in seen if q == p]
        assert values == sorted(values), "a partition's events keep their order"
    assert vigil._sender.backlog == 300 and vigil._sender._builder.pending == 0


def test_an_event_over_64_kib_is_dropped_and_counted():
    vigil = offline()
    vigil.metric("m", 1.0, attrs={"blob": "x" * 70_000})
    vigil.metric("m", 2.0)
    [(_, envelope, count)] = _encode_all(vigil)
    assert count == 1 and orjson.loads(envelope)["value"] == 2.0
    stats = vigil.stats()
    assert stats["invalid"] == 1 and stats["queued"] == 1


@pytest.mark.parametrize("missing", ["lz4", "zstd", "snappy"])
def test_a_compression_without_its_library_falls_back_to_none_and_says_so(monkeypatch, missing):
    from aiokafka import codec

    # Vigil depends on cramjam, which gives aiokafka all three: take one away as a host
    # with a hand-made environment could.
    monkeypatch.setattr(codec, f"has_{missing}", lambda: False)
    vigil = offline(compression=missing)
    assert vigil._sender._compression is None
    assert f"VIGIL_KAFKA_COMPRESSION={missing} needs" in vigil.stats()["last_error"]
    assert offline(compression="gzip")._sender._compression == "gzip"


async def test_closing_stops_the_sender_when_it_is_cancelled_as_a_connect_fails(monkeypatch):
    """The cancellation of ``close`` reaches the sender even when it comes just as a
    connection attempt fails. Python 3.11's ``asyncio.wait_for``, cancelled as the
    awaited work ends, returns (or raises) that work's outcome and drops the
    cancellation: the sender took it for one more failed connect, went on trying, and
    ``close`` waited for it forever (a CI run stopped making progress in the resource
    sampler's test, against an unreachable broker)."""
    import producers.sender as sender_module

    vigil = offline()
    await vigil.start()
    task = vigil._sender._task
    assert task is not None

    async def refused(*args: object, **kwargs: object) -> int:
        task.cancel()  # close() cancels the sender here, as the connect fails
        raise OSError("connection refused")

    monkeypatch.setattr(sender_module, "ensure_topics", refused)
    done, _ = await asyncio.wait({task}, timeout=5)
    assert done and task.cancelled(), "the sender ended on its cancellation"
    async with asyncio.timeout(5):
        await vigil.close(timeout=0.1)
