"""Backtest: the stream's detector and alert lifecycle over a CSV of ``timestamp,value``.

Each row is scored before it is learned (as in the stream); a score at or above
``THRESHOLD`` is an active observation for the alert state machine, and ``alert`` is 1 on
the rows where the alert goes to firing: the second row in a row over the threshold
(``POLICY``). The configuration is fixed here, the same for every file: nothing is tuned
per series or after seeing labels.

>>> rows = [(f"2024-01-01 00:{i // 60:02d}:{i % 60:02d}", 10.0 + i % 3) for i in range(600)]
>>> rows[500:502] = [(t, 90.0) for t, _ in rows[500:502]]  # two values far out
>>> [r[0] for r in run(rows) if r[2] >= THRESHOLD][:2]  # the second, and the row after
['2024-01-01 00:08:21', '2024-01-01 00:08:22']
>>> [r[0] for r in run(rows) if r[3]]  # pending at the first over, firing at the next
['2024-01-01 00:08:22']
"""

from __future__ import annotations

import bisect
import csv
import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path

from streams.alerting import AlertState, Observation, Policy, step
from streams.detection import Detector, default_detector
from streams.rules import DETECTOR_POLICY as POLICY
from streams.rules import DETECTOR_THRESHOLD as THRESHOLD

#: Alert states a quiet row leaves as they are (but for the flap window's pruning).
_QUIET = frozenset({"inactive", "resolved"})


def timestamp_ms(timestamp: str) -> int:
    """A row's ISO timestamp (UTC when it names no zone) in ms since the epoch."""
    parsed = dt.datetime.fromisoformat(timestamp.strip())
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp() * 1000)


def run(
    rows: Iterable[tuple[str, float]],
    detector: Detector | None = None,
    policy: Policy = POLICY,
) -> Iterator[tuple[str, float, float, int]]:
    """``(timestamp, value, anomaly_score, alert)`` per row (another detector or alert
    policy only to compare variants: ``bench/nab.py``)."""
    detector = detector or default_detector()
    state = AlertState()
    for timestamp, value in rows:
        at = timestamp_ms(timestamp)
        score = detector.score_one(value, at)
        detector.learn_one(value, at)
        state, fired = _alert(state, value, score, at, policy)
        yield timestamp, value, score, fired


def alerts(rows: Sequence[tuple[int, float, float]], policy: Policy = POLICY) -> list[int]:
    """The ``alert`` column of :func:`run` for rows already scored, ``(at, value,
    anomaly_score)``: one detector's scores under several policies, the alert state
    machine being all that differs (:func:`firings`, for the rows as columns).

    >>> rows = [(i * 60_000, 1.0, 0.99995 if i in (3, 4, 9) else 0.5) for i in range(12)]
    >>> [i for i, fired in enumerate(alerts(rows)) if fired]
    [4]
    """
    ats, values, scores = [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows]
    return column(len(rows), firings(ats, values, scores, policy))


def column(rows: int, fired: Iterable[int]) -> list[int]:
    """The ``alert`` column of ``rows`` rows: 1 at the rows ``fired`` (:func:`firings`),
    0 elsewhere.

    >>> column(5, [1, 3])
    [0, 1, 0, 1, 0]
    """
    out = [0] * rows
    for i in fired:
        out[i] = 1
    return out


def hot(scores: Sequence[float]) -> list[int]:
    """The indices of ``scores`` at or above the threshold: the only rows that can move
    a quiet alert (:func:`firings`)."""
    return [i for i, score in enumerate(scores) if score >= THRESHOLD]


def firings(
    ats: Sequence[int],
    values: Sequence[float],
    scores: Sequence[float],
    policy: Policy = POLICY,
    over: Sequence[int] | None = None,
) -> list[int]:
    """The indices of the rows (their times, values and scores) where the alert went to
    firing, as in :func:`alerts`. While the alert is quiet, the rows up to the next one
    over the threshold (``over``: :func:`hot` of ``scores`` if None; one detector's
    scores under several policies share it) are skipped, not stepped one by one
    (:func:`_alert` says why that changes nothing): a grid's millions of rows are mostly
    quiet.

    >>> scores = [0.99995 if i in (3, 4, 9) else 0.5 for i in range(12)]
    >>> ats = [i * 60_000 for i in range(12)]
    >>> firings(ats, [1.0] * 12, scores), firings(ats, [1.0] * 12, scores, over=[3, 4, 9])
    ([4], [4])
    """
    over = hot(scores) if over is None else over
    state, fired, i, n = AlertState(), [], 0, len(scores)
    while i < n:
        if state.status in _QUIET:
            k = bisect.bisect_left(over, i)
            if k == len(over):
                break
            i = over[k]
        state, moved = _alert(state, values[i], scores[i], ats[i], policy)
        if moved:
            fired.append(i)
        i += 1
    return fired


def _alert(
    state: AlertState, value: float, score: float, at: int, policy: Policy
) -> tuple[AlertState, int]:
    """One row through the alert state machine: the state after it, and 1 if the alert
    went to firing there. A quiet row of a quiet alert changes nothing but which past
    firings the flap window still holds, and :func:`step` reads those from the times
    afresh at every row, so it is not stepped (a grid's millions of rows, most quiet)."""
    if score < THRESHOLD and state.status in _QUIET:
        return state, 0
    state, transition = step(state, Observation(score >= THRESHOLD, value), at, policy)
    return state, int(transition is not None and transition.to == "firing")


def run_file(source: Path, target: Path) -> int:
    """Backtest one CSV into another; returns the rows written."""
    with source.open(newline="") as f:
        reader = csv.DictReader(f)
        if reader.fieldnames is None or not {"timestamp", "value"} <= set(reader.fieldnames):
            raise ValueError(f"{source}: expected columns timestamp,value, got {reader.fieldnames}")
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                rows.append((row["timestamp"], float(row["value"])))
            except ValueError as exc:
                raise ValueError(f"{source}:{line}: {exc}") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["timestamp", "value", "anomaly_score", "alert"])
        n = 0
        for timestamp, value, score, alert in run(rows):
            writer.writerow([timestamp, value, f"{score:.6f}", alert])
            n += 1
    return n


def run_corpus(root: Path, out: Path) -> dict[str, int]:
    """Every CSV under ``root`` into the same relative path under ``out``."""
    return {
        str(path.relative_to(root)): run_file(path, out / path.relative_to(root))
        for path in sorted(root.rglob("*.csv"))
    }
