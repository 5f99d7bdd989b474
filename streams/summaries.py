"""Compact summaries of a stream of numbers, with JSON-safe state: what detectors keep
instead of the values themselves.

- :class:`RollingMoments`: mean and variance of roughly the last ``size`` values, as a
  few blocks of River's ``stats.Var`` arithmetic on a flat array.
- :class:`TailProbability`: how rare a value of a statistic is in its own recent history,
  with a fitted tail beyond what was seen.
"""

from __future__ import annotations

import array
import functools
import math
from typing import Any, ClassVar

from streams.packing import pack, unpack


def clip(value: float, most: float) -> float:
    """``value`` within ``[-most, most]`` (Huber's clip)."""
    return most if value > most else -most if value < -most else value


# Remembered: a series' gaps mostly repeat, and a model asks once a value in each of up
# to four detectors; the power took 0.34 µs a call, a remembered gap 0.09 (scratch runs).
@functools.lru_cache(maxsize=4096)
def visit_rate(rate: float, share: float, gap_ms: int, visit_ms: int) -> float:
    """The lower of ``rate`` a value and what keeps a visit of ``visit_ms`` (an hour slot,
    a day) to at most ``share`` of its mean: ``1 - (1 - share) ** (gap / visit)``, the gap
    since the value before within ``[0, visit_ms]``."""
    part = min(max(gap_ms, 0), visit_ms) / visit_ms
    bound: float = 1.0 - (1.0 - share) ** part
    return min(rate, bound)


def _whole(n: float) -> float | int:
    """``n`` as an int where it is a whole number (shorter in JSON, the same value)."""
    return int(n) if n.is_integer() else n


class RollingMoments:
    """Mean and variance of roughly the last ``size`` values, in ``BLOCKS`` pieces.

    River's rolling statistics keep every value of the window to revert it later: 500
    floats of state per series. Here the window is ``blocks`` summaries of ``size /
    BLOCKS`` values each (count, mean, sum of squared deviations), merged with Chan's
    formula, so the state is three numbers a block; the window covers ``size - size /
    BLOCKS`` to ``size`` values.

    The blocks are a flat ``array('d')``, not River ``stats.Var`` objects: a worker keeps
    three of these per series a detector watches, and 22 ``Var`` objects (each with its
    ``Mean``) took about 6 KB of memory where the array takes 0.5. Each update and merge
    is River's own arithmetic (``Var.update``, ``Var.__iadd__``, ``Mean.__iadd__``), in
    its order, so the figures are the same to the last bit
    (``tests/unit/test_detection.py`` checks it against ``stats.Var``).
    """

    BLOCKS: ClassVar[int] = 20
    #: Numbers ahead of the finished blocks in the state: the open block's and the
    #: running total's n, mean and S.
    HEAD: ClassVar[int] = 6
    __slots__ = ("_state", "block", "blocks", "size")

    def __init__(self, size: int) -> None:
        self.size = size
        self.block = max(1, size // self.BLOCKS)
        self.blocks = max(1, size // self.block)
        #: One flat array: the block being filled and the running total of the window
        #: (n, mean, S each: ``HEAD`` numbers), then the finished blocks, oldest first
        #: (n, mean, S each). One object, not a list of six floats beside an array: a
        #: worker keeps three of these per series a detector watches, and a default
        #: model held 408 bytes less after 10 values, 360 after 2,000
        #: (``bench.worker_core``'s model memory, measured change by change). Made from a
        #: list, not from bytes: sized exactly, where bytes go through a resize that
        #: leaves room for three more numbers, and the array grows from there in
        #: other steps (a model held 144 bytes less after 1,000 values or more, up to 72
        #: less before, 24 more at 40).
        self._state = array.array("d", [0.0] * self.HEAD)

    @property
    def n(self) -> int:
        return int(self._state[3])

    @property
    def mean(self) -> float:
        return self._state[4]

    @property
    def var(self) -> float:
        """The sample variance (ddof 1, as River's ``GaussianScorer``)."""
        p = self._state
        n, s = p[3], p[5]
        if n <= 1:
            return 0.0
        return max(s / n * n / (n - 1), 0.0)  # River's get() (ddof 0), then rescaled

    def update(self, x: float) -> None:
        p = self._state
        # River's Var.update with w = 1: Mean.update, then S += (x - old) * (x - new).
        n = p[0] + 1.0
        old = p[1]
        new = old + 1.0 / n * (x - old)
        p[0], p[1], p[2] = n, new, p[2] + (x - old) * (x - new)
        n = p[3] + 1.0
        old = p[4]
        new = old + 1.0 / n * (x - old)
        p[3], p[4], p[5] = n, new, p[5] + (x - old) * (x - new)
        if p[0] >= self.block:
            p.extend(p[:3])
            p[0] = p[1] = p[2] = 0.0
            if len(p) - self.HEAD >= 3 * self.blocks:
                del p[self.HEAD : self.HEAD + 3]
                p[3:6] = array.array("d", self._sum())  # re-summed, not subtracted: no drift

    def _sum(self) -> list[float]:
        """The finished blocks and the open one, merged in order from an empty total."""
        parts = self._state[self.HEAD :].tolist() + self._state[:3].tolist()
        n = mean = s = 0.0
        for i in range(0, len(parts), 3):
            on, om, os = parts[i], parts[i + 1], parts[i + 2]
            if not on:
                continue
            s = s + os + (mean - om) ** 2 * n * on / (n + on)  # Var.__iadd__
            old_n = n
            n += on
            mean = (old_n * mean + on * om) / n  # Mean.__iadd__
        return [n, mean, s]

    def parts(self) -> list[tuple[float, float, float]]:
        """Count, mean and variance (ddof 0) of each block, the open one and the total:
        River's ``Var`` of each, as ``(n, mean.get(), get())``."""
        flat = self._in_order()
        return [
            (n, mean, s / n if n > 0 else 0.0)
            for n, mean, s in zip(flat[0::3], flat[1::3], flat[2::3], strict=True)
        ]

    def _in_order(self) -> array.array[float]:
        """Count, mean and sum of squared deviations of each block, in order."""
        return self._state[self.HEAD :] + self._state[: self.HEAD]

    def to_json(self) -> dict[str, Any]:
        # The running total too: re-summing the parts would differ in the last bits. A
        # count is written as the whole number it is ("25", not "25.0"); the means and
        # sums packed (``streams.packing``), as they are: a restored window is this one
        # to the bit (a variance written as S / n came back as n * (S / n)).
        flat = self._in_order()
        return {
            "size": self.size,
            "counts": [_whole(n) for n in flat[0::3]],
            "means": pack(flat[1::3]),
            "sums": pack(flat[2::3]),
        }

    @classmethod
    def restore(cls, data: dict[str, Any]) -> RollingMoments:
        """Also the ``parts`` lists of ``[count, mean, variance]`` written before packing."""
        if "parts" in data:
            parts = data["parts"]
            counts = [float(n) for n, _, _ in parts]
            means = array.array("d", (mean for _, mean, _ in parts))
            sums = array.array("d", (n * var for n, _, var in parts))
        else:
            counts, means, sums = data["counts"], unpack(data["means"]), unpack(data["sums"])
        if not len(counts) == len(means) == len(sums):
            raise ValueError("a moments state needs as many means and sums as counts")
        flat = array.array("d", bytes(24 * len(counts)))
        flat[0::3], flat[1::3], flat[2::3] = array.array("d", counts), means, sums
        m = cls(data["size"])
        m._state = flat[-cls.HEAD :] + flat[: -cls.HEAD]
        return m


class TailProbability:
    """How rare a value of a nonnegative statistic is in its own recent history.

    The history is a histogram of ``bins`` log-spaced bins over ``[low, high]`` (plus one
    below and one above), its weights decaying by ``1 - 1/history`` a step (O(1): the new
    value's weight grows instead, renormalised now and then). :meth:`sf` is
    ``P(S >= s)``: read off the histogram up to its ``1 - tail`` quantile ``u``, and past
    ``u`` from a generalised Pareto tail fitted to the excesses over ``u`` by moments
    (shape at least 0: a tail is never taken to end), so a value beyond everything seen
    still gets a probability below ``tail``, smaller the further out it is. This is the
    peaks-over-threshold method of Siffer et al. (KDD 2017) on a compact, decaying state.

    >>> t = TailProbability(history=1000)
    >>> for i in range(2000):
    ...     t.add(1.0 + (i * 7919 % 1000) / 1000)  # spread evenly over [1, 2)
    >>> 0.5 < t.sf(1.5) < 0.6  # within the history: read off the bins (about 20% wide)
    True
    >>> t.sf(2.5) < 0.01, t.sf(4.0) < 1e-5  # past everything seen: the fitted tail
    (True, True)
    """

    __slots__ = (
        "_counts",
        "_growth",
        "_total",
        "_weight",
        "_width",
        "bins",
        "high",
        "history",
        "low",
        "tail",
    )

    def __init__(
        self,
        *,
        history: int = 1000,
        tail: float = 0.05,
        low: float = 1e-3,
        high: float = 16.0,
        bins: int = 48,
    ) -> None:
        if history < 2 or not 0 < tail < 1 or not 0 < low < high or bins < 2:
            raise ValueError("history >= 2, tail in (0, 1), 0 < low < high and bins >= 2")
        self.history, self.tail, self.low, self.high, self.bins = history, tail, low, high, bins
        self._width = math.log(high / low) / bins
        self._growth = 1.0 / (1.0 - 1.0 / history)
        self._weight = 1.0
        self._counts = array.array("d", [0.0] * (bins + 2))  # 8 bytes a bin, not 32
        self._total = 0.0

    def _bin(self, s: float) -> int:
        if s < self.low:
            return 0
        if s >= self.high:
            return self.bins + 1
        return 1 + int(math.log(s / self.low) / self._width)

    def _edge(self, b: int) -> float:
        """The lower edge of bin ``b``."""
        return 0.0 if b == 0 else self.low * math.exp((b - 1) * self._width)

    def add(self, s: float) -> None:
        self._counts[self._bin(s)] += self._weight
        self._total += self._weight
        self._weight *= self._growth
        if self._weight > 1e100:
            self._counts = array.array("d", [c / self._weight for c in self._counts])
            self._total /= self._weight
            self._weight = 1.0

    def sf(self, s: float) -> float:
        """``P(S >= s)`` under the history (1 before anything was added)."""
        counts, total = self._counts, self._total
        if total <= 0:
            return 1.0
        above, top = 0.0, len(counts) - 1  # weight at or above bin ``top``
        for b in range(len(counts) - 1, -1, -1):
            above += counts[b]
            top = b
            if above >= self.tail * total:
                break
        u = self._edge(top)
        if s <= u:
            return min(1.0, sum(counts[self._bin(s) :]) / total)
        m1 = m2 = 0.0  # the excesses over u, from the bins' geometric middles
        for b in range(top, len(counts)):
            if counts[b]:
                mid = self.high if b > self.bins else self._edge(b) * math.exp(self._width / 2)
                e = max(mid - u, 0.0)
                m1 += counts[b] * e
                m2 += counts[b] * e * e
        m1, m2 = m1 / above, m2 / above
        var = max(m2 - m1 * m1, 1e-12)
        shape = min(0.5 * (1 - m1 * m1 / var), 0.5)
        excess = s - u
        if shape < 1e-6 or m1 <= 1e-9:  # a light tail: exponential, scale the mean excess
            return above / total * math.exp(-excess / max(m1, 1e-9))
        scale = 0.5 * m1 * (m1 * m1 / var + 1)
        tail: float = (1 + shape * excess / scale) ** (-1 / shape)
        return above / total * tail

    def to_json(self) -> dict[str, Any]:
        return {
            "history": self.history,
            "tail": self.tail,
            "low": self.low,
            "high": self.high,
            "bins": self.bins,
            "weight": self._weight,
            "total": self._total,
            "counts": list(self._counts),
        }

    @classmethod
    def restore(cls, data: dict[str, Any]) -> TailProbability:
        t = cls(
            history=data["history"],
            tail=data["tail"],
            low=data["low"],
            high=data["high"],
            bins=data["bins"],
        )
        if len(data["counts"]) != t.bins + 2:
            raise ValueError(f"a tail histogram of {t.bins} bins has {t.bins + 2} counts")
        t._weight, t._total = data["weight"], data["total"]
        t._counts = array.array("d", data["counts"])
        return t
