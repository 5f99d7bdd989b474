"""What each day of the week adds to a series, learned where the series shows it.

A service busy on weekdays and quiet at weekends (or any two days: a cycle of seven) is
a daily cycle whose level moves by the day. Hour slots of the day mix both kinds of day;
on the synthetic daily-and-weekly cycles of the development seeds 1, 3, 5 and 7, 24 of
37 false alarms came on the two quiet days. :class:`WeekOffsets` keeps one offset per day
of the week, each 0 until the series' residuals say otherwise: a detector scores and
learns ``x - offset(at)`` and teaches the offsets its residual. A series without a weekly
cycle keeps offsets of about 0 (its residuals' noise, shrunk).

An offset learns ``RATE`` of each clipped residual, and at most ``VISIT_SHARE`` of a day's
visit: 0.2 of a day's mean residual (``1 - (1 - 0.2) ** (gap / day)`` a value, the lower
of the two), so a minutely series does not replace the offset with one day's mean.

>>> w = WeekOffsets()
>>> DAY = 86_400_000
>>> for day in range(20 * 7):  # days 5 and 6 of each week 30 lower, hourly values
...     for hour in range(24):
...         at = day * DAY + hour * 3_600_000
...         w.learn((-30.0 if day % 7 >= 5 else 0.0) - w.offset(at), 10.0, at)
>>> round(w.offset(5 * DAY)), round(w.offset(2 * DAY))
(-30, 0)
"""

from __future__ import annotations

import array
import math
from typing import Any

from streams.packing import pack, unpack
from streams.summaries import clip, visit_rate

DAY_MS = 86_400_000
#: The share of a clipped residual an offset learns per value, and at most per day.
RATE = 0.05
VISIT_SHARE = 0.2
#: A residual is learned as at most this many spreads (Huber's clip).
CLIP = 3.0


class WeekOffsets:
    """Seven offsets, one per day of the week (days since the epoch, modulo 7)."""

    __slots__ = ("_at", "_offsets")

    def __init__(self) -> None:
        self._offsets = array.array("d", bytes(8 * 7))
        #: The latest time learned (ms), None before one.
        self._at: int | None = None

    def offset(self, at: int | None) -> float:
        """What ``at``'s day of the week adds (0 without a time)."""
        return 0.0 if at is None else self._offsets[(int(at) // DAY_MS) % 7]

    def learn(self, residual: float, spread: float, at: int | None) -> None:
        """Teach ``at``'s day a residual of a value less its offset, clipped at ``CLIP``
        times ``spread``."""
        if at is None or not math.isfinite(residual):
            return
        now, last = int(at), self._at
        self._at = now if last is None else max(last, now)
        rate = RATE if last is None else visit_rate(RATE, VISIT_SHARE, now - last, DAY_MS)
        self._offsets[(now // DAY_MS) % 7] += rate * clip(residual, CLIP * spread)

    def to_json(self) -> dict[str, Any]:
        return {"offsets": pack(self._offsets), "at": self._at}

    @classmethod
    def restore(cls, data: dict[str, Any]) -> WeekOffsets:
        w = cls()
        offsets = unpack(data["offsets"])
        if len(offsets) != 7:
            raise ValueError(f"a week has 7 offsets, got {len(offsets)}")
        w._offsets, w._at = offsets, data["at"]
        return w
