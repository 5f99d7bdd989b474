"""A series' expected values and band for the hours ahead, from its own history (seed
000): :func:`forecast`.

The history is taken per step (one value per bucket; a bucket without data takes the
value before it) and learned one step at a time by two models: River's ``HoltWinters``
(an additive level and trend) and, when the history holds two days or more, a daily one
(:class:`_Daily`: each slot of the day's median over the days before, and the same
``HoltWinters`` on what is left). The daily one is kept when its one-step errors over the
last day are lower (the season is detected, not assumed). River's own seasonal models
were tried first: its seasonal Holt-Winters, on a clean daily sine, was off by a quarter
of the amplitude five days in; ``SNARIMAX`` on day-over-day differences copied an
hour-long surge of the day before into the forecast (370 ms expected where 60 came).

The band: each step ahead, the expected value plus the 5th and 95th percentiles of the
model's own one-step errors (each value forecast before it was learned), widened by the
square root of the steps ahead: how far the series usually strays from what was expected.

>>> import math
>>> day = [100 + 20 * math.sin(2 * math.pi * i / 24) for i in range(24 * 5)]
>>> out = forecast(day, steps_per_day=24, horizon=24)
>>> out["model"], len(out["expected"])
('seasonal', 24)
>>> abs(out["expected"][6] - 120) < 3  # the next day's peak, where it was each day
True
>>> all(lo <= x <= hi for lo, x, hi in zip(out["low"], out["expected"], out["high"]))
True
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from river import time_series

#: Below this many values there is nothing to learn from.
MIN_HISTORY = 8


#: Values kept per slot of the day: a fortnight of days.
KEEP_DAYS = 14


class _Daily:
    """The season and the level apart: each slot of the day's median over the days before
    (one odd day does not move it), and River's ``HoltWinters`` (level and trend) on what
    is left once that profile is taken away."""

    def __init__(self, season: int) -> None:
        self.season = season
        self.slots: list[list[float]] = [[] for _ in range(season)]
        self.level = time_series.HoltWinters(alpha=0.3, beta=0.05)
        self.n = 0  # values seen
        self.learned = 0  # values the level learned

    def profile(self, i: int) -> float | None:
        past = self.slots[i % self.season]
        return statistics.median(past) if len(past) >= 2 else None

    def expected(self, i: int, ahead: int = 1) -> float | None:
        base = self.profile(i)
        if base is None or self.learned < 3:
            return None
        return base + self.level.forecast(horizon=ahead)[ahead - 1]

    def learn_one(self, y: float) -> None:
        base = self.profile(self.n)
        if base is not None:
            self.level.learn_one(y - base)
            self.learned += 1
        slot = self.slots[self.n % self.season]
        slot.append(y)
        del slot[:-KEEP_DAYS]
        self.n += 1

    def forecast(self, horizon: int) -> list[float]:
        levels = self.level.forecast(horizon=horizon)
        return [(self.profile(self.n + h) or 0.0) + levels[h] for h in range(horizon)]


def _run(values: list[float], season: int) -> tuple[Any, list[float]]:
    """The model after learning ``values`` and its one-step errors (actual - expected)."""
    if season:
        daily = _Daily(season)
        errors = []
        for y in values:
            expected = daily.expected(daily.n)
            if expected is not None:
                errors.append(y - expected)
            daily.learn_one(y)
        return daily, errors
    model = time_series.HoltWinters(alpha=0.3, beta=0.05)
    errors = []
    for i, y in enumerate(values):
        if i >= 3:
            errors.append(y - model.forecast(horizon=1)[0])
        model.learn_one(y)
    return model, errors


def forecast(values: list[float], *, steps_per_day: int, horizon: int) -> dict[str, Any]:
    """``horizon`` steps ahead of ``values`` (one per step, oldest first): ``expected``,
    ``low`` and ``high`` per step, the ``model`` kept (``trend`` or ``seasonal``) and its
    one-step mean absolute error over the last day (``mae``)."""
    if len(values) < MIN_HISTORY:
        raise ValueError(f"{len(values)} values: at least {MIN_HISTORY} are needed")
    plain, plain_errors = _run(values, 0)
    kept, errors, name = plain, plain_errors, "trend"
    if steps_per_day >= 2 and len(values) >= 2 * steps_per_day + steps_per_day // 2:
        seasonal, seasonal_errors = _run(values, steps_per_day)
        recent = min(steps_per_day, len(seasonal_errors))
        if _mae(seasonal_errors[-recent:]) < _mae(plain_errors[-recent:]):
            kept, errors, name = seasonal, seasonal_errors, "seasonal"
    expected = [float(x) for x in kept.forecast(horizon=horizon)]
    # The 5th and 95th percentiles, linearly interpolated (R's type 7).
    cuts = statistics.quantiles(errors, n=20, method="inclusive")
    lo, hi = cuts[0], cuts[-1]
    low = [x + lo * math.sqrt(h + 1) for h, x in enumerate(expected)]
    high = [x + hi * math.sqrt(h + 1) for h, x in enumerate(expected)]
    return {
        "model": name,
        "expected": expected,
        "low": low,
        "high": high,
        "mae": _mae(errors[-steps_per_day:] if steps_per_day else errors),
    }


def _mae(errors: list[float]) -> float:
    return sum(abs(e) for e in errors) / len(errors) if errors else math.inf


def filled(points: list[tuple[int, float | None]], step: int, end: int) -> tuple[int, list[float]]:
    """From the first bucket with a value to ``end`` (exclusive), one value per step: each
    bucket's, or the one before it when a bucket is empty; with the first bucket's time.
    Nothing is made up before the series began.

    >>> filled([(10, 1.0), (30, 3.0)], 10, 50)
    (10, [1.0, 1.0, 3.0, 3.0])
    """
    known = {t: v for t, v in points if v is not None}
    if not known:
        return end, []
    first = min(known)
    out, last = [], known[first]
    for t in range(first, end, step):
        last = known.get(t, last)
        out.append(last)
    return first, out
