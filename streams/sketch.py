"""A mergeable quantile sketch with bounded relative error (DDSketch, log buckets).

A positive value ``x`` is counted in bucket ``k = ceil(log(x) / log(gamma))`` with
``gamma = (1 + a) / (1 - a)``; the bucket's representative ``2 * gamma**k / (gamma + 1)``
is within relative error ``a`` of every value in the bucket. Negative values use a mirror
store; values whose magnitude is below ``MIN_MAGNITUDE`` count as zero. Merging adds bucket
counts, so merging sketches of parts gives exactly the sketch of the whole, in any order
(Masson, Rim and Lee, "DDSketch", VLDB 2019).

The rank rule is the lower one: ``quantile(q)`` estimates the value at index
``floor(q * (n - 1))`` of the sorted values, and is clamped to the exact min and max
(so constant data comes back exact); ranks 0 and n - 1 give the min and max themselves.

>>> s = QuantileSketch()
>>> for v in range(1, 1001):
...     s.add(float(v))
>>> abs(s.quantile(0.5) - 500) / 500 <= 0.01
True
>>> t = QuantileSketch()
>>> t.add(-3.0); t.add(0.0)
>>> s.merge(t); s.count
1002
"""

from __future__ import annotations

import math
from typing import Any

#: Relative accuracy: every estimate is within 1% of the value at its rank.
RELATIVE_ACCURACY = 0.01
MIN_MAGNITUDE = 1e-9
#: A store holding more buckets collapses its lowest ones (magnitudes near zero first).
MAX_BUCKETS = 2048

_GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_INV_LOG_GAMMA = 1.0 / math.log(_GAMMA)


def bucket_of(magnitude: float) -> int:
    return math.ceil(math.log(magnitude) * _INV_LOG_GAMMA)


def bucket_value(key: int) -> float:
    """The representative of bucket ``key``: within RELATIVE_ACCURACY of its members."""
    return 2.0 * _GAMMA**key / (_GAMMA + 1.0)


class QuantileSketch:
    __slots__ = ("count", "max", "min", "negative", "positive", "zeros")

    def __init__(self) -> None:
        self.positive: dict[int, int] = {}
        self.negative: dict[int, int] = {}  # keyed by the bucket of -x
        self.zeros = 0
        self.count = 0
        self.min = math.inf
        self.max = -math.inf

    def add(self, value: float) -> None:
        """Count one finite value."""
        self.count += 1
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        if value > MIN_MAGNITUDE:
            store, magnitude = self.positive, value
        elif value < -MIN_MAGNITUDE:
            store, magnitude = self.negative, -value
        else:
            self.zeros += 1
            return
        key = math.ceil(math.log(magnitude) * _INV_LOG_GAMMA)
        store[key] = store.get(key, 0) + 1
        if len(store) > MAX_BUCKETS:
            _collapse(store)

    def merge(self, other: QuantileSketch) -> None:
        """Add ``other``'s counts to this sketch (``other`` is unchanged)."""
        if not other.count:
            return
        self.count += other.count
        self.zeros += other.zeros
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        for mine, theirs in ((self.positive, other.positive), (self.negative, other.negative)):
            for key, n in theirs.items():
                mine[key] = mine.get(key, 0) + n
            if len(mine) > MAX_BUCKETS:
                _collapse(mine)

    def quantile(self, q: float) -> float | None:
        """The estimated value at rank ``floor(q * (count - 1))``; None when empty."""
        if not self.count:
            return None
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be within [0, 1], got {q}")
        rank = math.floor(q * (self.count - 1))
        if rank == 0 or rank == self.count - 1:  # the extremes are known exactly
            return self.min if rank == 0 else self.max
        seen = 0
        if self.negative:
            for key in sorted(self.negative, reverse=True):  # most negative first
                seen += self.negative[key]
                if seen > rank:
                    return self._clamp(-bucket_value(key))
        seen += self.zeros
        if seen > rank:
            return self._clamp(0.0)
        for key in sorted(self.positive):
            seen += self.positive[key]
            if seen > rank:
                return self._clamp(bucket_value(key))
        return self.max

    def quantiles(self, qs: tuple[float, ...]) -> list[float | None]:
        return [self.quantile(q) for q in qs]

    def _clamp(self, value: float) -> float:
        return min(max(value, self.min), self.max)

    # -- JSON-safe form: [zeros, min, max, [k, n, k, n, ...], [k, n, ...]] ---------------
    def to_list(self) -> list[Any]:
        return [
            self.zeros,
            self.min if self.count else None,
            self.max if self.count else None,
            [x for item in self.positive.items() for x in item],
            [x for item in self.negative.items() for x in item],
        ]

    @classmethod
    def from_list(cls, data: list[Any]) -> QuantileSketch:
        s = cls()
        s.zeros, lo, hi, pos, neg = data
        s.positive = dict(zip(pos[::2], pos[1::2], strict=True))
        s.negative = dict(zip(neg[::2], neg[1::2], strict=True))
        s.count = s.zeros + sum(s.positive.values()) + sum(s.negative.values())
        if s.count:
            s.min, s.max = lo, hi
        return s


def _collapse(store: dict[int, int]) -> None:
    """Fold the lowest buckets into one so that at most MAX_BUCKETS remain."""
    keys = sorted(store)
    excess = keys[: len(keys) - MAX_BUCKETS + 1]
    target = keys[len(excess)]
    store[target] += sum(store.pop(k) for k in excess)
