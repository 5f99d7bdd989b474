"""Records that the stream stage writes: their schema lives here (no Faust import).

A :class:`WindowRecord` is one closed window of one series; its ``message()`` is what the
windows topic carries (times in ms, as everywhere in Python and on topics; the tables'
rows are ``sinks.rows``). A :class:`BatchResult` is
everything processing one batch made, for the delivery (``streams.delivery``) to store,
publish and checkpoint. Alert transitions are
:class:`producers.alerts.Alert`: the SDK decodes them, and may not import this package.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgspec

from producers.alerts import Alert
from producers.events import Event
from streams.figures import FIGURES
from streams.routing import Forward

_ENCODE = msgspec.json.Encoder().encode


class WindowRecord(msgspec.Struct, frozen=True, gc=False):
    """One closed window of one series: ``[start_ms, end_ms)``, advancing by ``hop_ms``.

    A msgspec struct, not a frozen dataclass: at 100,000 series a minute closes 200,000 of
    them, and a frozen dataclass took 2.8 µs to make against 0.16 (a scratch timing); it
    holds numbers, strings and the sketch's counts, so the collector need not track it."""

    # The figures' fields follow streams.figures.FIGURES (error_rate is a property).
    series: str
    kind: str
    service: str
    name: str
    start_ms: int
    end_ms: int
    hop_ms: int
    label: str  # "1m", "5m/1m"
    partition: int
    count: int
    errors: int
    values: int
    sum: float
    mean: float | None
    min: float | None
    max: float | None
    stddev: float | None
    p50: float | None
    p95: float | None
    p99: float | None
    #: The quantile sketch as ``(zeros, {bucket: n}, {bucket: n})`` for positive and
    #: negative values (see streams.sketch): adding them merges windows.
    sketch: tuple[int, dict[int, int], dict[int, int]] | None

    @property
    def error_rate(self) -> float:
        return self.errors / self.count if self.count else 0.0

    def line(self) -> bytes:
        """:meth:`message` as one JSON line.

        msgspec, not orjson: orjson's small results each hold a 4 KiB buffer, and a
        minute closing 100,000 series keeps that many lines alive at once. Encoded from
        a struct of the message's fields, not from its dict: 1.7 µs a window against 2.7
        (a scratch timing), at 200,000 windows a minute at 100,000 series.
        """
        return _ENCODE(self._message())

    def message(self) -> dict[str, Any]:
        """The window as the windows topic carries it: times in milliseconds, as on the
        events and alerts topics (the ``windows`` table's row, in seconds, is
        ``sinks.rows.window_row``); the sketch is two maps of bucket -> count.

        The buckets stay ints here (the sketch's own maps, not copies): msgspec writes
        them as JSON's string keys, the same bytes as converting each. A busy series'
        window holds hundreds of buckets: with 223, a message encoded in 4.5 µs against
        22-25 converting them (a scratch timing).

        >>> from streams.windows import Windows, parse_windows
        >>> w = Windows(parse_windows("1m"), grace_ms=0, partition=0)
        >>> for ts, v in ((0, 1.0), (1, 1.0), (2, -2.0), (60_000, None)):
        ...     _ = w.add("s", "metric", "a", "b", ts=ts, value=v, ok=None)
        >>> m = w.close_ready()[0].message()
        >>> _ENCODE([m["sketch_pos"], m["sketch_neg"]])
        b'[{"0":2},{"35":1}]'
        """
        return msgspec.structs.asdict(self._message())

    def _message(self) -> msgspec.Struct:
        zeros, pos, neg = self.sketch if self.sketch is not None else (0, {}, {})
        return WindowMessage(
            self.series, self.kind, self.service, self.name, self.label, self.start_ms,
            self.end_ms, self.hop_ms, self.partition, self.count, self.errors,
            self.error_rate, self.values, self.sum, self.mean, self.min, self.max,
            self.stddev, self.p50, self.p95, self.p99, zeros, pos, neg,
        )  # fmt: skip


#: A closed window as the windows topic carries it, its keys in this order
#: (:meth:`WindowRecord.message`): where it comes from, then the figures of
#: ``streams.figures`` in their order, then the sketch.
WindowMessage = msgspec.defstruct(
    "WindowMessage",
    [
        ("series", str),
        ("kind", str),
        ("service", str),
        ("name", str),
        ("window", str),
        ("window_start_ms", int),
        ("window_end_ms", int),
        ("hop_ms", int),
        ("partition", int),
        *((f.name, f.type) for f in FIGURES),
        ("sketch_zeros", int),
        ("sketch_pos", dict[int, int]),
        ("sketch_neg", dict[int, int]),
    ],
    gc=False,
    module=__name__,
)


@dataclass(frozen=True, slots=True)
class ScoreRecord:
    """A detector's anomaly score of one closed window of one series (0 usual, 1 most
    unusual; the detector alerts at ``threshold``)."""

    series: str
    kind: str
    service: str
    name: str
    detector: str
    label: str
    end_ms: int
    value: float | None
    score: float
    threshold: float
    partition: int


@dataclass(frozen=True, slots=True)
class Rejected:
    """An event line that did not pass: where it came from, its bytes, and why."""

    partition: int
    offset: int
    index: int
    line: bytes
    reason: str


#: A checked event as the store keeps it until its insert: the event, its series, its
#: offset and index in the Kafka log, and whether it arrived late.
RawRow = tuple[Event, str, int, int, bool]


class RawRowFormat(Protocol):
    """How the store keeps a batch's raw rows until their insert (``sinks.rows.RawRows``):
    the processor keeps each checked event as a :data:`RawRow`, and :meth:`seal` turns
    them into the store's own form."""

    def seal(self, batch: RawBatch) -> None:
        """Turn ``batch``'s rows into a part in the store's own compact form, appended
        to ``batch.sealed``, letting go of the events."""
        ...


@dataclass
class RawBatch:
    """Raw rows of one partition, from contiguous offsets ``first..last``: the earlier
    ones sealed into the store's form, a part at a time (``sealed``, ``sealed_rows`` of
    them), then the rest as the processor made them (``rows``). ``len()`` counts both."""

    partition: int
    first: int
    last: int
    rows: list[RawRow] = field(default_factory=list)
    sealed: list[Any] = field(default_factory=list)
    sealed_rows: int = 0

    def __len__(self) -> int:
        return len(self.rows) + self.sealed_rows


@dataclass
class BatchResult:
    source: str = ""
    raw: dict[int, RawBatch] = field(default_factory=dict)
    rejected: list[Rejected] = field(default_factory=list)
    closed: list[WindowRecord] = field(default_factory=list)
    #: Alert transitions, per partition in the order made (``seq``).
    alerts: list[Alert] = field(default_factory=list)
    #: Detector scores of the closed windows.
    scores: list[ScoreRecord] = field(default_factory=list)
    #: Envelopes of events on their way to their series' partition (streams.routing).
    forwards: list[Forward] = field(default_factory=list)
    #: Events forwarded, per partition they arrived on.
    rerouted: collections.Counter[int] = field(default_factory=collections.Counter)
    touched: set[int] = field(default_factory=set)
    #: True when this result carries a checkpoint: every partition changed since the
    #: previous one, partition -> (offset, state snapshot) in ``states``.
    checkpoint: bool = False
    states: dict[int, tuple[int, bytes]] = field(default_factory=dict)
    counts: collections.Counter[str] = field(default_factory=collections.Counter)

    def release(self) -> None:
        """Let go of the closed windows and the raw rows once they are stored and sent,
        keeping their numbers in ``counts`` (what the worker's stats add up): the result
        itself lives on until its checkpoint is stored."""
        self.counts["windows_closed"] += len(self.closed)
        self.counts["raw_rows"] += sum(map(len, self.raw.values()))
        self.closed = []
        for raw in self.raw.values():
            raw.rows, raw.sealed, raw.sealed_rows = [], [], 0

    def window_lines(self) -> Iterator[tuple[int, bytes]]:
        """Each closed window's partition and :meth:`WindowRecord.line`, for the windows
        topic (the table takes Arrow columns: ``sinks.rows.window_payload``), each line
        made as it is read. Lines, not the messages: a batch of 100,000 events at
        100,000 series closes 190,000 windows, whose messages held 164 MB, and their lines
        99 MB (a scratch run)."""
        return ((record.partition, record.line()) for record in self.closed)
