"""Stored windows against a recount of the raw rows, both ways.

The windows that must be stored are derived from the raw rows alone, under the
documented watermark rule (``streams/windows.py``): a window is emitted once its
partition's watermark, the highest event time seen in that partition minus the grace,
reaches the window's end. So a (series, window) with raw events whose end is at or
below that watermark and no stored window is *missing*; a stored window with no raw
events is *extra*; one whose count or errors differ from the recount *differs*. The
worker may close more windows than the rule demands (a quiet partition's watermark
follows the wall clock); those must still equal their recount.
"""

from __future__ import annotations

from typing import Any

Key = tuple[str, int]  # series, window start (ms)


def window_mismatches(ch: Any, *, width_s: int, hop_s: int, grace_s: float) -> dict[str, list]:
    """``missing``, ``extra`` and ``differ`` windows of one width and hop (all empty when
    the store is right); each a sorted list of a few examples."""
    if width_s % hop_s:
        raise ValueError("a hopping window's width is a whole number of hops")
    covering = width_s // hop_s  # windows an event falls in
    recount: dict[Key, tuple[int, int, int]] = {}
    for series, start, partition, count, errors in ch.query(
        f"""
        SELECT series, start, any(partition), count(), countIf(ok = false)
        FROM (
            SELECT series, partition, ok,
                   toUnixTimestamp64Milli(ts) DIV {hop_s * 1000} * {hop_s * 1000}
                       - arrayJoin(range({covering})) * {hop_s * 1000} AS start
            FROM vigil.events WHERE NOT late
        )
        GROUP BY series, start
        """
    ).result_rows:
        recount[(series, start)] = (count, errors, partition)
    watermark = {
        partition: highest - grace_s * 1000
        for partition, highest in ch.query(
            "SELECT partition, max(toUnixTimestamp64Milli(ts)) FROM vigil.events GROUP BY partition"
        ).result_rows
    }
    stored: dict[Key, tuple[int, int]] = {}
    for series, start, count, errors in ch.query(
        f"""
        SELECT series, toUnixTimestamp64Milli(window_start), count, errors
        FROM vigil.windows FINAL WHERE width_s = {width_s} AND hop_s = {hop_s}
        """
    ).result_rows:
        stored[(series, start)] = (count, errors)
    due = {k for k, (_, _, p) in recount.items() if k[1] + width_s * 1000 <= watermark[p]}
    return {
        "missing": sorted(due - stored.keys())[:5],
        "extra": sorted(stored.keys() - recount.keys())[:5],
        "differ": sorted(
            (k, stored[k], recount[k][:2])
            for k in stored.keys() & recount.keys()
            if stored[k] != recount[k][:2]
        )[:5],
        "checked": [len(due), len(stored)],
    }


def assert_windows_match(ch: Any, *, width_s: int, hop_s: int, grace_s: float) -> int:
    """Assert no window is missing, extra or different; the number the rule demanded."""
    found = window_mismatches(ch, width_s=width_s, hop_s=hop_s, grace_s=grace_s)
    due, _ = found.pop("checked")
    assert all(v == [] for v in found.values()), (width_s, hop_s, found)
    return due


def late_mismatches(ch: Any, *, grace_s: float, pane_s: int) -> dict[str, list]:
    """Raw rows flagged late that the rule says were on time (``wrongly_late``), and the
    reverse (``missed_late``), the rule applied to the partition logs as stored: in
    (offset, idx) order, an event is late when its pane (``pane_s`` wide) ended at or
    below the highest event time seen before it in its partition, minus the grace. Only
    for a run whose partitions never went idle mid-stream (an idle partition's event
    time follows the wall clock, which no log records)."""
    pane_ms, grace_ms = pane_s * 1000, grace_s * 1000
    out: dict[str, list] = {"wrongly_late": [], "missed_late": []}
    highest: dict[int, int] = {}
    for partition, offset, idx, ts, flagged in ch.query(
        "SELECT partition, offset, idx, toUnixTimestamp64Milli(ts), late FROM vigil.events "
        "ORDER BY partition, offset, idx"
    ).result_rows:
        seen = highest.get(partition)
        late = seen is not None and ts - ts % pane_ms + pane_ms <= seen - grace_ms
        if not late:
            highest[partition] = ts if seen is None else max(seen, ts)
        if late != bool(flagged):
            out["missed_late" if late else "wrongly_late"].append((partition, offset, idx, ts))
    return {k: v[:5] + ([f"... {len(v)} in all"] if len(v) > 5 else []) for k, v in out.items()}


def assert_recounted(
    ch: Any, *, grace_s: float, windows: tuple[tuple[int, int], ...] = ((60, 60),)
) -> list[int]:
    """Assert the late flags follow the watermark rule (panes of the smallest hop) and
    every (width, hop) of ``windows`` matches its recount; the windows each demanded."""
    pane_s = min(hop for _, hop in windows)
    found = late_mismatches(ch, grace_s=grace_s, pane_s=pane_s)
    assert found == {"wrongly_late": [], "missed_late": []}, found
    return [assert_windows_match(ch, width_s=w, hop_s=h, grace_s=grace_s) for w, h in windows]
