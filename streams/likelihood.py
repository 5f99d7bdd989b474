"""Numenta's anomaly likelihood over any detector's raw scores, so that one threshold
fits every series (:class:`AnomalyLikelihood`)."""

from __future__ import annotations

import array
import math
import statistics
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from streams.packing import pack, unpack
from streams.recurrence import DailyRecurrence
from streams.summaries import RollingMoments, TailProbability

#: A likelihood at or above this is unusual enough to alert on: the default threshold of
#: ``[[detector]]`` rules, and the score the rarity check maps ``rarity`` onto.
ALERT_SCORE = 0.9999
#: The z-score at which the Gaussian part of the likelihood reaches ``ALERT_SCORE`` (3.72).
ALERT_Z = statistics.NormalDist().inv_cdf(ALERT_SCORE)

if TYPE_CHECKING:
    from streams.detection import Detector


class AnomalyLikelihood:
    """The probability that the recent raw scores of ``detector`` are unusually high.

    Each raw score becomes a surprise, ``-log10(1 - score)`` (capped at 12), so a value
    deep in a tail weighs far more than many middling ones. The mean surprise of the last
    ``short`` steps is compared with the distribution of that same mean over the last
    ``history`` steps; the result is ``P(Z <= z)`` of its z-score (0.5 for an ordinary
    moment), 0 until ``grace`` steps were seen.

    Two options make one threshold hold on series of any cadence and tail:

    - ``span_ms``: the short mean covers about that much time instead of ``short`` steps
      (``span_ms`` over the series' usual step, an exponentially weighted mean of the log
      gaps between values, kept within 2 and ``short`` steps): 20 steps are 20 minutes of
      a minutely series but most of a day of an hourly one, where an incident of a few
      hours was averaged away.
    - ``rarity``: the z-score assumes the short means are Gaussian; on bursty, heavy-tailed
      series they are not, and it passes 0.9999 every few days. With ``rarity`` set, a
      score of 0.99 or more is capped by ``1 - p * (1 - ALERT_SCORE) / rarity``, where
      ``p`` is how often the short mean was at least this high in its own history
      (:class:`TailProbability`): ``ALERT_SCORE`` (0.9999) is then reached only when the
      short mean is also as rare as ``rarity``. Lower scores are left as they are.

    - ``chance``: both the z-score and the rarity check compare the short mean with the
      series' own past, and on a calm, regular series (a daily profile with a few percent
      of noise) that past is so quiet that a few middling surprises in a row read as
      unusual: hourly series alerted on surprises of 2 or 3, one in a hundred or a
      thousand, and six raw scores a value make them common. With ``chance`` set, a
      score of 0.99 or more is also capped by ``1 - p * (1 - ALERT_SCORE) / chance``,
      where ``p`` (:func:`by_chance`) is the chance that the short mean's surprises come
      as high as they did if every raw score were a fair p-value: each one's p-value is
      multiplied by ``scores`` (the raw scores the highest is taken of, Bonferroni's
      correction), and the span's are combined by Fisher's method. ``ALERT_SCORE`` is
      then reached only when that chance is at most ``chance`` too.
    - ``discount_jobs``: a step its detector scored as scheduled work (a
      :class:`DailyRecurrence` capped it at a surprise of 2.5) is no evidence to the chance
      check, where its surprise counts as 0; the short mean keeps it. A capped step is
      still a surprise of 2.5, and a job of 7 to 9 such steps lifted a calm series' short
      mean past the threshold and passed the check: on the synthetic host gauges of the
      development seeds, scheduled jobs raised 34 false alarms with the check counting
      them, 20 without (scratch runs).

    Two more keep the history a record of the series' ordinary moments:

    - ``robust``: a step that scores ``ALERT_SCORE`` or more is learned into the mean
      and variance as at most ``mean + ALERT_Z * sd`` (``ALERT_Z`` = 3.72, where the
      z-score alone reaches that score). Otherwise an incident widens the spread the
      next one is measured against, for as long as the history holds it: on a synthetic
      road sensor (a scratch trace), a burst of noise the day after a jam scored at most
      0.988 against a spread of 1.2 (0.99990 against the robust history's 0.69). The
      rarity check's tail still learns the short mean as it was, so a series whose
      "incidents" recur is still capped by it.
    - ``warmup``: the history of the first ``warmup`` steps is set aside when they are
      over, and a new one starts. The raw detectors are warming up then, with narrow
      spreads, and their surprises are not what the series does; a long ``history``
      would remember them for weeks. Scores are read against the warm-up's history (which
      goes on learning) until the new one has as many steps (``grace``, if more), so a
      new series is scored as soon as before.
    """

    kind: ClassVar[str] = "likelihood"
    __slots__ = (
        "_at",
        "_history",
        "_jobs",
        "_last",
        "_learned",
        "_log_step",
        "_recent",
        "_tail",
        "_young",
        "chance",
        "detector",
        "discount_jobs",
        "grace",
        "history",
        "rarity",
        "robust",
        "scores",
        "short",
        "span_ms",
        "warmup",
    )
    #: Scores from here up are checked against the short mean's own tail (``rarity``)
    #: and against chance (``chance``).
    CHECKED: ClassVar[float] = 0.99

    def __init__(
        self,
        detector: Detector,
        *,
        history: int = 1000,
        short: int = 10,
        grace: int = 100,
        span_ms: int | None = None,
        rarity: float | None = None,
        robust: bool = False,
        warmup: int = 0,
        chance: float | None = None,
        scores: int = 1,
        discount_jobs: bool = False,
        moments: RollingMoments | None = None,
        tail: TailProbability | None = None,
    ) -> None:
        """``moments`` and ``tail``: the short means' history and its tail so far (a
        restored state); empty if None."""
        if history < 2 or short < 1 or grace < 0 or warmup < 0:
            raise ValueError("history must be >= 2, short >= 1, grace and warmup >= 0")
        if (span_ms is not None and span_ms < 1) or (rarity is not None and not 0 < rarity < 1):
            raise ValueError("span_ms must be >= 1 and rarity in (0, 1)")
        if (chance is not None and not 0 < chance < 1) or scores < 1:
            raise ValueError("chance must be in (0, 1) and scores >= 1")
        self.detector = detector
        self.history = history
        self.short = short
        self.grace = grace
        self.span_ms = span_ms
        self.rarity = rarity
        self.robust = robust
        self.warmup = warmup
        self.chance = chance
        self.scores = scores
        self.discount_jobs = discount_jobs
        #: Which of the last ``short`` steps were scheduled work (``discount_jobs``): bit
        #: ``i`` is the step ``i + 1`` steps before the newest; 0 without the option.
        self._jobs = 0
        #: Steps learned during the warm-up (it ends when this reaches ``warmup``).
        self._learned = 0
        #: Short-term mean surprises, over ``history`` steps; the last ``short`` surprises.
        self._history = moments if moments is not None else RollingMoments(history)
        #: An array, not a deque of floats: 20 surprises hold 289 bytes against 1,777
        #: (tracemalloc, 1,000 of each), in each of a worker's up to 80,000 models.
        self._recent = array.array("d")
        if tail is None and rarity is not None:
            tail = TailProbability(history=history)
        self._tail = tail
        #: The warm-up's history (moments and tail), scored against until the history
        #: after it has as many steps (``grace``, if more); None before and after.
        self._young: tuple[RollingMoments, TailProbability | None] | None = None
        #: The time of the last value learned, and the mean log of the gaps between values.
        self._at: int | None = None
        self._log_step: float | None = None
        #: (x, at, surprise, short mean, score, scheduled work) of the value scored and
        #: not learned yet.
        self._last: tuple[float, int | None, float, float, float, bool] | None = None

    def score_one(self, x: float, at: int | None = None) -> float:
        raw = self.detector.score_one(x, at)
        return self._scored(raw, x, at, self._scheduled())

    def _scheduled(self) -> bool:
        """Whether the detector scored the value it just scored as scheduled work, when
        that is no evidence to the chance check (``discount_jobs``)."""
        detector = self.detector
        return self.discount_jobs and isinstance(detector, DailyRecurrence) and detector.scheduled

    def _scored(self, raw: float, x: float, at: int | None, job: bool) -> float:
        """:meth:`score_one` of ``x``, its detector's score being ``raw`` (and ``job``
        whether it scored ``x`` as scheduled work, when that counts)."""
        surprise = _surprise(raw)
        current = self._short_mean(surprise)
        score = self._likelihood(current)
        # The history learns its own view of the step (robust), the chance check aside.
        self._last = (x, at, surprise, current, score, job)
        if self.chance is not None and score >= self.CHECKED:
            p = by_chance(self._evidence(surprise, job), self.scores)
            score = min(score, max(0.0, 1.0 - p * (1.0 - ALERT_SCORE) / self.chance))
        return score

    @property
    def unchecked(self) -> float:
        """The score of the value just scored before the chance check (what ``chance`` =
        None gives it): the score the history learns."""
        if self._last is None:
            raise ValueError("no value scored since the last one learned")
        return self._last[4]

    def _baseline(self) -> tuple[RollingMoments, TailProbability | None]:
        """The history scores are read against: the warm-up's, until the one after it
        has as many steps (``grace``, if more)."""
        return self._young if self._young is not None else (self._history, self._tail)

    def _likelihood(self, current: float) -> float:
        """The score of a short mean of ``current`` against the history."""
        moments, tail = self._baseline()
        if moments.n < max(self.grace, 2):
            return 0.0
        z = (current - moments.mean) / _spread(moments)
        score = 0.5 * math.erfc(-z / math.sqrt(2))  # P(Z <= z): high when z is large
        if tail is not None and score >= self.CHECKED:
            rarity = self.rarity or 1.0  # set whenever the tail is kept
            cap = 1.0 - tail.sf(current) * (1.0 - ALERT_SCORE) / rarity
            score = min(score, max(0.0, cap))
        return score

    def _ordinary(self, current: float, score: float) -> float:
        """What the mean and variance learn of a short mean of ``current`` that scored
        ``score``: itself, or with ``robust``, at most ``ALERT_Z`` spreads above the mean
        it was scored against when it scored an alert."""
        if not self.robust or score < ALERT_SCORE:
            return current
        moments, _ = self._baseline()
        return min(current, moments.mean + ALERT_Z * _spread(moments))

    def _remember(self, current: float, score: float) -> None:
        """Learn a short mean into the history (and the warm-up's, while it is scored
        against), and end the warm-up when it is over."""
        ordinary = self._ordinary(current, score)
        _learn(self._history, self._tail, ordinary, current)
        if self._young is not None:
            _learn(*self._young, ordinary, current)
        if self._learned < self.warmup:
            self._learned += 1
            if self._learned == self.warmup:  # set the warm-up's history aside
                self._young = (self._history, self._tail)
                self._history = RollingMoments(self.history)
                if self._tail is not None:
                    self._tail = TailProbability(history=self.history)
        elif self._young is not None and self._history.n >= max(self.grace, self.warmup, 2):
            self._young = None

    def _steps(self) -> int:
        """How many steps the short mean covers now."""
        if self.span_ms is None or self._log_step is None:
            return self.short
        return max(2, min(self.short, round(self.span_ms / math.exp(self._log_step))))

    def _short_mean(self, surprise: float) -> float:
        """The mean of the last :meth:`_steps` surprises, ``surprise`` being the newest."""
        k = self._steps()
        recent = self._recent
        if k >= self.short and len(recent) == self.short:
            return (sum(recent) - recent[0] + surprise) / self.short
        older = recent[len(recent) - min(k - 1, len(recent)) :]
        return (sum(older) + surprise) / (len(older) + 1)

    def _evidence(self, surprise: float, job: bool) -> list[float]:
        """The surprises the short mean covers, ``surprise`` (``job``: scheduled work)
        being the newest, each scheduled step's as 0 (``_jobs`` says which)."""
        recent = self._recent
        n = min(self._steps() - 1, len(recent))
        older = list(recent[len(recent) - n :])
        jobs = self._jobs
        if jobs:
            for i in range(n):  # older[-1] is bit 0
                if jobs >> i & 1:
                    older[n - 1 - i] = 0.0
        return [*older, 0.0 if job else surprise]

    def learn_one(self, x: float, at: int | None = None) -> None:
        if math.isfinite(x):
            last = self._last
            if last is None or last[0] != x or last[1] != at:  # not scored just before
                self.score_one(x, at)
        self._take_in(x, at)
        self.detector.learn_one(x, at)

    def rescore(
        self,
        raw: Sequence[float],
        values: Sequence[float],
        ats: Sequence[int | None],
        jobs: Sequence[bool] | None = None,
    ) -> tuple[list[float], list[float]]:
        """Each of ``values`` (at ``ats``) scored and learned in turn as by
        :meth:`score_one` and :meth:`learn_one`, its detector's score given by ``raw``
        instead of asked for (the detector is neither asked nor taught), and whether it
        scored each as scheduled work by ``jobs`` (``DailyRecurrence.scheduled``; needed
        when that counts, ``discount_jobs``): the scores, and the scores before the
        chance check (:attr:`unchecked`). ``bench.corpus`` runs the likelihoods of a
        grid over one raw detector's recorded scores so, in one loop here, not a call of
        each method a value."""
        counts = self.discount_jobs and isinstance(self.detector, DailyRecurrence)
        if counts and jobs is None:
            raise ValueError("a likelihood that discounts its detector's jobs needs them")
        scores, unchecked = [], []
        for i in range(len(values)):
            x, at = values[i], ats[i]
            job = counts and jobs is not None and jobs[i]
            scores.append(self._scored(raw[i], x, at, job))
            unchecked.append(self.unchecked)
            self._take_in(x, at)
        return scores, unchecked

    def _take_in(self, x: float, at: int | None) -> None:
        """What :meth:`learn_one` learns of ``x`` but its detector's part, ``x`` scored
        just before (when it is finite)."""
        if math.isfinite(x):
            last = self._last
            assert last is not None
            surprise, current, score = last[2], last[3], last[4]
            recent = self._recent
            if len(recent) == self.short:
                del recent[0]
            recent.append(surprise)
            if self.discount_jobs:
                self._jobs = (self._jobs << 1 | int(last[5])) & ((1 << self.short) - 1)
            self._remember(current, score)
        self._last = None
        if at is not None:
            if self._at is not None and at > self._at:
                gap = math.log(at - self._at)
                step = self._log_step
                self._log_step = gap if step is None else step + 0.05 * (gap - step)
            self._at = at

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "history": self.history,
            "short": self.short,
            "grace": self.grace,
            "span_ms": self.span_ms,
            "rarity": self.rarity,
            "robust": self.robust,
            "warmup": self.warmup,
            "chance": self.chance,
            "scores": self.scores,
            # One key for the option and its bits: a model's state is kept under 8 KB.
            "jobs": self._jobs if self.discount_jobs else None,
            "learned": self._learned,
            "history_moments": self._history.to_json(),
            "recent": pack(self._recent),
            "tail": self._tail.to_json() if self._tail is not None else None,
            "young": None
            if self._young is None
            else {
                "moments": self._young[0].to_json(),
                "tail": self._young[1].to_json() if self._young[1] is not None else None,
            },
            "at": self._at,
            "log_step": self._log_step,
            "detector": self.detector.to_json(),
        }

    @classmethod
    def restore(
        cls, data: dict[str, Any], inner: Callable[[dict[str, Any]], Detector]
    ) -> AnomalyLikelihood:
        """``inner`` restores the detector it wraps (``streams.detection.restore``, the
        registry of kinds, which imports this module). Also a state written before
        ``span_ms``, ``rarity``, ``robust``, ``warmup``, ``chance`` or ``discount_jobs``
        existed (each off), so a model saved by an older worker goes on scoring as it did."""
        tail = data.get("tail")
        d = cls(
            inner(data["detector"]),
            history=data["history"],
            short=data["short"],
            grace=data["grace"],
            span_ms=data.get("span_ms"),
            rarity=data.get("rarity"),
            robust=data.get("robust", False),
            warmup=data.get("warmup", 0),
            chance=data.get("chance"),
            scores=data.get("scores", 1),
            discount_jobs=data.get("jobs") is not None,
            moments=RollingMoments.restore(data["history_moments"]),
            tail=TailProbability.restore(tail) if tail is not None else None,
        )
        d._recent.extend(unpack(data["recent"])[-d.short :])
        d._at, d._log_step = data.get("at"), data.get("log_step")
        d._learned = data.get("learned", 0)
        d._jobs = data.get("jobs") or 0
        young = data.get("young")
        if young is not None:
            tail = young["tail"]
            d._young = (
                RollingMoments.restore(young["moments"]),
                TailProbability.restore(tail) if tail is not None else None,
            )
        return d


def _spread(moments: RollingMoments) -> float:
    """The short means' standard deviation, never below 0.001."""
    return math.sqrt(max(moments.var, 1e-6))


def _learn(
    moments: RollingMoments, tail: TailProbability | None, ordinary: float, current: float
) -> None:
    """One short mean into a history: ``ordinary`` (robust) into its moments, ``current``
    (as it was) into its tail."""
    moments.update(ordinary)
    if tail is not None:
        tail.add(current)


def by_chance(surprises: list[float], scores: int = 1) -> float:
    """The chance that ``surprises`` (each ``-log10`` of the highest of ``scores`` raw
    p-values) come as high as they did by chance: each p-value times ``scores``
    (Bonferroni's correction for taking the highest, at most 1), combined by Fisher's
    method (``-2 * sum(ln p)`` is chi-squared with ``2k`` degrees of freedom: the
    chance is ``exp(-t) * sum(t**j / j!)``, ``j < k``, with ``t = -sum(ln p)``).

    One value with a surprise of 4 is a chance of 1 in 10,000; three of 2 in a row, 1
    in 9,000; with six raw scores to pick from, a surprise of 2 is a p-value of 0.06,
    and three of them a chance of 1 in 100:

    >>> [round(by_chance(s, n), 5) for s, n in (([4.0], 1), ([2.0] * 3, 1), ([2.0] * 3, 6))]
    [0.0001, 0.00011, 0.00973]
    >>> by_chance([0.5, 0.1], 6)  # below the correction: no evidence at all
    1.0
    """
    correction = math.log10(scores)
    t = math.log(10) * sum(max(0.0, s - correction) for s in surprises)
    term = total = 1.0
    for j in range(1, len(surprises)):
        term *= t / j
        total += term
    return min(1.0, math.exp(-t) * total)


def _surprise(score: float) -> float:
    return -math.log10(max(1.0 - score, 1e-12))
