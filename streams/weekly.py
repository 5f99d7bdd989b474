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

A day's offset is one number for the whole day. Where the week shapes the day itself
(rides, orders, meals: Friday's and Saturday's nights run on past midnight, weekends
have no morning rush), a Saturday's small hours are busy where a Tuesday's are the
quietest of the day, and its morning is quiet where a Tuesday's has a rush: the day's
offset, a mean over both, fits neither. With ``hours``, the offsets also keep the time
of the week: 12 blocks of 2 hours a day, read between the two nearest blocks' centres
(a value at 05:00 is half its block's and half the next one's), so a steep fall at
dawn is not a step at a block's edge. Each value teaches both kinds their own residual,
and the blocks are read only while their recent residuals are at least a tenth smaller
than the days' (``BLOCK_MARGIN``): a series whose week does not shape its days keeps
the days' offsets, which learn from twelve times as many values each. On the demand
shape of the synthetic corpus (half-hourly and quarter-hourly counts with that week),
the default scored 32.0 / 40.4 / 32.7 on the development seeds 1, 3, 5, 7 / 8-11 /
12-15 with the days' offsets and 68.4 / 66.6 / 63.9 with blocks that learned 5% of
each value's residual; their other shapes moved by at most 1.3 (scratch runs).

A block learns once a visit, when the visit is over: the mean of its clipped residuals
(each weighted by how near the block's centre the value was), a share of ``1 / 2``,
``1 / 3``, ``1 / 4`` in the series' first three weeks (a mean of the visits so far and
one of 0), ``VISIT_SHARE`` after. A block sees its time of the week once a week, so
learning a fifth a visit from the start left a file's first weeks alerting on every
busy Saturday night; and learning within the visit would let an incident that lasts
the visit teach its own block while it scores (blocks that learned 0.6 of a visit,
value by value, missed a shared NAB file's denser spikes). Demand scored 66.0 / 63.5 /
61.8 with blocks learning by visits at a fifth, and 78.9 / 72.4 / 73.2 learning faster
while young; the other shapes within 0.5 but daily and weekly cycles (72.2 / 69.3 /
72.4 to 72.5 / 72.7 / 74.6; scratch runs, the same seeds).

>>> w, d = WeekOffsets(hours=True), WeekOffsets()
>>> HOUR = 3_600_000
>>> for day in range(12 * 7):  # days 5 and 6 of each week 30 higher from 00:00 to 04:00
...     for hour in range(0, 24 * 60, 30):
...         at = day * DAY + hour * 60_000
...         busy = day % 7 >= 5 and hour < 4 * 60
...         for o in (w, d):
...             o.learn((30.0 if busy else 0.0) - o.offset(at), 10.0, at)
>>> [round(w.offset(5 * DAY + h * HOUR)) for h in (1, 12)], round(w.offset(2 * DAY + HOUR))
([31, 0], 0)
>>> [round(d.offset(5 * DAY + h * HOUR)) for h in (1, 12)]  # the day's: a mean over both
[4, 4]
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


#: With ``hours``: the blocks a day is cut into, and how much smaller than the days' the
#: blocks' recent residuals must be for the blocks to be read. Recent: a mean of the
#: clipped absolute residuals, each value counting ``ERROR_RATE``.
BLOCKS = 12
BLOCK_MARGIN = 0.9
ERROR_RATE = 0.003
#: A block's first visits, in a series' first ``YOUNG_WEEKS`` weeks, are learned as a
#: mean of the visits so far and one of 0 (a half, a third, a quarter); ``VISIT_SHARE``
#: after.
YOUNG_WEEKS = 3
WEEK_MS = 7 * DAY_MS


class WeekOffsets:
    """Seven offsets, one per day of the week (days since the epoch, modulo 7); with
    ``hours``, also one per block of 2 hours of the week, read where they fit better."""

    __slots__ = ("_at", "_blocks", "_errors", "_offsets", "_since", "_visits")

    def __init__(self, hours: bool = False) -> None:
        self._offsets = array.array("d", bytes(8 * 7))
        #: The blocks' offsets (single precision: 336 bytes where doubles take 672), and
        #: the recent mean absolute residual of the days' offsets and of the blocks'.
        self._blocks = array.array("f", bytes(4 * 7 * BLOCKS)) if hours else None
        self._errors = [0.0, 0.0]
        #: The latest time learned (ms), None before one; with ``hours``, the first (the
        #: blocks' age).
        self._at: int | None = None
        self._since: int | None = None
        #: The visits in progress (with ``hours``): block, weighted sum of clipped
        #: residuals and weight, for the one or two blocks the latest value was between.
        self._visits = array.array("d")

    def offset(self, at: int | None) -> float:
        """What ``at``'s day of the week adds (0 without a time), or its time of the week
        where the blocks fit better."""
        if at is None:
            return 0.0
        now = int(at)
        if self._blocks is not None and self._reads_blocks():
            return self._block(*_between(now))
        return self._offsets[(now // DAY_MS) % 7]

    def _reads_blocks(self) -> bool:
        """Whether the blocks' recent residuals are a tenth smaller than the days'."""
        days, blocks = self._errors
        return blocks < BLOCK_MARGIN * days

    def _block(self, k: int, f: float) -> float:
        """The blocks' offset a fraction ``f`` of the way from block ``k``'s centre to the
        next one's."""
        b = self._blocks
        assert b is not None
        return (1.0 - f) * b[k] + f * b[(k + 1) % len(b)]

    def learn(self, residual: float, spread: float, at: int | None) -> None:
        """Teach ``at``'s day a residual of a value less its offset, clipped at ``CLIP``
        times ``spread`` (and its blocks their own residual, with ``hours``)."""
        if at is None or not math.isfinite(residual):
            return
        now, last = int(at), self._at
        self._at = now if last is None else max(last, now)
        rate = RATE if last is None else visit_rate(RATE, VISIT_SHARE, now - last, DAY_MS)
        most = CLIP * spread
        day = (now // DAY_MS) % 7
        offsets, blocks = self._offsets, self._blocks
        if blocks is None:
            offsets[day] += rate * clip(residual, most)
            return
        if self._since is None:
            self._since = now
        k, f = _between(now)
        block, errors = self._block(k, f), self._errors
        # The residual before any offset: the detector took off the one read.
        value = residual + (block if self._reads_blocks() else offsets[day])
        by_day, by_block = value - offsets[day], value - block
        errors[0] += ERROR_RATE * (min(abs(by_day), most) - errors[0])
        errors[1] += ERROR_RATE * (min(abs(by_block), most) - errors[1])
        offsets[day] += rate * clip(by_day, most)
        self._visit(k, f, clip(by_block, most), now)

    def _visit(self, k: int, f: float, residual: float, now: int) -> None:
        """Add a clipped residual to the visits of blocks ``k`` and ``k + 1`` (weights
        ``1 - f`` and ``f``)."""
        visits, after = self._visits, (k + 1) % (7 * BLOCKS)
        if len(visits) != 6 or visits[0] != k or visits[3] != after:
            visits = self._visits = self._move(k, after, now)
        visits[1] += (1.0 - f) * residual
        visits[2] += 1.0 - f
        visits[4] += f * residual
        visits[5] += f

    def _move(self, k: int, after: int, now: int) -> array.array[float]:
        """The visits of blocks ``k`` and ``after``, going on where one was in progress;
        every other block's visit is over, and its block learns the visit's mean."""
        blocks, visits = self._blocks, self._visits
        assert blocks is not None and self._since is not None
        weeks = (now - self._since) // WEEK_MS
        share = 1.0 / (weeks + 2) if weeks < YOUNG_WEEKS else VISIT_SHARE
        going = {}
        for i in range(0, len(visits), 3):
            block, total, weight = int(visits[i]), visits[i + 1], visits[i + 2]
            if block in (k, after):
                going[block] = (total, weight)
            elif weight > 0:
                blocks[block] += share * total / weight
        (t0, w0), (t1, w1) = (going.get(block, (0.0, 0.0)) for block in (k, after))
        return array.array("d", [k, t0, w0, after, t1, w1])  # from a list: sized exactly

    def to_json(self) -> dict[str, Any]:
        state: dict[str, Any] = {"offsets": pack(self._offsets), "at": self._at}
        if self._blocks is not None:
            state["blocks"] = pack(self._blocks, "f")
            state["errors"] = list(self._errors)
            state["since"] = self._since
            state["visits"] = pack(self._visits)
        return state

    @classmethod
    def restore(cls, data: dict[str, Any]) -> WeekOffsets:
        """Also a state written before ``hours`` existed (without blocks), or before the
        blocks learned by visits (taken as past their first weeks, no visit open)."""
        blocks = data.get("blocks")
        w = cls(hours=blocks is not None)
        offsets = unpack(data["offsets"])
        if len(offsets) != 7:
            raise ValueError(f"a week has 7 offsets, got {len(offsets)}")
        w._offsets, w._at = offsets, data["at"]
        if blocks is not None:
            loaded = unpack(blocks, "f")
            if len(loaded) != 7 * BLOCKS:
                raise ValueError(f"a week has {7 * BLOCKS} blocks, got {len(loaded)}")
            w._blocks, w._errors = loaded, [float(e) for e in data["errors"]]
            # Blocks written before they learned by visits: past their first weeks.
            first = w._at - YOUNG_WEEKS * WEEK_MS if w._at is not None else None
            w._since = data.get("since", first)
            if "visits" in data:
                w._visits = unpack(data["visits"])
        return w


def _between(at: int) -> tuple[int, float]:
    """The block of the week whose centre is at or before ``at``, and how far ``at`` is
    on the way to the next block's centre (0 to 1)."""
    place = at % WEEK_MS / WEEK_MS * (7 * BLOCKS) - 0.5
    k = math.floor(place)
    return k % (7 * BLOCKS), place - k
