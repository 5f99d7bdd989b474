"""Records that the stream stage writes: their schema lives here (no Faust import).

A :class:`WindowRecord` is one closed tumbling window of one series. Its ``row()`` is
what the ``windows`` table stores.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class WindowRecord:
    series: str
    kind: str
    service: str
    name: str
    start_ms: int
    end_ms: int
    partition: int
    count: int
    errors: int
    values: int
    sum: float
    min: float
    max: float

    @property
    def mean(self) -> float | None:
        return self.sum / self.values if self.values else None

    def row(self) -> dict[str, Any]:
        """A JSONEachRow row; times as seconds (ClickHouse reads them into DateTime64(3))."""
        has_values = self.values > 0
        return {
            "series": self.series,
            "kind": self.kind,
            "service": self.service,
            "name": self.name,
            "window_start": self.start_ms / 1000,
            "window_end": self.end_ms / 1000,
            "width_s": (self.end_ms - self.start_ms) // 1000,
            "partition": self.partition,
            "count": self.count,
            "errors": self.errors,
            "values": self.values,
            "sum": self.sum,
            "mean": self.mean,
            "min": self.min if has_values and math.isfinite(self.min) else None,
            "max": self.max if has_values and math.isfinite(self.max) else None,
        }


@dataclass(frozen=True, slots=True)
class Rejected:
    """An event line that did not pass: where it came from, its bytes, and why."""

    partition: int
    offset: int
    index: int
    line: bytes
    reason: str
