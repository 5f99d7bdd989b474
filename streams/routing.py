"""Re-routing: an event that arrived on a partition other than its series' own goes there,
once, through the events topic.

A series' windows, executions, rules and detectors live in the state of one partition:
the one its routing key (:func:`producers.events.routing_key`) picks under Kafka's
default partitioner (murmur2). The SDK publishes there. Other producers may not: no key
(librdkafka's sticky batches spread one series over every partition), another key, or
librdkafka's own default partitioner (``consistent_random``, CRC32) with the right key.
Such an event is not applied where it arrives. It is forwarded in an envelope to its
series' partition, with a header (:data:`HEADER`) saying where each line came from, and
applied there: the repartitioning of Kafka Streams and Faust's ``group_by``, through
the events topic itself.

Exactly once, without transactions (the embedded broker has none):

- a forward is delivered before the partition it left is checkpointed, so a crash can
  forward a line again but never lose it;
- the receiving partition keeps, per partition that forwarded to it, the position
  ``(offset, index)`` of the last line it applied (:class:`Received`, part of its
  checkpointed state) and skips a line at or below it. One position per origin is
  enough: one worker at a time holds the origin and sends its forwards in order, and
  a replay sends them again after the ones it repeats;
- a forwarded line is applied where it lands, never forwarded again (if the partition
  count changed meanwhile, it stays: one hop, not a loop).

>>> homes = Homes(4)
>>> homes.of("metric|api|latency_ms", "metric", "api", "latency_ms")
0
>>> out = Forwards()
>>> out.add(origin=0, target=2, offset=7, index=1, line=b'{"a":1}')
>>> [(f.target, f.value, read_header(f.header, 1)) for f in out.envelopes()]
[(2, b'{"a":1}', (0, [(7, 1)]))]
>>> seen = Received()
>>> seen.fresh(0, (7, 1)), seen.fresh(0, (7, 1)), seen.fresh(0, (8, 0))
(True, False, True)
"""

from __future__ import annotations

import collections
from dataclasses import dataclass, field
from typing import Any

import orjson

from producers.events import partition_for, route

#: The Kafka header of a forwarded envelope: ``[origin partition, offset, index, ...]``,
#: an offset and index per line, as a JSON array.
HEADER = "vigil-hop"

Position = tuple[int, int]  # offset, index of a line in its origin partition


class BadHeader(ValueError):
    """A :data:`HEADER` that cannot be read, or does not match its envelope's lines."""


def header(origin: int, positions: list[Position]) -> bytes:
    """The :data:`HEADER` value of an envelope of lines from ``positions`` of ``origin``."""
    flat = [origin]
    for offset, index in positions:
        flat += (offset, index)
    return orjson.dumps(flat)


def read_header(value: bytes, lines: int) -> tuple[int, list[Position]]:
    """The origin partition and each line's position, from a :data:`HEADER` value of an
    envelope of ``lines`` lines; :class:`BadHeader` when it cannot be that."""
    try:
        flat = orjson.loads(value)
    except orjson.JSONDecodeError:
        raise BadHeader(f"the {HEADER} header is not JSON") from None
    if (
        not isinstance(flat, list)
        or len(flat) != 1 + 2 * lines
        or not all(type(n) is int and n >= 0 for n in flat)
    ):
        raise BadHeader(
            f"the {HEADER} header does not give a partition and a position for each of "
            f"the {lines} lines"
        )
    return flat[0], list(zip(flat[1::2], flat[2::2], strict=True))


def find_header(headers: Any) -> bytes | None:
    """The :data:`HEADER` value among a Kafka message's headers (pairs or a mapping)."""
    if not headers:
        return None
    pairs = headers.items() if hasattr(headers, "items") else headers
    for key, value in pairs:
        if key == HEADER:
            return bytes(value)
    return None


def message(partition: int, offset: int, value: bytes, headers: Any) -> tuple[Any, ...]:
    """A Kafka message as ``Processor.process`` takes it: ``(partition, offset, value,
    the value of its HEADER header or None)``."""
    return partition, offset, value, find_header(headers)


class Homes:
    """The partition each series belongs to, remembered (about 1 µs saved per event)."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions
        self._known: dict[str, int] = {}

    def of(self, series: str, kind: str, service: str, name: str) -> int:
        home = self._known.get(series)
        if home is None:
            if len(self._known) >= 200_000:
                self._known.clear()
            key = route(kind, service, name, series)
            home = self._known[series] = partition_for(key, self.partitions)
        return home


@dataclass
class Forward:
    """One envelope on its way to the partition of its series."""

    target: int
    value: bytes
    header: bytes
    count: int


@dataclass
class _Open:
    lines: list[bytes] = field(default_factory=list)
    positions: list[Position] = field(default_factory=list)
    size: int = 0


class Forwards:
    """The lines a batch forwards, per (origin, target), in the order they came."""

    def __init__(self, *, max_events: int = 5_000, max_bytes: int = 1 << 20) -> None:
        self.max_events = max_events
        self.max_bytes = max_bytes
        self._open: dict[tuple[int, int], _Open] = {}
        self._done: list[Forward] = []
        #: Events forwarded, per partition they arrived on.
        self.counts = collections.Counter[int]()

    def add(self, *, origin: int, target: int, offset: int, index: int, line: bytes) -> None:
        key = (origin, target)
        buf = self._open.get(key)
        if buf is not None and (
            len(buf.lines) >= self.max_events or buf.size + len(line) > self.max_bytes
        ):
            self._close(key)
            buf = None
        if buf is None:
            buf = self._open[key] = _Open()
        buf.lines.append(line)
        buf.positions.append((offset, index))
        buf.size += len(line) + 1
        self.counts[origin] += 1

    def _close(self, key: tuple[int, int]) -> None:
        buf = self._open.pop(key)
        value = b"\n".join(buf.lines)
        self._done.append(Forward(key[1], value, header(key[0], buf.positions), len(buf.lines)))

    def envelopes(self) -> list[Forward]:
        """Every envelope, the open ones closed; per (origin, target) in line order."""
        for key in list(self._open):
            self._close(key)
        return self._done


class Received:
    """Per partition that forwarded lines here, the position of the last one applied.

    >>> r = Received.restore({"3": [10, 2]})
    >>> r.fresh(3, (10, 1)), r.fresh(3, (10, 3)), r.snapshot()
    (False, True, {'3': [10, 3]})
    """

    def __init__(self, last: dict[int, Position] | None = None) -> None:
        self.last: dict[int, Position] = last or {}

    def fresh(self, origin: int, position: Position) -> bool:
        """True, and remembered, when ``position`` of ``origin`` is past the last applied."""
        last = self.last.get(origin)
        if last is not None and position <= last:
            return False
        self.last[origin] = position
        return True

    def snapshot(self) -> dict[str, list[int]]:
        return {str(p): list(pos) for p, pos in self.last.items()}

    @classmethod
    def restore(cls, data: dict[str, list[int]]) -> Received:
        return cls({int(p): (pos[0], pos[1]) for p, pos in data.items()})
