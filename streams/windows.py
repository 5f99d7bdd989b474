"""Event-time tumbling windows for the series of one partition.

A window ``[start, start + width)`` closes when the partition's watermark (the highest
event time seen minus ``grace``) reaches its end; it is emitted once and forgotten. An
event whose window has already closed is *late*: counted per series, never merged.

State is plain memory, saved as JSON-safe data with :meth:`snapshot` (see FIELD_NOTES:
a table write per event costs 100x more than the aggregation itself).

>>> w = TumblingWindows(width_ms=60_000, grace_ms=10_000, partition=0)
>>> w.add("metric|api|lat", "metric", "api", "lat", ts=1_000, value=2.0, ok=None)
True
>>> w.add("metric|api|lat", "metric", "api", "lat", ts=75_000, value=4.0, ok=None)
True
>>> [(r.start_ms, r.count, r.mean) for r in w.close_ready()]
[(0, 1, 2.0)]
>>> w.add("metric|api|lat", "metric", "api", "lat", ts=5_000, value=1.0, ok=None)
False
"""

from __future__ import annotations

import math
from typing import Any

from streams.records import WindowRecord


class _Agg:
    __slots__ = ("count", "errors", "kind", "max", "min", "name", "service", "sum", "values")

    def __init__(self, kind: str, service: str, name: str) -> None:
        self.kind, self.service, self.name = kind, service, name
        self.count = 0
        self.errors = 0
        self.values = 0
        self.sum = 0.0
        self.min = math.inf
        self.max = -math.inf


class TumblingWindows:
    def __init__(self, *, width_ms: int, grace_ms: int, partition: int) -> None:
        self.width_ms = width_ms
        self.grace_ms = grace_ms
        self.partition = partition
        self.max_ts: int | None = None
        # window end -> series -> aggregate: closing walks ends in order.
        self._open: dict[int, dict[str, _Agg]] = {}
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
        """Aggregate one event; False (and counted as late) when its window has closed."""
        end = ts - ts % self.width_ms + self.width_ms
        watermark = self.watermark
        if watermark is not None and end <= watermark:
            self.late[series] = self.late.get(series, 0) + 1
            return False
        if self.max_ts is None or ts > self.max_ts:
            self.max_ts = ts
        bucket = self._open.get(end)
        if bucket is None:
            bucket = self._open[end] = {}
        agg = bucket.get(series)
        if agg is None:
            agg = bucket[series] = _Agg(kind, service, name)
        agg.count += 1
        if ok is False:
            agg.errors += 1
        if value is not None:
            agg.values += 1
            agg.sum += value
            if value < agg.min:
                agg.min = value
            if value > agg.max:
                agg.max = value
        return True

    def close_ready(self) -> list[WindowRecord]:
        """Close and return every window whose end the watermark has reached."""
        watermark = self.watermark
        if watermark is None:
            return []
        ready = sorted(end for end in self._open if end <= watermark)
        return [rec for end in ready for rec in self._records(end, self._open.pop(end))]

    def _records(self, end: int, bucket: dict[str, _Agg]) -> list[WindowRecord]:
        start = end - self.width_ms
        return [
            WindowRecord(
                series=series,
                kind=a.kind,
                service=a.service,
                name=a.name,
                start_ms=start,
                end_ms=end,
                partition=self.partition,
                count=a.count,
                errors=a.errors,
                values=a.values,
                sum=a.sum,
                min=a.min,
                max=a.max,
            )
            for series, a in bucket.items()
        ]

    @property
    def open_windows(self) -> int:
        return sum(len(b) for b in self._open.values())

    # -- persistence (JSON-safe) ------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "max_ts": self.max_ts,
            "late": self.late,
            "open": [
                [
                    end,
                    s,
                    a.kind,
                    a.service,
                    a.name,
                    a.count,
                    a.errors,
                    a.values,
                    a.sum,
                    a.min if a.values else None,
                    a.max if a.values else None,
                ]
                for end, bucket in self._open.items()
                for s, a in bucket.items()
            ],
        }

    @classmethod
    def restore(
        cls, data: dict[str, Any], *, width_ms: int, grace_ms: int, partition: int
    ) -> TumblingWindows:
        w = cls(width_ms=width_ms, grace_ms=grace_ms, partition=partition)
        w.max_ts = data.get("max_ts")
        w.late = dict(data.get("late", {}))
        for end, s, kind, service, name, count, errors, values, total, lo, hi in data["open"]:
            agg = _Agg(kind, service, name)
            agg.count, agg.errors, agg.values, agg.sum = count, errors, values, total
            agg.min = lo if lo is not None else math.inf
            agg.max = hi if hi is not None else -math.inf
            w._open.setdefault(end, {})[s] = agg
        return w
