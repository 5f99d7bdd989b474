"""Online anomaly detectors behind one small protocol, with JSON-safe state.

Every detector watches one signal (a sequence of values per series) and has two verbs,
as in River: ``score_one(x)`` (how anomalous ``x`` is, in [0, 1], before learning it)
and ``learn_one(x)``. ``to_json()`` / ``restore(data)`` carry its state as plain data
(never pickled). A value that is not finite is scored 0 and not learned.

- :class:`GaussianDetector`: River's ``GaussianScorer`` over a rolling window; its state
  is the window itself, replayed on restore.
- :class:`AnomalyLikelihood`: wraps a detector and turns its raw scores into the
  probability that the recent scores are unusual for this series (Numenta's anomaly
  likelihood: a short-term mean of raw scores against their long-term distribution), so
  that one threshold fits every series.

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
from typing import Any, Protocol

from river import anomaly


class Detector(Protocol):
    kind: str

    def score_one(self, x: float) -> float: ...

    def learn_one(self, x: float) -> None: ...

    def to_json(self) -> dict[str, Any]: ...


class GaussianDetector:
    """How far ``x`` lies in the tails of a Gaussian fitted to the last values."""

    kind = "gaussian"

    def __init__(self, *, window_size: int = 500, grace_period: int = 30) -> None:
        if window_size < 2 or grace_period < 1:
            raise ValueError("window_size must be >= 2 and grace_period >= 1")
        self.window_size = window_size
        self.grace_period = grace_period
        self._model = anomaly.GaussianScorer(window_size=window_size, grace_period=grace_period)
        self._window: collections.deque[float] = collections.deque(maxlen=window_size)

    def score_one(self, x: float) -> float:
        """``2 * |cdf(x) - 1/2|`` of the window's Gaussian, its spread floored: River's own
        scorer gives 1.0 to every value of a constant series (zero spread)."""
        gaussian = self._model.gaussian
        if not math.isfinite(x) or gaussian.n_samples < self.grace_period:
            return 0.0
        mu, sigma = gaussian.mu, gaussian.sigma
        floor = 1e-3 * abs(mu) + 1e-9
        z = (x - mu) / max(sigma, floor) if math.isfinite(sigma) else 0.0
        return abs(math.erf(z / math.sqrt(2)))  # = 2 * |cdf(z) - 1/2|

    def learn_one(self, x: float) -> None:
        if math.isfinite(x):
            self._model.learn_one(None, x)
            self._window.append(x)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "window_size": self.window_size,
            "grace_period": self.grace_period,
            "window": list(self._window),
        }

    @classmethod
    def restore(cls, data: dict[str, Any]) -> GaussianDetector:
        d = cls(window_size=data["window_size"], grace_period=data["grace_period"])
        for x in data["window"]:
            d.learn_one(x)
        return d


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
        self, detector: GaussianDetector, *, history: int = 1000, short: int = 10, grace: int = 100
    ) -> None:
        self.detector = detector
        self.history = history
        self.short = short
        self.grace = grace
        #: Short-term mean surprises, over ``history`` steps; the last ``short`` surprises.
        self._raw: collections.deque[float] = collections.deque(maxlen=history)
        self._recent: collections.deque[float] = collections.deque(maxlen=max(short, 1))
        self._sum = self._sumsq = 0.0
        #: (x, surprise, short mean) of the value scored and not learned yet.
        self._last: tuple[float, float, float] | None = None

    def score_one(self, x: float) -> float:
        surprise = _surprise(self.detector.score_one(x))
        current = self._short_mean(surprise)
        self._last = (x, surprise, current)
        n = len(self._raw)
        if n < self.grace:
            return 0.0
        # Running sums: surprises are bounded (0..12), so they lose nothing that matters.
        mean = self._sum / n
        var = self._sumsq / n - mean * mean
        z = (current - mean) / math.sqrt(max(var, 1e-6))
        return 0.5 * math.erfc(-z / math.sqrt(2))  # P(Z <= z): high when z is large

    def _short_mean(self, surprise: float) -> float:
        recent = [*list(self._recent)[-(self.short - 1) :], surprise] if self.short > 1 else []
        return sum(recent) / len(recent) if recent else surprise

    def learn_one(self, x: float) -> None:
        if math.isfinite(x):
            last = self._last
            if last is not None and last[0] == x:  # scored just before: reuse it
                _, surprise, current = last
            else:
                surprise = _surprise(self.detector.score_one(x))
                current = self._short_mean(surprise)
            self._recent.append(surprise)
            self._push(current)
        self._last = None
        self.detector.learn_one(x)

    def _push(self, value: float) -> None:
        if len(self._raw) == self._raw.maxlen:
            old = self._raw[0]
            self._sum -= old
            self._sumsq -= old * old
        self._raw.append(value)
        self._sum += value
        self._sumsq += value * value

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "history": self.history,
            "short": self.short,
            "grace": self.grace,
            "raw": list(self._raw),
            "recent": list(self._recent),
            "detector": self.detector.to_json(),
        }

    @classmethod
    def restore(cls, data: dict[str, Any]) -> AnomalyLikelihood:
        d = cls(
            restore(data["detector"]),  # type: ignore[arg-type]
            history=data["history"],
            short=data["short"],
            grace=data["grace"],
        )
        for value in data["raw"]:
            d._push(value)
        d._recent.extend(data["recent"])
        return d


def _surprise(score: float) -> float:
    return -math.log10(max(1.0 - score, 1e-12))


_KINDS: dict[str, Any] = {
    GaussianDetector.kind: GaussianDetector,
    AnomalyLikelihood.kind: AnomalyLikelihood,
}


def default_detector() -> Detector:
    """The detector of ``[[detector]]`` rules and of ``vigil backtest``."""
    return AnomalyLikelihood(GaussianDetector(window_size=500, grace_period=30))


def restore(data: dict[str, Any]) -> Detector:
    """A detector from its :meth:`to_json` form."""
    kind = data.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"unknown detector kind {kind!r}; expected one of {sorted(_KINDS)}")
    return _KINDS[kind].restore(data)  # type: ignore[no-any-return]
