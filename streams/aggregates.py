"""What a window knows about one series: counts, stable moments and a quantile sketch.

Everything here merges: a window built from panes, or from the partitions of several
workers, equals the window built in one pass (exactly for counts, min, max and the
sketch; to floating-point rounding for the sum, mean and standard deviation). The
moments use Welford's update and Chan's merge, which stay accurate on values with a
large common offset where ``sum(x*x)/n - mean**2`` cancels to noise.

>>> a, b = Aggregate(), Aggregate()
>>> for v in (1e9 + 1, 1e9 + 2):
...     a.add(v, ok=True)
>>> b.add(1e9 + 3, ok=False)
>>> a.merge(b)
>>> (a.count, a.errors, a.mean, round(a.stddev, 6))
(3, 1, 1000000002.0, 0.816497)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from streams.figures import NAMES, QUANTILES
from streams.sketch import Buckets, QuantileSketch

_NO_QUANTILES = [None] * len(QUANTILES)


class Aggregate:
    __slots__ = ("count", "errors", "m2", "mean", "sketch", "sum")

    def __init__(self) -> None:
        self.count = 0  # events
        self.errors = 0  # events with ok=False
        self.sum = 0.0
        self.mean = 0.0
        self.m2 = 0.0  # sum of squared deviations from the mean
        self.sketch: QuantileSketch | None = None  # values, once there is one

    @property
    def values(self) -> int:
        """How many events carried a value."""
        return self.sketch.count if self.sketch is not None else 0

    def add(self, value: float | None, ok: bool | None) -> None:
        self.count += 1
        if ok is False:
            self.errors += 1
        if value is not None:
            self.add_values((value,))

    def add_values(self, values: Sequence[float]) -> None:
        """Add the values of events counted already (``count`` and ``errors`` are the
        caller's), in order: the same figures, bit for bit, as adding each in turn
        (Welford's update, one value after another), in one call."""
        if not values:
            return
        sketch = self.sketch
        if sketch is None:
            sketch = self.sketch = QuantileSketch()
        n, total, mean, m2 = sketch.count, self.sum, self.mean, self.m2
        for value in values:
            n += 1
            total += value
            delta = value - mean
            mean += delta / n
            m2 += delta * (value - mean)
        self.sum, self.mean, self.m2 = total, mean, m2
        sketch.extend(values)

    def merge(self, other: Aggregate, buckets: Callable[[], Buckets] | None = None) -> None:
        """Add ``other`` into this aggregate (``other`` is unchanged); ``buckets``: its
        sketch's buckets, when the caller keeps them (``QuantileSketch.merge``)."""
        self.count += other.count
        self.errors += other.errors
        if other.sketch is None:
            return
        n_a, n_b = self.values, other.values
        if n_a == 0:  # taken as they are: a copy is exact
            self.mean, self.m2, self.sum = other.mean, other.m2, self.sum + other.sum
        else:
            n = n_a + n_b
            delta = other.mean - self.mean
            self.mean += delta * n_b / n
            self.m2 += other.m2 + delta * delta * n_a * n_b / n
            self.sum += other.sum
        if self.sketch is None:
            self.sketch = QuantileSketch()
        self.sketch.merge(other.sketch, buckets)

    def copy(self) -> Aggregate:
        out = Aggregate()
        out.merge(self)
        return out

    @property
    def error_rate(self) -> float:
        return self.errors / self.count if self.count else 0.0

    @property
    def stddev(self) -> float | None:
        """Population standard deviation of the values; None without values."""
        n = self.values
        return math.sqrt(max(self.m2, 0.0) / n) if n else None

    def summary(self) -> dict[str, Any]:
        """The figures a window reports for this series (``streams.figures``)."""
        count, errors, *rest = self.figures()
        # In streams.figures' order: error_rate is the third.
        return dict(zip(NAMES, (count, errors, self.error_rate, *rest), strict=True))

    def figures(self) -> tuple[Any, ...]:
        """:meth:`summary`'s values but ``error_rate``, in their order: what a closed
        window's record is made of (100,000 of them a minute at 100,000 series)."""
        sketch = self.sketch
        if sketch is None or not sketch.count:
            return (self.count, self.errors, 0, self.sum, None, None, None, None,
                    *_NO_QUANTILES)  # fmt: skip
        return (
            self.count, self.errors, sketch.count, self.sum, self.mean, sketch.min,
            sketch.max, self.stddev, *sketch.quantiles(QUANTILES),
        )  # fmt: skip

    # -- JSON-safe form --------------------------------------------------------------
    def to_list(self) -> list[Any]:
        sketch = self.sketch.to_list() if self.sketch is not None else None
        return [self.count, self.errors, self.sum, self.mean, self.m2, sketch]

    def load(self, data: list[Any]) -> None:
        """Set this (empty) aggregate from :meth:`to_list`'s form."""
        self.count, self.errors, self.sum, self.mean, self.m2, sketch = data
        self.sketch = QuantileSketch.from_list(sketch) if sketch is not None else None

    @classmethod
    def from_list(cls, data: list[Any]) -> Aggregate:
        a = cls()
        a.load(data)
        return a
