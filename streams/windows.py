"""Event-time windows for the series of one partition: tumbling and hopping, from panes.

Every configured window (``1m``, ``5m``, ``1h``, hopping ``5m/1m``) is built from *panes*:
tumbling windows as wide as the greatest common divisor of all widths and hops. An event
updates one pane; a pane closes when the partition's watermark (highest event time seen
minus ``grace``) reaches its end, and is then merged into every configured window that
covers it, but for a window another configured window also is (each ``5m`` window is
the ``5m/1m`` window that ends with it), which is closed from that one. A window is
emitted once, when the watermark reaches its end.

An event whose pane has closed is *late*: counted per series and never merged (the raw
store keeps it, flagged). A partition that receives nothing lets its watermark follow the
wall clock (:meth:`Windows.tick`), so the windows of quiet series still close.

State is plain memory; :meth:`Windows.snapshot` gives it as JSON-safe data.

>>> w = Windows(parse_windows("1m,5m/1m"), grace_ms=10_000, partition=0)
>>> w.add("metric|api|lat", "metric", "api", "lat", ts=1_000, value=2.0, ok=None)
True
>>> w.add("metric|api|lat", "metric", "api", "lat", ts=75_000, value=4.0, ok=None)
True
>>> [(r.label, r.start_ms, r.end_ms, r.count) for r in w.close_ready()]
[('1m', 0, 60000, 1), ('5m/1m', -240000, 60000, 1)]
>>> w.add("metric|api|lat", "metric", "api", "lat", ts=5_000, value=1.0, ok=None)
False
"""

from __future__ import annotations

import itertools
import logging
import math
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from streams.aggregates import Aggregate
from streams.records import WindowRecord
from streams.sketch import EXACT_MAX, Buckets, QuantileSketch

log = logging.getLogger(__name__)
_UNITS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION = re.compile(r"^(\d+)([smhd])$")


class WindowConfigError(ValueError):
    """A window list that cannot be used; the message says which entry and why."""


@dataclass(frozen=True, order=True)
class WindowSpec:
    width_ms: int
    hop_ms: int

    @property
    def label(self) -> str:
        width = _format(self.width_ms)
        return width if self.hop_ms == self.width_ms else f"{width}/{_format(self.hop_ms)}"


def _format(ms: int) -> str:
    for unit, size in reversed(_UNITS.items()):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def parse_duration(text: str, *, zero: bool = False) -> int:
    """Milliseconds of ``30s``, ``1m``, ``5m``, ``1h`` or ``1d`` (``0s`` with ``zero``).

    >>> parse_duration("5m")
    300000
    """
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if not match or (int(match[1]) == 0 and not zero):
        raise ValueError(f"{text!r} is not a duration like 30s, 1m, 5m, 1h or 1d")
    return int(match[1]) * _UNITS[match[2]]


def _duration(text: str, entry: str) -> int:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise WindowConfigError(f"window {entry!r}: {exc}") from None


def parse_windows(text: str) -> tuple[WindowSpec, ...]:
    """``"1m,5m,1h,5m/1m"``: tumbling widths, and ``width/hop`` for hopping windows.

    >>> [s.label for s in parse_windows("5m/1m, 1m")]
    ['1m', '5m/1m']
    """
    specs = set()
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        width_text, _, hop_text = entry.partition("/")
        width = _duration(width_text, entry)
        hop = _duration(hop_text, entry) if hop_text else width
        if hop > width or width % hop:
            raise WindowConfigError(f"window {entry!r}: the hop must divide the width (e.g. 5m/1m)")
        specs.add(WindowSpec(width, hop))
    if not specs:
        raise WindowConfigError("no window configured: give at least one, e.g. 1m")
    return tuple(sorted(specs, key=lambda s: (s.width_ms, -s.hop_ms)))


class _Sample(NamedTuple):
    """One event's fields, for :meth:`Windows.add`."""

    kind: str
    service: str
    name: str
    ts: int
    value: float | None
    ok: bool | None


class SeriesAggregate(Aggregate):
    """An aggregate that knows which series it describes.

    A closed pane's aggregate is never changed again, so every window it is the first
    pane of shares it (``shared``) instead of each taking a copy, and a window copies it
    only when a second pane comes: at 100,000 series most series have one pane in a
    window, and ``1m,5m,5m/1m`` puts each pane into seven windows. For the same reason a
    closed aggregate's record figures and sketch buckets are worked out once
    (:meth:`closed`, :meth:`closed_buckets`), not once a window.
    """

    __slots__ = ("_buckets", "_closed", "kind", "name", "pending", "service", "shared")

    def __init__(self, kind: str, service: str, name: str) -> None:
        # Aggregate.__init__'s fields set here, not through a call: one is made for
        # every event at 100,000 series (a pane of its own), and the call cost 30-60%
        # more (timeit: 495 ns with super() against 313; another run, 716 with
        # Aggregate.__init__(self) against 551).
        self.count = self.errors = 0
        self.sum = self.mean = self.m2 = 0.0
        self.sketch = None
        # One string object for each distinct value: each event decodes into strings of
        # its own, which an aggregate kept (at 100,000 series, 1M events, the default
        # rules; a scratch run: 538,653 open aggregates held 637,113 distinct strings,
        # 35 MB, for 41 distinct kinds, services and names).
        self.kind, self.service, self.name = sys.intern(kind), sys.intern(service), sys.intern(name)
        self.shared = False
        self._closed: tuple[tuple[Any, ...], Buckets | None] | None = None
        self._buckets: Buckets | None = None
        #: Values added and not yet in the figures (:meth:`settle`).
        self.pending: list[float] | None = None

    def add(self, value: float | None, ok: bool | None) -> None:
        """Count an event; its value waits in ``pending`` until :meth:`settle`, which
        the pane's owner calls before anything reads it: one list append an event
        instead of two calls and the moments' update (at 1,000 series a pane gets about
        100 values)."""
        self.count += 1
        if ok is False:
            self.errors += 1
        if value is not None:
            pending = self.pending
            if pending is None:
                self.pending = [value]
            else:
                pending.append(value)

    def settle(self) -> None:
        """Take the pending values into the figures and the sketch (``add_values``: the
        same, bit for bit, as adding each when it came)."""
        pending = self.pending
        if pending is not None:
            self.pending = None
            self.add_values(pending)

    def closed(self) -> tuple[tuple[Any, ...], Buckets | None]:
        """``(figures, sketch buckets)`` of a window's record, for an aggregate that
        will not change again (kept after the first call)."""
        if self._closed is None:
            buckets = self.closed_buckets() if self.sketch is not None else None
            self._closed = (self.figures(), buckets)
        return self._closed

    def closed_buckets(self) -> Buckets:
        """The sketch's buckets, for an aggregate with values that will not change
        again (kept): a closed pane's exact values are bucketed once for the windows it
        is merged into and its record, not once each (at 1,000 series, where a pane
        holds about 30 values, it was bucketed seven times)."""
        if self._buckets is None:
            if self.sketch is None:
                raise ValueError("an aggregate without values has no sketch buckets")
            self._buckets = self.sketch.buckets()
        return self._buckets


class Windows:
    def __init__(
        self,
        specs: tuple[WindowSpec, ...],
        *,
        grace_ms: int,
        partition: int,
        idle_ms: int = 5_000,
    ) -> None:
        self.specs = specs
        self.grace_ms = grace_ms
        self.partition = partition
        #: After this long without an event, the watermark follows the wall clock.
        self.idle_ms = idle_ms
        self.pane_ms = math.gcd(*(v for s in specs for v in (s.width_ms, s.hop_ms)))
        pane = WindowSpec(self.pane_ms, self.pane_ms)
        self._pane_spec = pane if pane in specs else None
        self._composed = [s for s in specs if s != pane]
        #: Specs whose every window is a window of another spec too (the same width, a
        #: hop that divides theirs: each 5m window is the 5m/1m window that ends with it):
        #: closed from that spec's partials under their own label, never folded.
        self._derived = _derived(self._composed)
        self._folded = [s for s in self._composed if s not in self._derived]
        self.max_ts: int | None = None
        #: (wall time, max_ts) when the last event arrived; None until one does.
        self._arrival: tuple[int, int] | None = None
        # pane end -> series -> aggregate; composed window (end, spec) -> series -> partial.
        self._panes: dict[int, dict[str, SeriesAggregate]] = {}
        self._partials: dict[tuple[int, WindowSpec], dict[str, SeriesAggregate]] = {}
        self.late: dict[str, int] = {}

    @property
    def watermark(self) -> int | None:
        return None if self.max_ts is None else self.max_ts - self.grace_ms

    def add(
        self,
        series: str,
        kind: str,
        service: str,
        name: str,
        *,
        ts: int,
        value: float | None,
        ok: bool | None,
    ) -> bool:
        """Aggregate one event; False (and counted as late) when its pane has closed."""
        return not self.add_events([_Sample(kind, service, name, ts, value, ok)], [series])[0]

    def add_events(self, events: Sequence[Any], series: Sequence[str]) -> list[bool]:
        """Aggregate each event (anything with ``kind``, ``service``, ``name``, ``ts``,
        ``value`` and ``ok``) into its series' pane, in order: whether each came late (its
        pane had closed: counted, not aggregated). One loop for an envelope's events: 1.01 µs
        an event against 1.34 for a call each of what ``add`` was before it called this
        (a scratch run, 50,000 bench events over 1,000 series, best three of seven, the
        same in a second round)."""
        pane_ms, grace, panes, late = self.pane_ms, self.grace_ms, self._panes, self.late
        max_ts = self.max_ts
        out: list[bool] = []
        came = out.append
        last_end: int | None = None
        bucket: dict[str, SeriesAggregate] = {}
        for ev, key in zip(events, series, strict=True):
            ts = ev.ts
            end = ts - ts % pane_ms + pane_ms
            if max_ts is not None and end <= max_ts - grace:
                late[key] = late.get(key, 0) + 1
                came(True)
                continue
            if max_ts is None or ts > max_ts:
                max_ts = ts
            if end != last_end:  # an envelope's events mostly share a pane
                bucket = panes.setdefault(end, {})
                last_end = end
            agg = bucket.get(key)
            if agg is None:
                agg = bucket[key] = SeriesAggregate(ev.kind, ev.service, ev.name)
            agg.add(ev.value, ev.ok)
            came(False)
        self.max_ts = max_ts
        return out

    def arrived(self, now_ms: int) -> None:
        """Note that events arrived at wall time ``now_ms`` (resets the idle clock)."""
        if self.max_ts is not None:
            self._arrival = (now_ms, self.max_ts)

    def tick(self, now_ms: int) -> None:
        """Let an idle partition's event time advance with the wall clock.

        After ``idle_ms`` without events, event time is taken to have moved on as much as
        the wall clock has since the last event, never past ``now_ms`` itself.
        """
        if self.max_ts is None:
            return
        if self._arrival is None:  # restored from a snapshot: the idle clock starts now
            self._arrival = (now_ms, self.max_ts)
            return
        at, max_ts = self._arrival
        idle = now_ms - at
        if idle >= self.idle_ms:
            if self.max_ts == max_ts:
                log.info(
                    "partition %d idle for %d ms: its event time follows the wall clock from %d",
                    self.partition, idle, max_ts,
                )  # fmt: skip
            self.max_ts = max(self.max_ts, min(max_ts + idle, now_ms))

    def close_ready(self) -> list[WindowRecord]:
        """Close and return every window whose end the watermark has reached."""
        watermark = self.watermark
        if watermark is None:
            return []
        out: list[WindowRecord] = []
        for end in sorted(e for e in self._panes if e <= watermark):
            bucket = self._panes.pop(end)
            for agg in bucket.values():
                agg.settle()
            if self._pane_spec is not None:
                out.extend(self._records(self._pane_spec, end, bucket))
            for spec in self._folded:
                self._fold(spec, end, bucket)
        closing = [k for k in self._partials if k[0] <= watermark]
        for end, spec, bucket in self._windows(closing):
            out.extend(self._records(spec, end, bucket))
        for key in closing:
            del self._partials[key]
        return out

    def _windows(
        self, keys: Iterable[tuple[int, WindowSpec]]
    ) -> list[tuple[int, WindowSpec, dict[str, SeriesAggregate]]]:
        """``(end, spec, series -> aggregate)`` of the partial windows ``keys``, and of
        the derived specs' windows that are the same, in the order of (end, spec)."""
        out = [(end, spec, self._partials[(end, spec)]) for end, spec in keys]
        if self._derived:
            out += [
                (end, derived, bucket)
                for end, spec, bucket in list(out)
                for derived, source in self._derived.items()
                if source == spec and end % derived.hop_ms == 0
            ]
        out.sort(key=lambda window: (window[0], window[1]))
        return out

    def _fold(self, spec: WindowSpec, pane_end: int, bucket: dict[str, SeriesAggregate]) -> None:
        """Merge a closed pane into every window of ``spec`` that covers it."""
        pane_start = pane_end - self.pane_ms
        end = -(-pane_end // spec.hop_ms) * spec.hop_ms  # the first window end >= pane end
        while end - spec.width_ms <= pane_start:
            partial = self._partials.get((end, spec))
            if partial is None:
                partial = self._partials[(end, spec)] = {}
            for series, agg in bucket.items():
                into = partial.get(series)
                if into is None:  # the window's first pane: shared, not copied
                    agg.shared = True
                    partial[series] = agg
                    continue
                if into.shared:  # a second pane: the window takes its own copy now
                    own = partial[series] = SeriesAggregate(agg.kind, agg.service, agg.name)
                    if into.values + agg.values > EXACT_MAX:  # bucketed at once, not later
                        own.sketch = QuantileSketch.bucketed()
                    own.merge(into, into.closed_buckets)
                    into = own
                into.merge(agg, agg.closed_buckets)
            end += spec.hop_ms

    def _records(
        self, spec: WindowSpec, end: int, bucket: dict[str, SeriesAggregate]
    ) -> list[WindowRecord]:
        """The records of the closed windows of ``spec`` that end at ``end``: each
        series' figures in the record's fields' order (``Aggregate.figures``), made here,
        in the compiled core, and not through a method of the record's (at 100,000
        series a record for nearly four windows an event)."""
        start, label, partition, hop = end - spec.width_ms, spec.label, self.partition, spec.hop_ms
        out = []
        for series, a in bucket.items():
            figures, sketch = a.closed()
            # mypy counts a star argument as too many; without msgspec (mypyc's build
            # environment) the record is Any and the ignore unused.
            record = WindowRecord(  # type: ignore[call-arg, unused-ignore]
                series, a.kind, a.service, a.name, start, end, hop, label, partition,
                *figures, sketch,
            )  # fmt: skip
            out.append(record)
        return out

    @property
    def open_windows(self) -> int:
        return sum(len(b) for b in self._panes.values()) + sum(
            len(b) for _, _, b in self._windows(self._partials)
        )

    def open_series(self, series: str) -> list[dict[str, Any]]:
        """The open panes and windows of one series, with their figures so far."""
        out = []
        # A pane that is a configured window is shown as that window.
        pane = self._pane_spec.label if self._pane_spec is not None else "pane"
        for end, bucket in sorted(self._panes.items()):
            if series in bucket:
                agg = bucket[series]
                agg.settle()
                out.append(self._view(pane, end - self.pane_ms, end, agg))
        for end, spec, bucket in self._windows(self._partials):
            if series in bucket:
                out.append(self._view(spec.label, end - spec.width_ms, end, bucket[series]))
        return out

    @staticmethod
    def _view(label: str, start: int, end: int, agg: Aggregate) -> dict[str, Any]:
        return {"window": label, "start_ms": start, "end_ms": end, **agg.summary()}

    # -- persistence (JSON-safe) ------------------------------------------------------
    def snapshot(self, rows: Callable[[Iterator[Any]], Any] = list) -> dict[str, Any]:
        """The state as JSON-safe data. A closed pane that several windows share is
        written once, in ``shared``, and each of them names its place there instead of
        repeating it; restored, they share it again. A series' key, kind, service and
        name are written once too, in ``series``, and each of its panes and windows
        names their place: a series is in several open windows (at 100,000 series,
        1,000,000 events: 550,000 rows for 100,000 series). ``rows`` makes each long list
        from its rows (``streams.chunked.Rows`` leaves them to be made while encoded: the
        shared panes are then listed as the partials are read, which come first)."""
        for bucket in self._panes.values():
            for a in bucket.values():
                a.settle()
        shared: list[SeriesAggregate] = []
        places: dict[int, int] = {}
        names: list[list[str]] = []
        numbers: dict[str, int] = {}
        for bucket in itertools.chain(self._panes.values(), self._partials.values()):
            for series, a in bucket.items():
                if series not in numbers:
                    numbers[series] = len(names)
                    names.append([series, a.kind, a.service, a.name])

        def written(a: SeriesAggregate) -> list[Any] | int:
            if not a.shared:
                return a.to_list()
            place = places.get(id(a))
            if place is None:
                place = places[id(a)] = len(shared)
                shared.append(a)
            return place

        return {
            "pane_ms": self.pane_ms,
            "max_ts": self.max_ts,
            "late": self.late,
            "panes": rows(
                [end, numbers[s], a.to_list()]
                for end, bucket in self._panes.items()
                for s, a in bucket.items()
            ),
            "partials": rows(  # derived windows too: a snapshot any version restores
                [end, spec.width_ms, spec.hop_ms, numbers[s], written(a)]
                for end, spec, bucket in self._windows(self._partials)
                for s, a in bucket.items()
            ),
            "shared": rows(a.to_list() for a in shared),
            "series": rows(iter(names)),
        }

    @classmethod
    def restore(cls, data: dict[str, Any], specs: tuple[WindowSpec, ...], **kwargs: Any) -> Windows:
        """Windows from :meth:`snapshot`; a snapshot taken with other panes is refused.
        Also a snapshot of before the series were listed once (each row names its own)."""
        w = cls(specs, **kwargs)
        if data.get("pane_ms") != w.pane_ms:
            raise WindowConfigError(
                f"saved windows use {data.get('pane_ms')} ms panes, the configured windows "
                f"need {w.pane_ms} ms"
            )
        w.max_ts = data["max_ts"]
        w.late = dict(data["late"])
        names = data.get("series")
        panes: Iterable[list[Any] | tuple[Any, ...]] = data["panes"]
        partials: Iterable[list[Any] | tuple[Any, ...]] = data["partials"]
        if names is not None:  # else each row names its series itself, as the loops read
            panes = ((end, *names[i], agg) for end, i, agg in data["panes"])
            partials = (
                (end, width, hop, *names[i], agg) for end, width, hop, i, agg in data["partials"]
            )
        for end, s, kind, service, name, agg in panes:
            w._panes.setdefault(end, {})[s] = _restored(kind, service, name, agg)
        shared = data.get("shared", [])  # none in a snapshot of before sharing
        restored: dict[int, SeriesAggregate] = {}
        derived = []
        for end, width, hop, s, kind, service, name, agg in partials:
            spec = WindowSpec(width, hop)
            if spec not in w._composed:  # a window no longer configured is not emitted
                continue
            if isinstance(agg, int):
                into = restored.get(agg)
                if into is None:
                    into = restored[agg] = _restored(kind, service, name, shared[agg])
                    into.shared = True
            else:
                into = _restored(kind, service, name, agg)
            if spec in w._derived:  # saved before it was derived: the same window
                derived.append(((end, w._derived[spec]), s, into))
            else:
                w._partials.setdefault((end, spec), {})[s] = into
        # The twin holds the same window, unless a spec was configured after the window
        # began: the one with more events is kept.
        for key, s, into in derived:
            partial = w._partials.setdefault(key, {})
            if s not in partial or partial[s].count < into.count:
                partial[s] = into
        return w


def _derived(specs: list[WindowSpec]) -> dict[WindowSpec, WindowSpec]:
    """Each spec whose windows another spec of ``specs`` has too, and that spec: the one
    of the same width whose hop is the smallest that divides its hop.

    >>> _derived(list(parse_windows("1m,5m,5m/1m,10m/5m,1h")))
    {WindowSpec(width_ms=300000, hop_ms=300000): WindowSpec(width_ms=300000, hop_ms=60000)}
    """
    out = {}
    for spec in specs:
        sources = [
            s
            for s in specs
            if s.width_ms == spec.width_ms
            and s.hop_ms < spec.hop_ms
            and spec.hop_ms % s.hop_ms == 0
        ]
        if sources:
            out[spec] = min(sources, key=lambda s: s.hop_ms)
    return out


def _restored(kind: str, service: str, name: str, data: list[Any]) -> SeriesAggregate:
    agg = SeriesAggregate(kind, service, name)
    agg.load(data)
    return agg
