"""Online anomaly detectors behind one small protocol, with JSON-safe state.

Every detector watches one signal (a sequence of values per series) and has two verbs,
as in River: ``score_one(x, at)`` (how anomalous ``x`` is, in [0, 1], before learning it)
and ``learn_one(x, at)``, where ``at`` is the value's event time in ms (None when there is
none; seasonal detectors and the likelihood's time span use it). ``to_json()`` /
``restore(data)`` carry the state as plain data (never pickled; float arrays as base64
text, ``streams.packing``). A value that is not finite is scored 0 and not learned.

- :class:`GaussianDetector`: how far a value lies from the recent level: a Gaussian over
  the last values, in a few blocks of River's ``stats.Var`` sums (:class:`RollingMoments`).
- :class:`SeasonalDetector`: how far a value lies from what this series usually does at
  this hour of the day (a mean and spread per hour, exponentially weighted; Student's
  tail while an hour has few values).
- :class:`ForecastDetector`: how far a value lies from a one-step forecast, a level that
  follows the series plus what its hour of the day adds (additive Holt-Winters).
- :class:`LogView`: another detector over ``log(x + c)`` of a series never negative.
- :class:`RepeatDetector`: how rare the current run of equal values is for the series.
- :class:`MaxDetector`: the highest score of several detectors, each learning every value.
- :class:`DailyRecurrence` (``streams.recurrence``): another detector's score, capped where
  a surprise recurs at the same time of day on the last two days (scheduled work).
- :class:`AnomalyLikelihood` (``streams.likelihood``): wraps a detector and turns its raw
  scores into the probability that the recent scores are unusual for this series, so
  that one threshold fits every series.

:func:`default_detector` combines them; ``bench/nab.py`` evaluates it (per NAB category,
leaving one category out, and on a synthetic corpus) and the README gives its figures.

>>> d = AnomalyLikelihood(GaussianDetector(window_size=100, grace_period=10))
>>> scores = []
>>> for i in range(300):
...     x = 10.0 + (i % 7) * 0.1 if i != 250 else 90.0
...     scores.append(d.score_one(x)); d.learn_one(x)
>>> max(range(300), key=scores.__getitem__) in range(250, 260)
True
"""

from __future__ import annotations

import array
import math
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol

from streams import modelbase
from streams.likelihood import ALERT_SCORE, AnomalyLikelihood
from streams.packing import pack, unpack
from streams.recurrence import DailyRecurrence
from streams.summaries import RollingMoments, TailProbability, visit_rate
from streams.summaries import clip as _clip  # ``clip`` is also ForecastDetector's option
from streams.weekly import WeekOffsets

__all__ = [
    "HOUR_MS",
    "AnomalyLikelihood",
    "DailyRecurrence",
    "Detector",
    "ForecastDetector",
    "GaussianDetector",
    "LogView",
    "MaxDetector",
    "RepeatDetector",
    "RollingMoments",
    "SeasonalDetector",
    "TailProbability",
    "default_detector",
    "restore",
]

HOUR_MS = 3_600_000
#: A value's time where it came without one (event times in ms are never this low).
_NO_TIME = -(2**63)
#: A seasonal detector with more slots keeps all of them from the start (its index of
#: the slots seen holds a place in a byte).
_SPARSE_MAX = 255
#: The least probability a run of repeats is given (a score of at most 1 - 1e-6).
REPEAT_FLOOR = 1e-6
#: With ``robust``: a run this rare (a tail of 1 in 10,000, the likelihood's alert
#: score) is an incident. It scores for up to ``RARE_RUN_SPAN`` times the length it had
#: then (at 2 times, a road sensor's stuck run scored rare for 7 steps and its short
#: mean never reached an alert), and is learned up to ``RARE_RUN_LEARNED`` times it, so
#: a series whose new way is long runs is learned twice as far with each of them (up to
#: the length alone, a host's gauge at 0 between jobs kept alerting). The README has
#: the variants' figures (scratch runs of the development seeds).
RARE_RUN = ALERT_SCORE
RARE_RUN_SPAN = 4
RARE_RUN_LEARNED = 2
#: The chance check of the default (``AnomalyLikelihood``'s ``chance``): an alert needs
#: the short mean's surprises to be at most this likely by chance alone. Chosen from
#: 1e-2, 3e-3, 1e-3 and 1e-4 on the development seeds 1, 3, 5 and 7 and the shared NAB
#: files (scratch runs, standard / low-FP, false alarms): none 76.5 / 71.0, 508; 3e-3
#: 76.6 / 72.0, 426; 1e-3 76.6 / 72.4, 393 but realKnownCause 61.0 to 57.1; 1e-4 75.4.
#: ``bench.nab`` scores it on and off in its grid (``chance``).
CHANCE = 3e-3


class Detector(Protocol):
    kind: ClassVar[str]

    def score_one(self, x: float, at: int | None = None) -> float: ...

    def learn_one(self, x: float, at: int | None = None) -> None: ...

    def to_json(self) -> dict[str, Any]: ...


def _tail(z: float) -> float:
    """``2 * |cdf(z) - 1/2|`` of a standard Gaussian: 0 at the mean, 1 far in a tail."""
    return abs(math.erf(z / math.sqrt(2)))


def _student_tail(t: float, dof: float) -> float:
    """:func:`_tail` of a Student t with ``dof`` degrees of freedom (> 0), through
    Wallace's (1959) normal equivalent of ``t``. Against SciPy's ``t.sf`` from 0.5 to 7
    spreads, ``1 - score`` is within 7% of the exact tail at 9 degrees of freedom, 3% at
    20 and 0.3% at 100: a logarithm and a square root where the exact tail takes an
    incomplete beta function.

    >>> round(1 - _student_tail(4.0, 9), 5), round(1 - _tail(4.0), 5)  # t's: 0.00311
    (0.00316, 6e-05)
    """
    z = math.sqrt(dof * math.log1p(t * t / dof)) * (8 * dof + 1) / (8 * dof + 3)
    return _tail(z)


def _learnable(x: float) -> bool:
    """Finite and small enough that squares of differences stay finite: a value beyond
    1e100 is scored (as far out) but never learned, so it cannot poison a model."""
    return math.isfinite(x) and abs(x) < 1e100


def _spread_floor(mu: float, floor: float | None) -> float:
    """The least spread a value is measured against: ``floor`` where one is set (a log
    view's: :data:`LOG_FLOOR`), else 0.1% of the mean ``mu``, so that a change of less
    than 0.1% of a series' level never scores high, in any unit."""
    # A flat stretch has no spread: without a floor, any wiggle after it would score 1.
    return floor if floor is not None else 1e-3 * abs(mu) + 1e-9


#: The least spread of the detectors on a log view (:class:`LogView`): a change of 0.1%,
#: as the raw scale's floor is 0.1% of the mean. That floor taken of the logs (0.1% of
#: their mean) depended on the unit, since a log view's values are ``log(x + c)``: in
#: bytes (logs about 20) it was a change of 2%, near 1 next to none. The default's
#: alerts on two of the 30 synthetic files of seeds 1-3 (one a shape each) differed
#: when their values were multiplied by 1,000 (a scratch check); with this floor none
#: do (a test checks four of those files in three units).
LOG_FLOOR = 1e-3


def _checked_floor(floor: float | None) -> float | None:
    """``floor`` as a level detector's setting: None, or a spread above 0."""
    if floor is not None and not floor > 0:
        raise ValueError(f"a floor is a spread > 0, got {floor}")
    return floor


def _floor(floor: float | None) -> dict[str, float]:
    """A level detector's floor in its state, where it has one (states stay as before)."""
    return {"floor": floor} if floor is not None else {}


#: The highest score of the default's level detectors on the raw scale: a tail of 1e-7
#: (5.3 spreads). Their tails assume a Gaussian; on a heavy-tailed series (bursty counts)
#: an ordinary burst 20 spreads out scores 1 - 1e-12 there, the surprise of 12 values
#: in a row at 1 - 1e-1, and its short mean alerts on it. The log view, where such a
#: series is closer to a Gaussian, and the forecast are not capped.
RAW_HIGHEST = 1.0 - 1e-7
#: The raw cap of ``default_detector`` with ``calm``: a surprise of 3 at most. With the
#: day-of-week offsets and the runs' continuation, it took the development seeds' false
#: alarms from 524 to 417 (from 462 with the cap alone).
CALM_HIGHEST = 1.0 - 1e-3


def _highest(highest: float) -> dict[str, float]:
    """A level detector's cap in its state, where it has one (states stay as before)."""
    return {"highest": highest} if highest < 1.0 else {}


class GaussianDetector:
    """How far ``x`` lies in the tails of a Gaussian fitted to the last ``window_size``
    values (as River's ``GaussianScorer``, with a compact window: :class:`RollingMoments`),
    at most ``highest`` (:data:`RAW_HIGHEST` says why a score is capped).
    """

    kind: ClassVar[str] = "gaussian"
    __slots__ = ("_moments", "floor", "grace_period", "highest", "window_size")

    def __init__(
        self,
        *,
        window_size: int = 500,
        grace_period: int = 30,
        highest: float = 1.0,
        floor: float | None = None,
        moments: RollingMoments | None = None,
    ) -> None:
        """``floor``: the least spread (:func:`_spread_floor`); ``moments``: the window's
        figures so far (a restored state); empty if None."""
        if window_size < 2 or grace_period < 1 or not 0 < highest <= 1:
            raise ValueError("window_size must be >= 2, grace_period >= 1, highest in (0, 1]")
        self.window_size = window_size
        self.grace_period = grace_period
        self.highest = highest
        self.floor = _checked_floor(floor)
        self._moments = moments if moments is not None else RollingMoments(window_size)

    def score_one(self, x: float, at: int | None = None) -> float:
        """River's own scorer gives 1.0 to every value of a constant series (zero spread),
        hence the floored spread here."""
        m = self._moments
        if not math.isfinite(x) or m.n < self.grace_period:
            return 0.0
        mu = m.mean
        spread = max(math.sqrt(m.var), _spread_floor(mu, self.floor))
        return min(_tail((x - mu) / spread), self.highest)

    def learn_one(self, x: float, at: int | None = None) -> None:
        if _learnable(x):
            self._moments.update(x)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "window_size": self.window_size,
            "grace_period": self.grace_period,
            **_highest(self.highest),
            **_floor(self.floor),
            "moments": self._moments.to_json(),
        }

    @classmethod
    def restore(cls, data: dict[str, Any]) -> GaussianDetector:
        return cls(
            window_size=data["window_size"],
            grace_period=data["grace_period"],
            highest=data.get("highest", 1.0),
            floor=data.get("floor"),
            moments=RollingMoments.restore(data["moments"]),
        )


def _week_offsets(weekly: bool, week_hours: bool) -> WeekOffsets | None:
    """The day-of-week offsets of a detector built with ``weekly`` (and the week's hours
    with ``week_hours``, which refines them), or None."""
    if week_hours and not weekly:
        raise ValueError("week_hours refines weekly: turn weekly on too")
    return WeekOffsets(hours=week_hours) if weekly else None


class SeasonalDetector:
    """How far ``x`` lies from what the series usually does in this part of its cycle.

    Time is cut into ``buckets`` slots of ``bucket_ms`` that repeat (24 hours by default:
    hour of the day; 168 makes it hour of the week). Each slot keeps an exponentially
    weighted mean and variance of its values (``alpha`` per value, an exact mean for the
    first ``1/alpha`` values); the score is the Gaussian tail of ``x`` in its slot, 0 until
    the slot saw ``grace`` values (a spread from fewer is too narrow), at most ``highest``.
    Without ``at`` every value falls in slot 0, which makes it a plain exponentially
    weighted Gaussian.

    With ``student``, the tail is that of a new value when the slot's mean and spread
    come from its ``n`` values (as they do for its first ``1/alpha``): Student's t with
    ``n - 1`` degrees of freedom, on a spread widened by ``sqrt(1 + 1/n)``. A young slot
    is no longer read as if its spread were known: at 10 values, 4 spreads out is a tail
    of 1 in 240, not 1 in 16,000. An hourly series' slot sees one value a day, so its
    first weeks are young: on the hourly synthetic series of the development seeds, 36
    of 119 false alarms came in the five days after the slots' ``grace`` (11 with this
    tail). A minutely series' slot has 60 values after a day (5 spreads out: 1 - 6e-6
    against 1 - 6e-7) and nears the Gaussian as it learns.

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

    kind: ClassVar[str] = "seasonal"
    __slots__ = (
        "_slots",
        "_week",
        "_where",
        "alpha",
        "bucket_ms",
        "buckets",
        "floor",
        "grace",
        "highest",
        "student",
    )

    def __init__(
        self,
        *,
        buckets: int = 24,
        bucket_ms: int = HOUR_MS,
        alpha: float = 0.05,
        grace: int = 10,
        highest: float = 1.0,
        student: bool = False,
        weekly: bool = False,
        week_hours: bool = False,
        floor: float | None = None,
    ) -> None:
        """``weekly``: a slot's values less what their day of the week adds
        (:class:`~streams.weekly.WeekOffsets`); ``week_hours``: or their time of the week,
        where that fits the series better; ``floor``: the least spread
        (:func:`_spread_floor`)."""
        if buckets < 1 or bucket_ms < 1 or not 0 < alpha <= 1 or grace < 1:
            raise ValueError("buckets, bucket_ms and grace must be >= 1 and alpha in (0, 1]")
        if not 0 < highest <= 1:
            raise ValueError("highest must be in (0, 1]")
        if student and grace < 2:
            raise ValueError("a Student tail needs grace >= 2 (n - 1 degrees of freedom)")
        self.floor = _checked_floor(floor)
        self.highest = highest
        self.student = student
        self._week = _week_offsets(weekly, week_hours)
        self.buckets = buckets
        self.bucket_ms = bucket_ms
        self.alpha = alpha
        self.grace = grace
        # n, mean and variance of each slot in turn, in one array: 8 bytes a number
        # where a list of floats takes 32, and one array where three took 120 bytes
        # more (a default model, with two of these, held 240 bytes less:
        # bench.worker_core's model memory, measured change by change). A count is
        # exact in a double up to 2**53 values.
        #
        # Until every slot has seen a value, only the slots seen are kept, in the order
        # they came, and ``_where`` gives each slot's place among them (1 + its index; 0:
        # not seen yet). A young series has seen an hour or two of the day, and a worker
        # holds two of these in each of its models (up to 20,000 a partition): all 24
        # slots took 712 bytes from the first value, and a default model held 1,054
        # bytes less after 10 values, 16 more once mature (the index's own slot; a
        # scratch run of bench.worker_core's model memory). Once all have values, the
        # array is in slot order and ``_where`` is None.
        self._slots = array.array("d")
        self._where: bytearray | None = bytearray(buckets)
        if buckets > _SPARSE_MAX:
            self._slots, self._where = array.array("d", bytes(3 * 8 * buckets)), None

    def _slot(self, at: int | None) -> int:
        return 0 if at is None else (int(at) // self.bucket_ms) % self.buckets

    def _place(self, slot: int) -> int:
        """Where ``slot``'s three numbers start in ``_slots``; -3 if it has none yet."""
        where = self._where
        return 3 * slot if where is None else 3 * where[slot] - 3

    def score_one(self, x: float, at: int | None = None) -> float:
        i = self._place(self._slot(at))
        slots = self._slots
        if i < 0 or not math.isfinite(x) or slots[i] < self.grace:
            return 0.0
        if self._week is not None:
            x -= self._week.offset(at)
        mu = slots[i + 1]
        z = (x - mu) / max(math.sqrt(slots[i + 2]), _spread_floor(mu, self.floor))
        if self.student:
            n = slots[i]
            return min(_student_tail(z / math.sqrt(1.0 + 1.0 / n), n - 1.0), self.highest)
        return min(_tail(z), self.highest)

    def learn_one(self, x: float, at: int | None = None) -> None:
        if not _learnable(x):
            return
        week = self._week
        if week is not None:  # the slot learns the value less its day's offset
            x -= week.offset(at)
        i = self._room(self._slot(at))
        slots = self._slots
        n = slots[i]
        if week is not None and n >= self.grace:  # the day learns the slot's residual
            week.learn(x - slots[i + 1], math.sqrt(slots[i + 2]), at)
        if n == 0:
            slots[i + 1], slots[i + 2] = x, 0.0
        else:
            a = max(self.alpha, 1.0 / (n + 1))
            d = x - slots[i + 1]
            slots[i + 1] += a * d
            slots[i + 2] = (1 - a) * (slots[i + 2] + a * d * d)
        slots[i] = n + 1

    def _room(self, slot: int) -> int:
        """Where ``slot``'s three numbers start, made room for if it has none yet."""
        i = self._place(slot)
        if i >= 0:
            return i
        where = self._where
        assert where is not None  # every slot has room once none is left to open
        self._slots.extend((0.0, 0.0, 0.0))
        opened = len(self._slots) // 3
        where[slot] = opened
        if opened == self.buckets:  # the last one: in slot order from now on
            self._slots, self._where = self._dense(), None
        return self._place(slot)

    def _dense(self) -> array.array[float]:
        """Every slot's three numbers in slot order (zeros for a slot not seen yet)."""
        where = self._where
        if where is None:
            return self._slots
        out = array.array("d", bytes(3 * 8 * self.buckets))
        # A list: mypyc 2.4 stops with an internal error on enumerate() of a bytearray.
        for slot, place in enumerate(list(where)):
            if place:
                i = 3 * place - 3
                out[3 * slot : 3 * slot + 3] = self._slots[i : i + 3]
        return out

    def to_json(self) -> dict[str, Any]:
        slots = self._dense()
        return {
            "kind": self.kind,
            "buckets": self.buckets,
            "bucket_ms": self.bucket_ms,
            "alpha": self.alpha,
            "grace": self.grace,
            **_highest(self.highest),
            **_floor(self.floor),
            **({"student": True} if self.student else {}),
            **({"week": self._week.to_json()} if self._week is not None else {}),
            "n": [int(n) for n in slots[0::3]],
            "mean": pack(slots[1::3]),
            "var": pack(slots[2::3]),
        }

    @classmethod
    def restore(cls, data: dict[str, Any]) -> SeasonalDetector:
        d = cls(
            buckets=data["buckets"],
            bucket_ms=data["bucket_ms"],
            alpha=data["alpha"],
            grace=data["grace"],
            highest=data.get("highest", 1.0),
            student=data.get("student", False),
            floor=data.get("floor"),
        )
        if "week" in data:
            d._week = WeekOffsets.restore(data["week"])
        mean, var = unpack(data["mean"]), unpack(data["var"])
        if not len(data["n"]) == len(mean) == len(var) == d.buckets:
            raise ValueError(f"a seasonal state needs {d.buckets} slots in n, mean and var")
        for slot, n in enumerate(data["n"]):
            if n:  # the slots seen, opened in slot order (the order they came is not kept)
                i = d._room(slot)
                d._slots[i : i + 3] = array.array("d", (n, mean[slot], var[slot]))
        return d


class ForecastDetector:
    """How far ``x`` lies from a one-step forecast: a level that follows the series within
    about 20 values (a day of an hourly series), plus what this part of the cycle adds to
    it (additive Holt-Winters without a trend, the cycle cut into time slots as
    :class:`SeasonalDetector`'s).

    The level learns ``alpha`` of each value's distance (less its slot's offset), each
    slot's offset ``gamma`` of its value's distance from the level, and the score is the
    Gaussian tail of the residual against an exponentially weighted variance of the past
    residuals (``spread_alpha`` per value; an exact mean of squares for the first
    ``1/spread_alpha``), 0 until ``grace`` residuals were seen and in a slot not seen yet.
    Past the grace, the level and the offset learn a residual as at most ``clip`` spreads
    (Huber's clip, as in Gelper, Fried and Croux's robust Holt-Winters): one spike barely
    moves them, so the values after it are not scored against a forecast it pulled
    away. The spread learns the residual as it was, so a lasting shift widens it, the
    clip with it, and the forecast follows.
    A slot first seen while fewer than ``grace`` residuals were (an hourly series' first
    day) starts from its first value's distance from the level; one first seen later
    starts from 0, its first value an ordinary residual: a minutely series' first value
    of a new hour is then not taken for the hour's offset when it is a spike.

    The other level detectors measure a value against weeks of its slot or against the
    last 500 values, so a level that wanders (a price, a conversion rate) widens their
    spread, and a shift of a third hides in it. Here the level moves with the series, so
    the residual's spread is the noise alone. River's ``HoltWinters`` counts the season in
    steps; these series have gaps and jittered times, so the slot is read from the time.

    With ``visit_share`` (None: no bound) a slot's offset learns at most that share of a
    visit's distance: a minutely series visits an hour slot for 60 values, which at 5%
    each would replace the offset with that hour's mean distance (95% of it). Where the
    cycle is not a day's, the offsets then hold the last day's noise, and the next day's
    values in each hour follow a forecast that is off, in a run, until the level takes
    the error in. Per value the offset learns the lower of ``gamma`` and ``1 - (1 -
    visit_share) ** (gap / bucket_ms)``: at 0.5 the second is lower only below about 4.4
    minutes between values, so hourly and 5-minute series learn as without it.

    A shift of one or two spreads gives residuals that each look ordinary, and the level
    takes them in within about 20 values. With ``shift_alpha`` (None: off) the score is
    also the tail of the residuals' recent mean (an exponentially weighted mean, each
    residual clipped as the level learns it) against that mean's own spread, learned as
    the residuals' is. That spread is never below what independent residuals would give
    (``spread * sqrt(shift_alpha / (2 - shift_alpha))``): on residuals that alternate
    about the level the mean's own spread is narrower, and a few ordinary values in a row
    would alert. Where they run in one direction (a series that wanders) it is wider, and
    learned. The score is the higher of the two. This is an EWMA control chart (Roberts,
    1959) on the forecast's residuals.

    >>> f, s = ForecastDetector(), SeasonalDetector()
    >>> def value(hour):  # a level wandering by 30% over weeks, busier by day, some noise
    ...     level = 100.0 * (1 + 0.3 * math.sin(hour / 100))
    ...     return level + (10.0 if hour % 24 < 12 else 0.0) + (hour * 7919 % 13 - 6) * 0.3
    >>> for hour in range(24 * 40):
    ...     f.learn_one(value(hour), hour * HOUR_MS); s.learn_one(value(hour), hour * HOUR_MS)
    >>> now = 24 * 40 * HOUR_MS
    >>> f.score_one(value(960), now) < 0.9, f.score_one(0.8 * value(960), now) > 0.9999
    (True, True)
    >>> s.score_one(0.8 * value(960), now) < 0.95  # a drop of a fifth, within its spread
    True
    """

    kind: ClassVar[str] = "forecast"
    #: The keywords of the constructor, kept in the state as they are.
    PARAMETERS: ClassVar[tuple[str, ...]] = (
        "alpha",
        "gamma",
        "spread_alpha",
        "clip",
        "grace",
        "buckets",
        "bucket_ms",
        "shift_alpha",
        "visit_share",
        "floor",
    )
    __slots__ = (
        "_at",
        "_level",
        "_n",
        "_season",
        "_shift",
        "_shift_var",
        "_var",
        "_week",
        "alpha",
        "bucket_ms",
        "buckets",
        "clip",
        "floor",
        "gamma",
        "grace",
        "shift_alpha",
        "spread_alpha",
        "visit_share",
    )

    def __init__(
        self,
        *,
        alpha: float = 0.05,
        gamma: float = 0.05,
        spread_alpha: float = 0.005,
        clip: float = 3.0,
        grace: int = 30,
        buckets: int = 24,
        bucket_ms: int = HOUR_MS,
        shift_alpha: float | None = 0.15,
        visit_share: float | None = 0.5,
        weekly: bool = False,
        week_hours: bool = False,
        floor: float | None = None,
    ) -> None:
        """``weekly``: the forecast plus what the value's day of the week adds
        (:class:`~streams.weekly.WeekOffsets`); ``week_hours``: or what its time of the
        week adds, where that fits the series better; ``floor``: the least spread
        (:func:`_spread_floor`)."""
        optional = (shift_alpha, visit_share)
        rates = (alpha, gamma, spread_alpha, *(r for r in optional if r is not None))
        if not all(0 < a <= 1 for a in rates) or not clip > 0:
            raise ValueError(
                "alpha, gamma, spread_alpha, shift_alpha, visit_share: in (0, 1]; clip > 0"
            )
        if grace < 1 or buckets < 1 or bucket_ms < 1:
            raise ValueError("grace, buckets and bucket_ms must be >= 1")
        self.floor = _checked_floor(floor)
        self.alpha, self.gamma, self.spread_alpha = alpha, gamma, spread_alpha
        self.clip = clip
        self.grace, self.buckets, self.bucket_ms = grace, buckets, bucket_ms
        self.shift_alpha, self.visit_share = shift_alpha, visit_share
        #: The level (NaN before the first value), the residuals' variance and count.
        self._level, self._var, self._n = math.nan, 0.0, 0
        #: The residuals' recent mean and its variance (0 while ``shift_alpha`` is None).
        self._shift, self._shift_var = 0.0, 0.0
        #: The latest time learned (ms; None before one, and while ``visit_share`` is).
        self._at: int | None = None
        #: Each slot's offset from the level; NaN until the slot saw a value. An array:
        #: 272 bytes where a list of 24 floats took 833 (a scratch tracemalloc count).
        self._season = array.array("d", [math.nan]) * buckets
        self._week = _week_offsets(weekly, week_hours)

    def _slot(self, at: int | None) -> int:
        return 0 if at is None else (int(at) // self.bucket_ms) % self.buckets

    def score_one(self, x: float, at: int | None = None) -> float:
        offset = self._season[self._slot(at)]
        if self._n < self.grace or math.isnan(offset) or not math.isfinite(x):
            return 0.0
        if self._week is not None:
            x -= self._week.offset(at)
        level, lam, sd = self._level, self.shift_alpha, math.sqrt(self._var)
        residual = x - level - offset
        spread = max(sd, _spread_floor(level, self.floor))
        z = abs(residual) / spread
        if lam is not None:  # the higher of two tails: the tail of the farther z
            # The residual as the recent mean learns it.
            shift = (1 - lam) * self._shift + lam * _clip(residual, self.clip * sd)
            # Never below the spread of independent residuals' mean.
            white = spread * math.sqrt(lam / (2 - lam))
            z = max(z, abs(shift) / max(math.sqrt(self._shift_var), white))
        return _tail(z)

    def learn_one(self, x: float, at: int | None = None) -> None:
        if not _learnable(x):
            return
        slot, level, week = self._slot(at), self._level, self._week
        if week is not None:  # the forecast learns the value less its day's offset
            x -= week.offset(at)
            offset = self._season[slot]
            if self._n >= self.grace and not math.isnan(offset) and not math.isnan(level):
                week.learn(x - level - offset, math.sqrt(self._var), at)
        gamma, share = self.gamma, self.visit_share
        if share is not None and at is not None:  # at most ``share`` of a visit
            now, last = int(at), self._at
            self._at = now if last is None else max(last, now)
            if last is not None:
                gamma = visit_rate(gamma, share, now - last, self.bucket_ms)
        if math.isnan(level):
            self._level, self._season[slot] = x, 0.0
            return
        offset = self._season[slot]
        if math.isnan(offset):
            if self._n < self.grace:  # a slot's first value, in the first day: its offset
                self._season[slot] = x - level
                return
            offset = 0.0  # later, an ordinary residual: a spike there is not the offset
        residual = x - level - offset
        a = max(self.spread_alpha, 1.0 / (self._n + 1))
        # Past the grace, the level, the offset and the recent mean learn at most ``clip``
        # spreads.
        clipped = residual
        if self._n >= self.grace:
            clipped = _clip(residual, self.clip * math.sqrt(self._var))
        x = level + offset + clipped
        if (lam := self.shift_alpha) is not None:
            self._shift = shift = (1 - lam) * self._shift + lam * clipped
            self._shift_var = (1 - a) * self._shift_var + a * shift * shift
        self._var = (1 - a) * self._var + a * residual * residual
        self._n += 1
        self._level = level = level + self.alpha * (x - offset - level)
        self._season[slot] = offset + gamma * (x - level - offset)

    def to_json(self) -> dict[str, Any]:
        state = {
            "kind": self.kind,
            **{name: getattr(self, name) for name in self.PARAMETERS},
            "level": None if math.isnan(self._level) else self._level,
            "season": pack(self._season),
            "var": self._var,
            "n": self._n,
        }
        if self.shift_alpha is not None:
            state.update(shift=self._shift, shift_var=self._shift_var)
        if self.visit_share is not None:
            state["at"] = self._at
        if self._week is not None:
            state["week"] = self._week.to_json()
        return state

    @classmethod
    def restore(cls, data: dict[str, Any]) -> ForecastDetector:
        # A state saved before the residuals' mean, the visit's share and the floor has
        # none of them: it restores without them.
        saved: dict[str, Any] = {"shift_alpha": None, "visit_share": None, "floor": None, **data}
        d = cls(**{name: saved[name] for name in cls.PARAMETERS})
        d._season = unpack(data["season"])
        if len(d._season) != d.buckets:
            raise ValueError(f"a forecast state needs {d.buckets} slots in season")
        level = data["level"]
        d._level = math.nan if level is None else level
        d._var, d._n = data["var"], data["n"]
        d._shift, d._shift_var = data.get("shift", 0.0), data.get("shift_var", 0.0)
        d._at = data.get("at")
        if "week" in data:
            d._week = WeekOffsets.restore(data["week"])
        return d


class MaxDetector:
    """The highest score of ``detectors``; every one of them learns every value."""

    kind: ClassVar[str] = "max"
    __slots__ = ("detectors",)

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


class LogView:
    """``detector`` over ``log(x + c)`` of a series that is never negative.

    Counts, durations, prices and volumes are positive and heavy-tailed: a burst that is
    ordinary for them sits many standard deviations out on the raw scale, and a halving
    barely shows. On a log scale both are the size they look. ``c`` is a tenth of the mean
    of the first ``warmup`` values (0 < c, frozen so a value's view never changes; 1 when
    they are all 0): zeros stay finite and values far below the usual level are not
    blown up. The first ``warmup`` values are learned once ``c`` is known (each with its
    time); the view scores 0 until then, and for good once a negative value arrives.

    >>> raw = GaussianDetector(window_size=200, grace_period=20)
    >>> logs = LogView(GaussianDetector(window_size=200, grace_period=20))
    >>> for i in range(300):  # about 100, and a burst to 1000 every 20 values
    ...     x = 1000.0 if i % 20 == 0 else 100.0 + i % 7
    ...     raw.learn_one(x); logs.learn_one(x)
    >>> raw.score_one(5.0) < 0.6, logs.score_one(5.0) > 0.9999  # a collapse to 5
    (True, True)
    """

    kind: ClassVar[str] = "log"
    __slots__ = ("_negative", "_offset", "_times", "_values", "detector", "warmup")

    def __init__(self, detector: Detector, *, warmup: int = 30) -> None:
        if warmup < 1:
            raise ValueError("warmup must be >= 1")
        self.detector = detector
        self.warmup = warmup
        self._offset: float | None = None
        # The first values and their times, kept until the offset is known, as arrays:
        # a young model of a worker's series holds 30 of them twice (as tuples: 3.3 KB).
        # None once they are learned (or a negative value ends the view): two empty
        # arrays held 160 bytes of every model for good.
        self._values: array.array[float] | None = array.array("d")
        self._times: array.array[int] | None = array.array("q")  # _NO_TIME: no time
        self._negative = False

    def score_one(self, x: float, at: int | None = None) -> float:
        if self._negative or self._offset is None or x < 0 or not _learnable(x):
            return 0.0
        return self.detector.score_one(math.log(x + self._offset), at)

    def learn_one(self, x: float, at: int | None = None) -> None:
        if not _learnable(x) or self._negative:
            return
        if x < 0:
            self._negative = True
            self._values = self._times = None
            return
        if self._offset is not None:
            self.detector.learn_one(math.log(x + self._offset), at)
            return
        values, times = self._values, self._times
        assert values is not None and times is not None  # until the offset is known
        values.append(x)
        times.append(_NO_TIME if at is None else at)
        if len(values) >= self.warmup:
            mean = sum(values) / len(values)
            self._offset = 0.1 * mean if mean > 0 else 1.0
            for v, t in self._first():
                self.detector.learn_one(math.log(v + self._offset), t)
            self._values = self._times = None

    def _first(self) -> list[tuple[float, int | None]]:
        """The values kept before the offset was known, with their times."""
        if self._values is None or self._times is None:
            return []
        return [
            (v, None if t == _NO_TIME else t)
            for v, t in zip(self._values, self._times, strict=True)
        ]

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "warmup": self.warmup,
            "offset": self._offset,
            "first": [list(p) for p in self._first()],
            "negative": self._negative,
            "detector": self.detector.to_json(),
        }

    @classmethod
    def restore(cls, data: dict[str, Any]) -> LogView:
        d = cls(restore(data["detector"]), warmup=data["warmup"])
        d._offset, d._negative = data["offset"], data["negative"]
        if d._offset is not None or d._negative:
            d._values = d._times = None
            return d
        d._values = array.array("d", (v for v, _ in data["first"]))
        d._times = array.array("q", (_NO_TIME if t is None else t for _, t in data["first"]))
        return d


class RepeatDetector:
    """How rare it is for this series to repeat its last value this many times in a row.

    A sensor or exporter that is stuck keeps sending the same number, which every
    detector of *how far* a value lies finds ordinary. Here the length of the current run
    of equal values is scored against the runs of the series' own history
    (:class:`TailProbability`, decaying over ``history`` steps): a series that never
    repeats scores a repeat high, a series of integer counts that often repeats does not.

    A history of ``n`` values cannot tell a probability below ``1 / (n + 1)``: past the
    longest run it holds, the empirical tail says nothing more. With ``extrapolate`` (the
    default) the tail goes on as the runs of a series whose values repeat at random would:
    ``p ** run``, with ``p`` the share of steps that repeated the step before (decaying
    over ``history`` steps, never below :data:`REPEAT_FLOOR`). A stuck sensor on a series
    of a few integer levels then keeps rising past that floor instead of stopping at it; a
    series that repeats half the time gets past it only with a run longer than any in its
    history (10 or more in a row). Without ``extrapolate``, the floor holds.

    0 while the value changes, for the first ``grace`` values, and once the run is as
    long as the history (a constant series; a stuck one that has become all the detector
    remembers).

    With ``robust``, a stuck run does not teach the detector that the next one is the
    series' way. A run that scores :data:`RARE_RUN` when it is ``L`` long is learned
    only up to ``RARE_RUN_LEARNED * L``, and it scores 0 from ``RARE_RUN_SPAN * L``: the
    incident has been raised by then, and a run scored rare for hundreds of steps would
    fill the likelihood's history with one incident's surprises (its rarity check would
    then hold back the next incident). Learned whole, a road sensor's first stuck run
    (86 steps) made its second one ordinary from the start (0.47 at most, a scratch
    trace).

    >>> d = RepeatDetector()
    >>> for i in range(500):
    ...     d.learn_one(float(i % 17))  # never the same twice in a row
    >>> d.learn_one(3.0)
    >>> d.score_one(4.0), d.score_one(3.0) > 0.99
    (0.0, True)
    >>> d, floor = RepeatDetector(), RepeatDetector(extrapolate=False)
    >>> for i in range(2000):
    ...     for m in (d, floor):
    ...         m.learn_one(float(i % 3 if i < 1990 else 1))  # stuck on 1 for 10 values
    >>> round(1 - floor.score_one(1.0), 4), 1 - d.score_one(1.0) < 1e-5
    (0.001, True)
    """

    kind: ClassVar[str] = "repeats"
    __slots__ = (
        "_last",
        "_n",
        "_rare",
        "_repeated",
        "_run",
        "_runs",
        "_scored",
        "continuation",
        "extrapolate",
        "grace",
        "history",
        "robust",
    )

    def __init__(
        self,
        *,
        history: int = 1000,
        grace: int = 30,
        extrapolate: bool = True,
        continuation: bool = False,
        robust: bool = False,
        runs: TailProbability | None = None,
    ) -> None:
        """``runs``: the history of runs so far (a restored state); empty if None.
        ``continuation``: within the runs the history holds, how rare it is that the run
        goes on one more step, given its length (past them, the whole tail as without).
        ``robust``: a rare run is learned and scored for a bounded multiple of the
        length it had when it became rare (the class's docstring)."""
        if history < 2 or grace < 1:
            raise ValueError("history must be >= 2 and grace >= 1")
        self.history = history
        self.grace = grace
        self.extrapolate = extrapolate
        self.continuation = continuation
        self.robust = robust
        if runs is None:
            runs = TailProbability(history=history, low=1.0, high=4096.0, bins=48)
        self._runs = runs
        self._last: float | None = None
        self._run = 0
        self._n = 0
        self._repeated = 0.0  # steps that repeated the one before, decaying over history
        #: With ``robust``: the length at which the current run scored RARE_RUN (0: not),
        #: and the score of a repeat since the last step learned (None: not scored).
        self._rare = 0
        self._scored: float | None = None

    def score_one(self, x: float, at: int | None = None) -> float:
        known = min(self._n, self.history)  # values the history speaks for
        if self._n < self.grace or x != self._last or self._run >= known:
            return 0.0  # changing, or this run is all the history knows: the series' way
        if self._rare and self._run >= RARE_RUN_SPAN * self._rare:
            return 0.0  # a rare run raised long enough: not one incident's hundred steps
        score = self._rarity(known)
        if self.robust:  # learn_one asks whether the run became rare: scored already
            self._scored = score
        return score

    def _rarity(self, known: int) -> float:
        """The score of the current run going on one more step (``known``: the values
        the history speaks for)."""
        floor = 1.0 / (known + 1)
        observed = self._runs.sf(self._run + 1)
        if observed > floor or not self.extrapolate:
            if self.continuation and self._run > 1:  # the run's next step, given its length
                before = self._runs.sf(self._run)
                if before > 0.0:  # 0: past what the history can say, the whole tail
                    observed = min(observed / before, 1.0)
            return 1.0 - max(observed, floor)
        # The steps learned, decaying as ``_repeated`` does: sum of keep ** k, k < n.
        steps = self.history * (1.0 - (1.0 - 1.0 / self.history) ** self._n)
        p = (self._repeated + 1.0) / (steps + 2.0)  # a repeat's odds, never 0 or 1
        return 1.0 - max(min(floor, p**self._run), REPEAT_FLOOR)

    def learn_one(self, x: float, at: int | None = None) -> None:
        if not math.isfinite(x):
            return
        keep = 1.0 - 1.0 / self.history
        same = x == self._last
        if not same:
            self._rare = 0
        elif self.robust and not self._rare:
            # A score since the last step learned is this one's: a repeat of _last.
            score = self.score_one(x, at) if self._scored is None else self._scored
            if score >= RARE_RUN:
                self._rare = self._run + 1  # the run's length with this step
        self._scored = None
        self._repeated = self._repeated * keep + same
        self._run = self._run + 1 if same else 1
        self._last = x
        if not self._rare or self._run <= RARE_RUN_LEARNED * self._rare:
            self._runs.add(float(self._run))
        self._n += 1

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "history": self.history,
            "grace": self.grace,
            "runs": self._runs.to_json(),
            "last": self._last,
            "run": self._run,
            "n": self._n,
            "extrapolate": self.extrapolate,
            **({"continuation": True} if self.continuation else {}),
            **({"robust": True, "rare": self._rare} if self.robust else {}),
            "repeated": self._repeated,
        }

    @classmethod
    def restore(cls, data: dict[str, Any]) -> RepeatDetector:
        """A state of before the extrapolation (no ``extrapolate``) keeps the floor."""
        extrapolate = data.get("extrapolate", False)
        runs = TailProbability.restore(data["runs"])
        d = cls(
            history=data["history"],
            grace=data["grace"],
            extrapolate=extrapolate,
            continuation=data.get("continuation", False),
            robust=data.get("robust", False),
            runs=runs,
        )
        d._last, d._run, d._n = data["last"], data["run"], data["n"]
        d._rare = data.get("rare", 0)
        d._repeated = data.get("repeated", 0.0)
        return d


#: How each kind is restored from its :meth:`to_json` form.
_KINDS: dict[str, Callable[[dict[str, Any]], Detector]] = {
    **{
        c.kind: c.restore
        for c in (
            GaussianDetector,
            SeasonalDetector,
            ForecastDetector,
            MaxDetector,
            LogView,
            RepeatDetector,
        )
    },
    AnomalyLikelihood.kind: lambda data: AnomalyLikelihood.restore(data, restore),
    DailyRecurrence.kind: lambda data: DailyRecurrence.restore(data, restore),
}


def default_detector(
    *,
    log_view: bool = True,
    repeats: bool = True,
    repeat_tail: bool = True,
    span_ms: int | None = 3 * HOUR_MS,
    rarity: float | None = 0.03,
    robust: bool = True,
    long_memory: bool = True,
    forecast: bool = True,
    forecast_shift: bool = True,
    raw_cap: bool = True,
    student: bool = True,
    calm: bool = True,
    week_hours: bool = True,
    daily_jobs: bool = True,
    chance: float | None = CHANCE,
    discount_jobs: bool = True,
    jobs_unlearned: bool = True,
) -> Detector:
    """The detector of ``[[detector]]`` rules and of ``vigil backtest``.

    Six raw scores per value, the highest counting: the value against its hour of the
    day (a Student tail while the hour's slot is young: ``student``) and against the last
    500 values, both on the raw scale (at most :data:`RAW_HIGHEST`: ``raw_cap``) and on a
    log scale; on the log scale also against a one-step forecast, a level that follows
    the series plus its hour's offset (``forecast``), and against the recent mean of
    that forecast's residuals (``forecast_shift``: a shift of one or two spreads); and
    how rare its run of repeats is (past the longest run in its history, as rare as
    chance repeats would make it, and a stuck run learned only as far as it was
    ordinary: ``repeat_tail``). Then their likelihood over the last
    3 hours (at most 20 steps), held back unless that mean is also rare (3%) in its own
    history.
    That history learns a step that alerted as at most the threshold's z (``robust``: an
    incident does not hide the next one) and, with ``long_memory``, spans 10,000 steps (a
    week of a minutely series; off: 1,000, 17 hours of it) and sets aside its first 200,
    the raw detectors' warm-up.
    With ``calm``: the hour slots and the forecast less what the day of the week adds
    (``streams.weekly``), a run scored by its next step within the runs the history
    holds, and the raw scale capped at :data:`CALM_HIGHEST` instead. With ``week_hours``
    (a part of ``calm``), what the time of the week adds (2-hour blocks) where it fits
    the series better than the day's offset. With ``daily_jobs`` (a part of ``calm``), a
    surprise that came at the same time of day on each of the last two days is scheduled
    work, scored as an ordinary surprise (:class:`DailyRecurrence`). With ``chance``, an
    alert also needs the short mean's surprises to be that rare by chance alone, each
    raw score taken as a p-value of the highest of the raw scores (:data:`CHANCE`); with
    ``discount_jobs`` as well (and the daily jobs), a step the daily jobs scored as
    scheduled work is no evidence to that check. With ``jobs_unlearned`` (and the daily
    jobs), the raw detectors do not learn such a step.
    The keywords turn each of those choices off (``bench/nab.py`` scores every
    combination; all off is the default of before); the README says how each was chosen
    and what it scores.
    """

    hours = calm and week_hours

    def level(highest: float = 1.0, floor: float | None = None) -> list[Detector]:
        gaussian = GaussianDetector(window_size=500, grace_period=30, highest=highest, floor=floor)
        seasonal = SeasonalDetector(
            highest=highest, student=student, weekly=calm, week_hours=hours, floor=floor
        )
        return [seasonal, gaussian]

    raw = level((CALM_HIGHEST if calm else RAW_HIGHEST) if raw_cap else 1.0)
    # One view over both: the same scores as a view each (a maximum of maxima), with
    # one log taken a value and the first values kept once while the offset is learned:
    # after 10 values a model held 3,835 bytes against 4,235 (bench.worker_core's model
    # memory) and its JSON state took 2,509 bytes against 2,826 (a scratch run), about
    # the same past the view's warm-up (6,082 bytes against 6,090 after 2,000 values).
    # The forecast on the log scale only: one on the raw scale too scored the same on the
    # development seeds (71.1 against 71.0, a scratch run with gamma 0.02) and would take
    # the JSON state past 8 KB.
    # The shift mean, and offsets that learn at most half a visit: without that bound, a
    # minutely series whose cycle is not a day's alerted on its second day (a scratch
    # trace of test_backtest's lone spike series).
    shift, share = (0.15, 0.5) if forecast_shift else (None, None)
    logs = level(floor=LOG_FLOOR)
    if forecast:
        logs.append(
            ForecastDetector(
                shift_alpha=shift,
                visit_share=share,
                weekly=calm,
                week_hours=hours,
                floor=LOG_FLOOR,
            )
        )
    raw += [LogView(MaxDetector(logs))] if log_view else []
    if repeats:
        raw.append(RepeatDetector(extrapolate=repeat_tail, continuation=calm, robust=repeat_tail))
    # Bonferroni's count for the chance check: every raw score the highest is taken of.
    scores = len(raw) - 1 + len(logs) if log_view else len(raw)
    scored: Detector = MaxDetector(raw)
    jobs = calm and daily_jobs
    if jobs:
        scored = DailyRecurrence(scored, teach_jobs=not jobs_unlearned)
    return AnomalyLikelihood(
        scored,
        history=10_000 if long_memory else 1000,
        short=20,
        grace=100,
        span_ms=span_ms,
        rarity=rarity,
        robust=robust,
        warmup=200 if long_memory else 0,
        chance=chance,
        scores=scores,
        discount_jobs=discount_jobs and jobs and chance is not None,
    )


def restore(data: dict[str, Any]) -> Detector:
    """A detector from its :meth:`to_json` form, or from that form thinned against a
    base (:func:`streams.modelbase.thin`, as a worker stores it)."""
    data = modelbase.thick(data)
    kind = data.get("kind")
    if kind not in _KINDS:
        raise ValueError(f"unknown detector kind {kind!r}; expected one of {sorted(_KINDS)}")
    return _KINDS[kind](data)
