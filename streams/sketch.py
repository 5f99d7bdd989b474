"""A mergeable quantile sketch with bounded relative error (DDSketch, log buckets).

A positive value ``x`` is counted in bucket ``k = ceil(log(x) / log(gamma))`` with
``gamma = (1 + a) / (1 - a)``; the bucket's representative ``2 * gamma**k / (gamma + 1)``
is within relative error ``a`` of every value in the bucket. Negative values use a mirror
store; values whose magnitude is below ``MIN_MAGNITUDE`` count as zero. Merging adds bucket
counts, so merging sketches of parts gives exactly the sketch of the whole, in any order
(Masson, Rim and Lee, "DDSketch", VLDB 2019).

A sketch holding at most ``EXACT_MAX`` values keeps the values themselves (a compact
array: a quiet series' window costs little memory and reports exact quantiles); past that
it moves them into buckets. Both forms merge, and merging still equals one pass.

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
from array import array
from collections.abc import Callable, Iterable, Sequence
from typing import Any

#: Relative accuracy: every estimate is within 1% of the value at its rank.
RELATIVE_ACCURACY = 0.01
MIN_MAGNITUDE = 1e-9
#: A store holding more buckets collapses its lowest ones (magnitudes near zero first).
MAX_BUCKETS = 2048
#: Up to this many values are kept as they are (exact quantiles, less memory).
EXACT_MAX = 32

#: ``(zeros, positive, negative)``: the count of zeros and the counts by bucket key of
#: the positive values and of the magnitudes of the negative ones.
Buckets = tuple[int, dict[int, int], dict[int, int]]

_GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_INV_LOG_GAMMA = 1.0 / math.log(_GAMMA)


def bucket_value(key: int) -> float:
    """The representative of bucket ``key``: within RELATIVE_ACCURACY of its members."""
    return 2.0 * _GAMMA**key / (_GAMMA + 1.0)


class QuantileSketch:
    __slots__ = ("count", "exact", "max", "min", "negative", "positive", "zeros")

    def __init__(self) -> None:
        #: The values themselves while there are at most EXACT_MAX; None once bucketed.
        self.exact: array[float] | None = array("d")
        self.positive: dict[int, int] = _NO_BUCKETS
        self.negative: dict[int, int] = _NO_BUCKETS  # keyed by the bucket of -x
        self.zeros = 0
        self.count = 0
        self.min = math.inf
        self.max = -math.inf

    @classmethod
    def bucketed(cls) -> QuantileSketch:
        """An empty sketch that keeps buckets from the start: for a merge of parts that
        will hold more than EXACT_MAX values together (the same sketch as keeping their
        values first and bucketing them on the way)."""
        s = cls()
        s.exact = None
        s.positive, s.negative = {}, {}
        return s

    def add(self, value: float) -> None:
        """Count one finite value."""
        self.count += 1
        if value < self.min:
            self.min = value
        if value > self.max:
            self.max = value
        exact = self.exact
        if exact is not None:
            exact.append(value)
            if len(exact) > EXACT_MAX:
                self._bucket_all()
            return
        self._bucket(value)

    def extend(self, values: Sequence[float]) -> None:
        """Count each of ``values`` (finite), in order: the same sketch as :meth:`add` of
        each, its buckets in the same order, in one call (a pane's values, counted when
        the pane closes).

        >>> one, many = QuantileSketch(), QuantileSketch()
        >>> values = [float(v) for v in range(-40, 60)]
        >>> for v in values:
        ...     one.add(v)
        >>> many.extend(values[:20]); many.extend(values[20:])
        >>> many.to_list() == one.to_list() and many.count == one.count
        True
        """
        if not values:
            return
        self.count += len(values)
        low, high = min(values), max(values)
        if low < self.min:
            self.min = low
        if high > self.max:
            self.max = high
        exact = self.exact
        if exact is not None:
            exact.extend(values)
            if len(exact) > EXACT_MAX:
                self._bucket_all()
            return
        self.zeros += _count(values, self.positive, self.negative)

    def _bucket(self, value: float, n: int = 1) -> None:
        if value > MIN_MAGNITUDE:
            store, magnitude = self.positive, value
        elif value < -MIN_MAGNITUDE:
            store, magnitude = self.negative, -value
        else:
            self.zeros += n
            return
        key = math.ceil(math.log(magnitude) * _INV_LOG_GAMMA)
        store[key] = store.get(key, 0) + n
        if len(store) > MAX_BUCKETS:
            _collapse(store)

    def _bucket_all(self) -> None:
        """Move the exact values into buckets, for good."""
        values, self.exact = self.exact or (), None
        self.positive, self.negative = {}, {}
        self.zeros += _count(values, self.positive, self.negative)

    def merge(self, other: QuantileSketch, buckets: Callable[[], Buckets] | None = None) -> None:
        """Add ``other``'s values to this sketch (``other`` is unchanged).

        ``buckets``: gives ``other.buckets()``, kept by the caller (a closed pane that is
        merged into several windows): its exact values are then not bucketed again for
        each. Called only when the values go into buckets. The result is the same sketch
        either way, its buckets in the same order.
        """
        if not other.count:
            return
        self.count += other.count
        self.min = min(self.min, other.min)
        self.max = max(self.max, other.max)
        if self.exact is not None:
            if other.exact is not None and len(self.exact) + len(other.exact) <= EXACT_MAX:
                self.exact.extend(other.exact)
                return
            self._bucket_all()
        if other.exact is not None and buckets is None:
            for value in other.exact:
                self._bucket(value)
            return
        zeros, positive, negative = buckets() if buckets is not None else other.buckets()
        self.zeros += zeros
        for mine, theirs in ((self.positive, positive), (self.negative, negative)):
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
        return self.quantiles((q,))[0]

    def quantiles(self, qs: tuple[float, ...]) -> list[float | None]:
        """:meth:`quantile` of each of ``qs``, the buckets sorted and walked once.

        >>> s = QuantileSketch()
        >>> for v in range(-500, 1000):
        ...     s.add(float(v))
        >>> s.quantiles((0.99, 0.0, 0.5)) == [s.quantile(0.99), -500.0, s.quantile(0.5)]
        True
        """
        count = self.count
        if not count:
            return [None] * len(qs)
        if self.exact is not None:
            if count == 1:  # a quiet series' pane: most windows at 100,000 series
                return [self.exact[0]] * len(qs)
            ordered = sorted(self.exact)
            return [ordered[math.floor(q * (count - 1))] for q in qs]
        if any(not 0.0 <= q <= 1.0 for q in qs):
            raise ValueError(f"quantiles must be within [0, 1], got {qs}")
        ranks = [math.floor(q * (count - 1)) for q in qs]
        # The buckets from the most negative up (the negative store holds magnitudes);
        # the zeros as a bucket of their own (None).
        negative, positive = self.negative, self.positive
        descending, ascending = sorted(negative, reverse=True), sorted(positive)
        keys: list[int | None] = [*descending, None, *ascending]
        counts = [negative[k] for k in descending]
        counts.append(self.zeros)
        counts.extend([positive[k] for k in ascending])
        out: list[float | None] = [None] * len(qs)
        seen, place, last = 0, 0, len(keys)
        for i in sorted(range(len(ranks)), key=ranks.__getitem__):  # lowest rank first
            rank = ranks[i]
            if rank == 0 or rank == count - 1:  # the extremes are known exactly
                out[i] = self.min if rank == 0 else self.max
                continue
            while place < last and seen + counts[place] <= rank:
                seen += counts[place]
                place += 1
            if place == last:
                out[i] = self.max
                continue
            key = keys[place]
            if key is None:
                value = 0.0
            else:
                value = bucket_value(key) if place > len(negative) else -bucket_value(key)
            out[i] = self._clamp(value)
        return out

    def _clamp(self, value: float) -> float:
        return min(max(value, self.min), self.max)

    def buckets(self) -> Buckets:
        """``(zeros, positive, negative)`` bucket counts, exact values bucketed too.

        >>> s = QuantileSketch()
        >>> for v in (-2.0, 0.0, 1.0, 1.0, 3.0):
        ...     s.add(v)
        >>> s.buckets()
        (1, {0: 2, 55: 1}, {35: 1})
        """
        if self.exact is None:
            return self.zeros, self.positive, self.negative
        # Without a sketch to hold them: a window of a quiet series closes with a few
        # exact values, 100,000 of them a minute. A store left empty (a series never
        # negative) is the shared empty one: a closed pane keeps its buckets while its
        # windows are open, and an empty dict each took 6.4 MB at 100,000 series (a
        # scratch tracemalloc run of the processor, 600,000 events).
        positive, negative = dict[int, int](), dict[int, int]()
        zeros = _count(self.exact, positive, negative)
        return zeros, positive or _NO_BUCKETS, negative or _NO_BUCKETS

    # -- JSON-safe form: [zeros, min, max, [k, n, ...], [k, n, ...], exact values or null] --
    def to_list(self) -> list[Any]:
        exact = self.exact
        if exact is not None:  # no buckets yet: most sketches at 100,000 series
            count = self.count
            return [0, self.min if count else None, self.max if count else None, [], [],
                    exact.tolist()]  # fmt: skip
        return [
            self.zeros,
            self.min if self.count else None,
            self.max if self.count else None,
            [x for item in self.positive.items() for x in item],
            [x for item in self.negative.items() for x in item],
            self.exact.tolist() if self.exact is not None else None,
        ]

    @classmethod
    def from_list(cls, data: list[Any]) -> QuantileSketch:
        s = cls()
        zeros, lo, hi, pos, neg, exact = data
        if exact is not None:
            s.exact = array("d", exact)
            s.count = len(exact)
        else:
            s.exact = None
            s.zeros = zeros
            s.positive = dict(zip(pos[::2], pos[1::2], strict=True))
            s.negative = dict(zip(neg[::2], neg[1::2], strict=True))
            s.count = zeros + sum(s.positive.values()) + sum(s.negative.values())
        if s.count:
            s.min, s.max = lo, hi
        return s


#: The shared empty store of a sketch that still holds exact values, and of the buckets
#: of exact values none of which went there (never written).
_NO_BUCKETS: dict[int, int] = {}


def _count(values: Iterable[float], positive: dict[int, int], negative: dict[int, int]) -> int:
    """Count ``values`` in order into the stores of positive values and of negative
    values' magnitudes (what :meth:`QuantileSketch._bucket` does for each, in one loop,
    a store collapsing as it grows past MAX_BUCKETS); the number of zeros."""
    zeros = 0
    ceil, log = math.ceil, math.log
    for value in values:
        if value > MIN_MAGNITUDE:
            store, magnitude = positive, value
        elif value < -MIN_MAGNITUDE:
            store, magnitude = negative, -value
        else:
            zeros += 1
            continue
        key = ceil(log(magnitude) * _INV_LOG_GAMMA)
        store[key] = store.get(key, 0) + 1
        if len(store) > MAX_BUCKETS:
            _collapse(store)
    return zeros


def _collapse(store: dict[int, int]) -> None:
    """Fold the lowest buckets into one so that at most MAX_BUCKETS remain."""
    keys = sorted(store)
    excess = keys[: len(keys) - MAX_BUCKETS + 1]
    target = keys[len(excess)]
    store[target] += sum(store.pop(k) for k in excess)
