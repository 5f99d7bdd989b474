"""Scheduled work is not an incident: a surprise that came at the same time of day on
each of the last two days (:class:`DailyRecurrence`).

A host's nightly backup, a batch at 02:15, a report at 06:00: each lifts a gauge for
minutes at one time of the day. The detectors that know the time of day keep an hour's
mean and spread, or 2-hour blocks of the week, and a job of 10 to 45 minutes inside an
hour is a mixture they do not resolve; the detectors that know no time see a jump. On
the synthetic host gauges with scheduled jobs of the development seeds, the default
alerted on most nights (130 false alarms over 24 files, a scratch count).

:class:`DailyRecurrence` wraps the raw detector of a likelihood. It remembers which
5-minute slots of the last two days held a surprising step (a raw score of at least
``mark``: one bit a slot), and caps a surprising step at ``mark`` where the same slot
(within a slot either way: cron jobs run late, sensors report with jitter) was surprising
yesterday *and* the day before, while the slots half a day before each were not. The cap
is a surprise as ordinary steps sometimes have; the likelihood does the rest.

Why those conditions:

- **Two days, not one.** An incident that lasts past midnight, or comes back the next
  day at the same hour, is still an incident on its second day; a third time at that
  hour is a schedule.
- **Half a day before was quiet.** A series surprised for two days on end (a shift the
  detectors are still learning) recurs at every time of day; it is not scheduled, and
  it is left to the likelihood.
- **A day, not an hour.** A check on the last two hours' same minute as well explained
  bursts that come every 20 minutes by chance (on the development seeds, the daily check
  alone scored higher: 75.7 against 75.3); a job that runs every hour recurs daily too.

With ``teach_jobs`` off (the default detector's), the detector it wraps does not learn a
step it capped: a job's load is not the series' ordinary behaviour, and learned, it
widened the spreads (an hour slot's, the last 500 values') that the same load at another
time is measured against. On the development seeds' host gauges that took the scheduled
shape from 61.9 to 66.6 (false alarms 20 to 11, missed windows 15 to 13; scratch runs).
A job that comes every day is then never learned, and it is capped every day, as a
schedule should be.

The state is one bit per slot over two days and a little (584 slots: 73 bytes, about 100
characters of base64), and the last slot learned.

>>> from streams.detection import GaussianDetector
>>> d = DailyRecurrence(GaussianDetector(window_size=288, grace_period=30))
>>> def night(day, slot):  # every 5 minutes; a job at 02:00-02:15 each night
...     return 100.0 if slot in (24, 25, 26) else 10.0 + (slot * 7919 % 13) / 10
>>> scores = {}
>>> for day in range(4):
...     for slot in range(288):
...         at = (day * 288 + slot) * SLOT_MS
...         x = night(day, slot)
...         scores[day, slot] = d.score_one(x, at)
...         d.learn_one(x, at)
>>> [round(scores[day, 24], 4) for day in range(1, 4)]  # the job: surprising, then known
[1.0, 1.0, 0.9968]
"""

from __future__ import annotations

import base64
import math
from typing import TYPE_CHECKING, Any, ClassVar

from streams.weekly import DAY_MS

if TYPE_CHECKING:
    from collections.abc import Callable

    from streams.detection import Detector

#: A slot of the day: jobs start on the minute and run for minutes; 5 minutes apart.
SLOT_MS = 300_000
#: Slots a day.
DAY_SLOTS = DAY_MS // SLOT_MS
#: The slots remembered: two days back from the current one, and a slot either way.
RING = 2 * DAY_SLOTS + 8


class DailyRecurrence:
    """``detector``'s raw score, capped at ``mark`` (``1 - 10**-2.5``, a surprise of
    2.5) where a surprising step recurs at the same time of day on the last two days
    (the module's docstring says when and why)."""

    kind: ClassVar[str] = "recurrence"
    __slots__ = ("_last", "_marked", "_slot", "detector", "mark", "teach_jobs")

    def __init__(
        self,
        detector: Detector,
        *,
        mark: float = 1.0 - 10**-2.5,
        teach_jobs: bool = True,
        marked: bytes | None = None,
        slot: int | None = None,
    ) -> None:
        """``teach_jobs``: whether ``detector`` learns a step capped as scheduled work
        (off: the job does not widen the spreads that a load at another time is measured
        against). ``marked`` and ``slot``: the bits and the last slot learned (a restored
        state)."""
        if not 0 < mark < 1:
            raise ValueError(f"mark is a score in (0, 1), got {mark}")
        self.detector = detector
        self.mark = mark
        self.teach_jobs = teach_jobs
        size = (RING + 7) // 8
        if marked is not None and len(marked) != size:
            raise ValueError(f"a recurrence state holds {size} bytes of slots, got {len(marked)}")
        self._marked = bytearray(marked if marked is not None else size)
        #: The latest slot learned (slots since the epoch); None before the first.
        self._slot = slot
        #: (x, at, raw score, capped) of the value scored and not learned yet.
        self._last: tuple[float, int | None, float, bool] | None = None

    def _bit(self, slot: int) -> bool:
        """Whether ``slot`` held a surprising step; False for slots the ring no longer
        (or does not yet) remember."""
        latest = self._slot
        if latest is None or not latest - RING < slot <= latest:
            return False
        i = slot % RING
        return bool(self._marked[i >> 3] >> (i & 7) & 1)

    def _put(self, slot: int, surprising: bool) -> None:
        """Set or clear ``slot``'s bit (its place in the ring)."""
        i = slot % RING
        if surprising:
            self._marked[i >> 3] |= 1 << (i & 7)
        else:
            self._marked[i >> 3] &= ~(1 << (i & 7)) & 0xFF

    def _near(self, slot: int) -> bool:
        return self._bit(slot - 1) or self._bit(slot) or self._bit(slot + 1)

    def recurs(self, at: int) -> bool:
        """Whether the slot of ``at`` was surprising at this time on each of the last two
        days, half a day before each being quiet."""
        a = at // SLOT_MS
        day, half = DAY_SLOTS, DAY_SLOTS // 2
        return (
            self._near(a - day)
            and self._near(a - 2 * day)
            and not self._bit(a - half)
            and not self._bit(a - day - half)
        )

    def _capped(self, raw: float, at: int | None) -> bool:
        """Whether a step its detector scored ``raw`` at ``at`` is scheduled work."""
        return at is not None and raw > self.mark and self.recurs(at)

    def score_one(self, x: float, at: int | None = None) -> float:
        raw = self.detector.score_one(x, at)
        capped = self._capped(raw, at)
        self._last = (x, at, raw, capped)
        return self.mark if capped else raw

    @property
    def scheduled(self) -> bool:
        """Whether the value just scored was capped as scheduled work (False when none
        was scored since the last one learned): the likelihood's chance check can then
        count it as no evidence (``AnomalyLikelihood``'s ``discount_jobs``)."""
        return self._last is not None and self._last[3]

    def learn_one(self, x: float, at: int | None = None) -> None:
        last = self._last
        if last is not None and last[0] == x and last[1] == at:  # scored just before
            raw, capped = last[2], last[3]
        else:
            raw = self.detector.score_one(x, at)
            capped = self._capped(raw, at)
        self._last = None
        if self.teach_jobs or not capped:
            self.detector.learn_one(x, at)
        if at is None or not math.isfinite(x):
            return
        a = at // SLOT_MS
        latest = self._slot
        if latest is None or a > latest:  # forget what the ring held at the new slots
            if latest is not None:  # a new ring holds nothing yet
                for s in range(max(latest + 1, a - RING + 1), a + 1):
                    self._put(s, False)
            self._slot = latest = a
        if raw >= self.mark and a > latest - RING:  # a late value within the ring counts
            self._put(a, True)

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "mark": self.mark,
            "slot": self._slot,
            "marked": base64.b64encode(self._marked).decode("ascii"),
            **({} if self.teach_jobs else {"teach_jobs": False}),
            "detector": self.detector.to_json(),
        }

    @classmethod
    def restore(
        cls, data: dict[str, Any], inner: Callable[[dict[str, Any]], Detector]
    ) -> DailyRecurrence:
        """``inner`` restores the detector it wraps (``streams.detection.restore``); a
        state from before ``teach_jobs`` teaches them, as it did."""
        return cls(
            inner(data["detector"]),
            mark=data["mark"],
            teach_jobs=data.get("teach_jobs", True),
            marked=base64.b64decode(data["marked"], validate=True),
            slot=data["slot"],
        )
