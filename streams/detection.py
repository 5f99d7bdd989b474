"""Online anomaly detectors behind one small protocol, with JSON-safe state.

Every detector watches one signal (a sequence of values per series) and has two verbs,
as in River: ``score_one(x, at)`` (how anomalous ``x`` is, in [0, 1], before learning it)
and ``learn_one(x, at)``, where ``at`` is the value's event time in ms (None when there is
none; only seasonal detectors use it). ``to_json()`` / ``restore(data)`` carry the state
as plain data (never pickled). A value that is not finite is scored 0 and not learned.

- :class:`GaussianDetector`: how far a value lies from the recent level: a Gaussian over
  the last values, kept as a few River ``stats.Var`` blocks (:class:`RollingMoments`).
- :class:`SeasonalDetector`: how far a value lies from what this series usually does at
  this hour of the day (a mean and spread per hour, exponentially weighted).
- :class:`MaxDetector`: the highest score of several detectors, each learning every value.
- :class:`AnomalyLikelihood`: wraps a detector and turns its raw scores into the
  probability that the recent scores are unusual for this series (Numenta's anomaly
  likelihood: a short-term mean of raw scores against their long-term distribution), so
  that one threshold fits every series.

:func:`default_detector` is the likelihood of the higher of the seasonal and the recent-level
scores. It scored 66.3 (standard profile) on the 35 NAB files of ``bench/nab.py``; see the
README for how it was chosen and what it scores on each half of the files.

>>> d = AnomalyLikelihood(GaussianDetector(window_size=100, grace_period=10))
>>> scores = []
>>> for i in range(300):
...     x = 10.0 + (i % 7) * 0.1 if i != 250 else 90.0
...     scores.append(d.score_one(x)); d.learn_one(x)
>>> max(range(300), key=scores.__getitem__) in range(250, 260)
True
"""

from __future__ import annotations

import collections
import math
from collections.abc import Sequence
from typing import Any, Protocol

from river import stats

HOUR_MS = 3_600_000


class Detector(Protocol):
    kind: str

    def score_one(self, x: float, at: int | None = None) -> float: ...

    def learn_one(self, x: float, at: int | None = None) -> None: ...

    def to_json(self) -> dict[str, Any]: ...


def _tail(z: float) -> float:
    """``2 * |cdf(z) - 1/2|`` of a standard Gaussian: 0 at the mean, 1 far in a tail."""
    return abs(math.erf(z / math.sqrt(2)))


def _learnable(x: float) -> bool:
    """Finite and small enough that squares of differences stay finite: a value beyond
    1e100 is scored (as far out) but never learned, so it cannot poison a model."""
    return math.isfinite(x) and abs(x) < 1e100


def _spread_floor(mu: float) -> float:
    # A flat stretch has no spread: without a floor, any wiggle after it would score 1.
    return 1e-3 * abs(mu) + 1e-9


class RollingMoments:
    """Mean and variance of roughly the last ``size`` values, in ``BLOCKS`` pieces.

    River's rolling statistics keep every value of the window to revert it later: 500
    floats of state per series. Here the window is ``blocks`` River ``stats.Var`` summaries
    of ``size / BLOCKS`` values each (count, mean, variance), merged with Chan's formula,
    so the state is three numbers a block; the window covers ``size - size / BLOCKS`` to
    ``size`` values.
    """

    BLOCKS = 20

    def __init__(self, size: int) -> None:
        self.size = size
        self.block = max(1, size // self.BLOCKS)
        self.blocks = max(1, size // self.block)
        self._done: collections.deque[stats.Var] = collections.deque()
        self._current = stats.Var(ddof=0)
        self._total = stats.Var(ddof=0)

    @property
    def n(self) -> int:
        return int(self._total.n)

    @property
    def mean(self) -> float:
        return self._total.mean.get()

    @property
    def var(self) -> float:
        """The sample variance (ddof 1, as River's ``GaussianScorer``)."""
        n = self._total.n
        return max(self._total.get() * n / (n - 1), 0.0) if n > 1 else 0.0

    def update(self, x: float) -> None:
        self._current.update(x)
        self._total.update(x)
        if self._current.n >= self.block:
            self._done.append(self._current)
            self._current = stats.Var(ddof=0)
            if len(self._done) >= self.blocks:
                self._done.popleft()
                self._total = self._sum()  # re-summed, not subtracted: no drift

    def _sum(self) -> stats.Var:
        total = stats.Var(ddof=0)
        for part in (*self._done, self._current):
            if part.n:
                total += part
        return total

    def to_json(self) -> dict[str, Any]:
        # The running total too: re-summing the parts would differ in the last bits.
        parts = [*self._done, self._current, self._total]
        return {"size": self.size, "parts": [[p.n, p.mean.get(), p.get()] for p in parts]}

    @classmethod
    def restore(cls, data: dict[str, Any]) -> RollingMoments:
        m = cls(data["size"])
        parts = [stats.Var._from_state(n, mu, var, ddof=0) for n, mu, var in data["parts"]]
        *done, m._current, m._total = parts
        m._done.extend(done)
        return m


class GaussianDetector:
    """How far ``x`` lies in the tails of a Gaussian fitted to the last ``window_size``
    values (as River's ``GaussianScorer``, with a compact window: :class:`RollingMoments`).
    """

    kind = "gaussian"

    def __init__(self, *, window_size: int = 500, grace_period: int = 30) -> None:
        if window_size < 2 or grace_period < 1:
            raise ValueError("window_size must be >= 2 and grace_period >= 1")
        self.window_size = window_size
        self.grace_period = grace_period
        self._moments = RollingMoments(window_size)

    def score_one(self, x: float, at: int | None = None) -> float:
        """River's own scorer gives 1.0 to every value of a constant series (zero spread),
        hence the floored spread here."""
        m = self._moments
        if not math.isfinite(x) or m.n < self.grace_period:
            return 0.0
        mu = m.mean
        return _tail((x - mu) / max(math.sqrt(m.var), _spread_floor(mu)))

    def learn_one(self, x: float, at: int | None = None) -> None:
        if _learnable(x):
            self._moments.update(x)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "window_size": self.window_size,
            "grace_period": self.grace_period,
            "moments": self._moments.to_json(),
        }

    @classmethod
    def restore(cls, data: dict[str, Any]) -> GaussianDetector:
        d = cls(window_size=data["window_size"], grace_period=data["grace_period"])
        d._moments = RollingMoments.restore(data["moments"])
        return d


class SeasonalDetector:
    """How far ``x`` lies from what the series usually does in this part of its cycle.

    Time is cut into ``buckets`` slots of ``bucket_ms`` that repeat (24 hours by default:
    hour of the day; 168 makes it hour of the week). Each slot keeps an exponentially
    weighted mean and variance of its values (``alpha`` per value, an exact mean for the
    first ``1/alpha`` values); the score is the Gaussian tail of ``x`` in its slot, 0 until
    the slot saw ``grace`` values (a spread from fewer is too narrow). Without ``at`` every
    value falls in slot 0, which makes it a plain exponentially weighted Gaussian.

    The state is three numbers per slot. On the NAB files, hour of the week scored lower
    than hour of the day: each slot learns seven times more slowly.

    >>> d = SeasonalDetector()
    >>> for day in range(14):  # busy from 09:00 to 17:00, quiet otherwise
    ...     for hour in range(24):
    ...         x = 100.0 + day if 9 <= hour < 17 else 10.0 + day
    ...         d.learn_one(x, at=(day * 24 + hour) * HOUR_MS)
    >>> noon, night = (14 * 24 + 12) * HOUR_MS, (14 * 24 + 3) * HOUR_MS
    >>> d.score_one(100.0, at=noon) < 0.99 < d.score_one(100.0, at=night)
    True
    """

    kind = "seasonal"

    def __init__(
        self, *, buckets: int = 24, bucket_ms: int = HOUR_MS, alpha: float = 0.05, grace: int = 10
    ) -> None:
        if buckets < 1 or bucket_ms < 1 or not 0 < alpha <= 1 or grace < 1:
            raise ValueError("buckets, bucket_ms and grace must be >= 1 and alpha in (0, 1]")
        self.buckets = buckets
        self.bucket_ms = bucket_ms
        self.alpha = alpha
        self.grace = grace
        self._n = [0] * buckets
        self._mean = [0.0] * buckets
        self._var = [0.0] * buckets

    def _slot(self, at: int | None) -> int:
        return 0 if at is None else (int(at) // self.bucket_ms) % self.buckets

    def score_one(self, x: float, at: int | None = None) -> float:
        b = self._slot(at)
        if not math.isfinite(x) or self._n[b] < self.grace:
            return 0.0
        mu = self._mean[b]
        return _tail((x - mu) / max(math.sqrt(self._var[b]), _spread_floor(mu)))

    def learn_one(self, x: float, at: int | None = None) -> None:
        if not _learnable(x):
            return
        b = self._slot(at)
        n = self._n[b]
        if n == 0:
            self._mean[b], self._var[b] = x, 0.0
        else:
            a = max(self.alpha, 1.0 / (n + 1))
            d = x - self._mean[b]
            self._mean[b] += a * d
            self._var[b] = (1 - a) * (self._var[b] + a * d * d)
        self._n[b] = n + 1

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "buckets": self.buckets,
            "bucket_ms": self.bucket_ms,
            "alpha": self.alpha,
            "grace": self.grace,
            "n": list(self._n),
            "mean": list(self._mean),
            "var": list(self._var),
        }

    @classmethod
    def restore(cls, data: dict[str, Any]) -> SeasonalDetector:
        d = cls(
            buckets=data["buckets"],
            bucket_ms=data["bucket_ms"],
            alpha=data["alpha"],
            grace=data["grace"],
        )
        if not len(data["n"]) == len(data["mean"]) == len(data["var"]) == d.buckets:
            raise ValueError(f"a seasonal state needs {d.buckets} slots in n, mean and var")
        d._n, d._mean, d._var = list(data["n"]), list(data["mean"]), list(data["var"])
        return d


class MaxDetector:
    """The highest score of ``detectors``; every one of them learns every value."""

    kind = "max"

    def __init__(self, detectors: Sequence[Detector]) -> None:
        if not detectors:
            raise ValueError("MaxDetector needs at least one detector")
        self.detectors = list(detectors)

    def score_one(self, x: float, at: int | None = None) -> float:
        return max(d.score_one(x, at) for d in self.detectors)

    def learn_one(self, x: float, at: int | None = None) -> None:
        for d in self.detectors:
            d.learn_one(x, at)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "detectors": [d.to_json() for d in self.detectors]}

    @classmethod
    def restore(cls, data: dict[str, Any]) -> MaxDetector:
        return cls([restore(d) for d in data["detectors"]])


class AnomalyLikelihood:
    """The probability that the recent raw scores of ``detector`` are unusually high.

    Each raw score becomes a surprise, ``-log10(1 - score)`` (capped at 12), so a value
    deep in a tail weighs far more than many middling ones. The mean surprise of the last
    ``short`` steps is compared with the distribution of that same mean over the last
    ``history`` steps; the result is ``P(Z <= z)`` of its z-score (0.5 for an ordinary
    moment), 0 until ``grace`` steps were seen.
    """

    kind = "likelihood"

    def __init__(
        self, detector: Detector, *, history: int = 1000, short: int = 10, grace: int = 100
    ) -> None:
        if history < 2 or short < 1 or grace < 0:
            raise ValueError("history must be >= 2, short >= 1 and grace >= 0")
        self.detector = detector
        self.history = history
        self.short = short
        self.grace = grace
        #: Short-term mean surprises, over ``history`` steps; the last ``short`` surprises.
        self._history = RollingMoments(history)
        self._recent: collections.deque[float] = collections.deque(maxlen=short)
        #: (x, at, surprise, short mean) of the value scored and not learned yet.
        self._last: tuple[float, int | None, float, float] | None = None

    def score_one(self, x: float, at: int | None = None) -> float:
        surprise = _surprise(self.detector.score_one(x, at))
        current = self._short_mean(surprise)
        self._last = (x, at, surprise, current)
        history = self._history
        if history.n < max(self.grace, 2):
            return 0.0
        z = (current - history.mean) / math.sqrt(max(history.var, 1e-6))
        return 0.5 * math.erfc(-z / math.sqrt(2))  # P(Z <= z): high when z is large

    def _short_mean(self, surprise: float) -> float:
        """The mean of the last ``short`` surprises, ``surprise`` being the newest."""
        recent = self._recent
        if len(recent) < self.short:
            return (sum(recent) + surprise) / (len(recent) + 1)
        return (sum(recent) - recent[0] + surprise) / self.short

    def learn_one(self, x: float, at: int | None = None) -> None:
        if math.isfinite(x):
            last = self._last
            if last is not None and last[0] == x and last[1] == at:  # scored just before
                surprise, current = last[2], last[3]
            else:
                surprise = _surprise(self.detector.score_one(x, at))
                current = self._short_mean(surprise)
            self._recent.append(surprise)
            self._history.update(current)
        self._last = None
        self.detector.learn_one(x, at)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "history": self.history,
            "short": self.short,
            "grace": self.grace,
            "history_moments": self._history.to_json(),
            "recent": list(self._recent),
            "detector": self.detector.to_json(),
        }

    @classmethod
    def restore(cls, data: dict[str, Any]) -> AnomalyLikelihood:
        d = cls(
            restore(data["detector"]),
            history=data["history"],
            short=data["short"],
            grace=data["grace"],
        )
        d._history = RollingMoments.restore(data["history_moments"])
        d._recent.extend(data["recent"])
        return d


def _surprise(score: float) -> float:
    return -math.log10(max(1.0 - score, 1e-12))


_KINDS: dict[str, Any] = {
    c.kind: c for c in (GaussianDetector, SeasonalDetector, MaxDetector, AnomalyLikelihood)
}


def default_detector() -> Detector:
    """The detector of ``[[detector]]`` rules and of ``vigil backtest``: the likelihood of
    the higher of two raw scores, the value against its hour of the day and against the
    last 500 values, averaged over the last 20 steps."""
    raw = MaxDetector([SeasonalDetector(), GaussianDetector(window_size=500, grace_period=30)])
    return AnomalyLikelihood(raw, history=1000, short=20, grace=100)


def restore(data: dict[str, Any]) -> Detector:
    """A detector from its :meth:`to_json` form."""
    kind = data.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"unknown detector kind {kind!r}; expected one of {sorted(_KINDS)}")
    return _KINDS[kind].restore(data)  # type: ignore[no-any-return]
