"""Anomaly pattern analysis (seed 000): which anomalies recur, by series, time of day and
shape.

A series' anomalous windows (a detector's score at or above its threshold) that follow
each other, one hop apart at most, make one **episode**. Each episode has a **shape**,
from how its values compare with the series' median over the period and how long it
lasts: ``spike`` (above, at most :data:`BRIEF` windows), ``dip`` (below, as brief),
``surge`` and ``drop`` (above or below, longer). Per series, the episodes are counted by
shape and by hour of the day (UTC) they began; a series whose episodes begin in the same
hour on :data:`RECURRING_DAYS` different days or more, and at least half of them, has a
**recurring** hour: something that happens every day then (a batch job, a backup), which
people may want to silence or plan for rather than be woken by.

>>> H = 3_600_000
>>> rows = [  # (window end ms, value, score)
...     *[(d * 24 * H + 2 * H + (k + 1) * 60_000, 90.0, 1.0) for d in range(3) for k in range(2)],
...     (3 * 24 * H + 15 * H, 1.0, 1.0),
... ]
>>> out = analyse({"s": rows}, {"s": 10.0}, hop_ms=60_000)
>>> [(e["shape"], e["windows"]) for e in out["episodes"]][:2]
[('dip', 1), ('spike', 2)]
>>> s = out["series"][0]
>>> s["episodes"], s["recurring_hour"], s["recurring_days"], s["shapes"]
(4, 2, 3, {'spike': 3, 'dip': 1})
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from typing import Any

#: An episode of at most this many windows is brief (a spike or a dip).
BRIEF = 3
#: Episodes beginning in one hour on this many days make the hour recurring.
RECURRING_DAYS = 3

Row = tuple[int, float | None, float]  # window end (ms), value, score


def episodes_of(rows: list[Row], median: float | None, hop_ms: int) -> list[dict[str, Any]]:
    """``rows`` (one series' anomalous windows, by time) as episodes."""
    out: list[dict[str, Any]] = []
    current: list[Row] = []
    for row in sorted(rows):
        if current and row[0] - current[-1][0] > hop_ms:
            out.append(_episode(current, median, hop_ms))
            current = []
        current.append(row)
    if current:
        out.append(_episode(current, median, hop_ms))
    return out


def _episode(rows: list[Row], median: float | None, hop_ms: int) -> dict[str, Any]:
    values = [v for _, v, _ in rows if v is not None]
    mean = sum(values) / len(values) if values else None
    above = median is None or mean is None or mean >= median
    brief = len(rows) <= BRIEF
    shape = ("spike" if above else "dip") if brief else ("surge" if above else "drop")
    start = rows[0][0] - hop_ms
    return {
        "start_ms": start,
        "end_ms": rows[-1][0],
        "windows": len(rows),
        "shape": shape,
        "peak_score": max(score for _, _, score in rows),
        "mean_value": mean,
        "hour": datetime.fromtimestamp(start / 1000, UTC).hour,
        "day": datetime.fromtimestamp(start / 1000, UTC).date().isoformat(),
    }


def analyse(
    rows: dict[str, list[Row]], medians: dict[str, float | None], *, hop_ms: int
) -> dict[str, Any]:
    """Per series its episodes, counted by shape and hour, with its recurring hour; and
    every episode, the newest first."""
    summary, every = [], []
    for series, own in rows.items():
        found = episodes_of(own, medians.get(series), hop_ms)
        for e in found:
            e["series"] = series
        every += found
        hours = Counter(e["hour"] for e in found)
        hour, count = hours.most_common(1)[0] if hours else (None, 0)
        days = len({e["day"] for e in found if e["hour"] == hour})
        recurring = hour if days >= RECURRING_DAYS and 2 * count >= len(found) else None
        summary.append({
            "series": series,
            "episodes": len(found),
            "shapes": dict(Counter(e["shape"] for e in found)),
            "hours": {str(h): n for h, n in sorted(hours.items())},
            "recurring_hour": recurring,
            "recurring_days": days if recurring is not None else 0,
            "last_ms": max((e["end_ms"] for e in found), default=None),
        })  # fmt: skip
    summary.sort(key=lambda s: (s["recurring_hour"] is None, -s["episodes"], s["series"]))
    every.sort(key=lambda e: (-e["start_ms"], e["series"]))
    return {"series": summary, "episodes": every}
