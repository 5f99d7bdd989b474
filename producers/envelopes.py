"""Envelopes: many events in one Kafka message.

Faust pays about 80 µs per Kafka message, so one event per message caps a worker near
10k events/s. An envelope is the events of one partition as JSON lines (``\\n``
separated, one object per line); a message with a single JSON object is an envelope of
one. Lines keep their own bytes, so a rejected event is dead-lettered exactly as sent.

>>> b = EnvelopeBuilder(max_events=2, max_bytes=1024)
>>> b.add(0, b'{"a":1}') is None
True
>>> b.add(0, b'{"a":2}')
b'{"a":1}\\n{"a":2}'
>>> split(b'{"a":1}\\n{"a":2}\\n')
[b'{"a":1}', b'{"a":2}']
"""

from __future__ import annotations

HEADERS = [("vigil-envelope", b"1")]


def split(value: bytes) -> list[bytes]:
    """The event lines of an envelope; blank lines are ignored."""
    return [line for line in value.split(b"\n") if line.strip()]


class EnvelopeBuilder:
    """Per-partition buffers of encoded events that close into envelopes when full."""

    def __init__(self, *, max_events: int, max_bytes: int) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._lines: dict[int, list[bytes]] = {}
        self._sizes: dict[int, int] = {}
        self.pending = 0

    def add(self, partition: int, line: bytes) -> bytes | None:
        """Buffer ``line``; return the partition's envelope when it is full."""
        lines = self._lines.get(partition)
        if lines is None:
            lines = self._lines[partition] = []
            self._sizes[partition] = 0
        size = self._sizes[partition] + len(line) + 1
        envelope = None
        if size > self.max_bytes and lines:
            envelope = self._close(partition)
            lines = self._lines[partition] = []
            size = len(line) + 1
        lines.append(line)
        self._sizes[partition] = size
        self.pending += 1
        if envelope is None and len(lines) >= self.max_events:
            envelope = self._close(partition)
        return envelope

    def _close(self, partition: int) -> bytes:
        lines = self._lines.pop(partition)
        del self._sizes[partition]
        self.pending -= len(lines)
        return b"\n".join(lines)

    def drain(self) -> list[tuple[int, bytes]]:
        """Close every non-empty buffer."""
        return [(p, self._close(p)) for p in list(self._lines) if self._lines[p]]
