"""Envelopes: many events in one Kafka message.

Faust pays about 80 µs per Kafka message, so one event per message caps a worker near
10k events/s. An envelope is the events of one partition as JSON lines (``\\n``
separated, one object per line); a message with a single JSON object is an envelope of
one. Lines keep their own bytes, so a rejected event is dead-lettered exactly as sent.

>>> b = EnvelopeBuilder(max_events=2, max_bytes=1024)
>>> b.add(0, b'{"a":1}') is None
True
>>> b.add(0, b'{"a":2}')
(b'{"a":1}\\n{"a":2}', 2)
>>> split(b'{"a":1}\\n{"a":2}\\n')
[b'{"a":1}', b'{"a":2}']
"""

from __future__ import annotations

HEADERS = [("vigil-envelope", b"1")]


def split(value: bytes) -> list[bytes]:
    """The event lines of an envelope; blank lines are ignored."""
    return [line for line in value.split(b"\n") if line.strip()]


class EnvelopeBuilder:
    """Per-partition buffers of encoded events that close into envelopes when full.

    Lines are copied into one bytearray per partition as they come: keeping thousands
    of small ``bytes`` alive until an envelope closed cost the SDK's encoding about
    0.7 µs per event in allocator work (measured: 2.8 -> 2.1 µs), copying costs a few
    nanoseconds.
    """

    def __init__(self, *, max_events: int, max_bytes: int) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        #: The open envelope of each partition and how many events it holds. A hot loop
        #: may append to them directly while an envelope stays below both limits
        #: (``buffer += b"\\n" + line; counts[p] += 1``); :meth:`add` does the rest.
        self.buffers: dict[int, bytearray] = {}
        self.counts: dict[int, int] = {}

    @property
    def pending(self) -> int:
        """Events in open envelopes."""
        return sum(self.counts.values())

    def add(self, partition: int, line: bytes) -> tuple[bytes, int] | None:
        """Buffer ``line``; when the partition's envelope is full, return it and the
        number of events in it (counted as added: a line may itself hold a newline)."""
        buffer = self.buffers.get(partition)
        closed = None
        if buffer is not None and len(buffer) + len(line) + 1 > self.max_bytes:
            closed = self._close(partition)
            buffer = None
        if buffer is None:
            self.buffers[partition] = bytearray(line)
            self.counts[partition] = 1
        else:
            buffer += b"\n"
            buffer += line
            self.counts[partition] += 1
        if closed is None and self.counts[partition] >= self.max_events:
            closed = self._close(partition)
        return closed

    def _close(self, partition: int) -> tuple[bytes, int]:
        return bytes(self.buffers.pop(partition)), self.counts.pop(partition)

    def drain(self) -> list[tuple[int, bytes, int]]:
        """Close every open envelope: ``(partition, envelope, events)``."""
        return [(p, *self._close(p)) for p in list(self.buffers)]
