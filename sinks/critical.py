"""The critical path of an execution: the chain of steps that decided when it ended.

From the step that ended last, each step is preceded by the step it waited on: among the
steps it declared in ``after``, the one that ended last; a step that declared nothing
waited on the step that ended last before it started (within :data:`TOLERANCE_MS`: steps
run one after another unless they say otherwise). The chain stops at a step that waited
on nothing. Each link says how long the step ran and how long it ``waited`` after its
predecessor ended (scheduling, queueing: time on the path that no step used).

>>> steps = [  # extract, then transform and a slow lookup in parallel, then load
...     Step("extract", start=0, end=100),
...     Step("transform", start=100, end=150, after=("extract",)),
...     Step("lookup", start=100, end=400, after=("extract",)),
...     Step("load", start=410, end=500, after=("transform", "lookup")),
... ]
>>> [(link.step, link.waited_ms) for link in path(steps)]
[('extract', 0.0), ('lookup', 0.0), ('load', 10.0)]
>>> sequential = [Step("a", 0, 10), Step("b", 12, 30), Step("c", 30, 31)]
>>> [link.step for link in path(sequential)]
['a', 'b', 'c']
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

#: Event times are whole milliseconds and a step's start is its end less its duration
#: (timed by another clock): a step that ended up to this much after another started
#: still counts as before it.
TOLERANCE_MS = 1.0


@dataclass(frozen=True)
class Step:
    """One step's run: times in ms (any common origin), the steps it declared it waited on."""

    step: str
    start: float
    end: float
    after: tuple[str, ...] = ()


@dataclass(frozen=True)
class Link:
    step: str
    start: float
    end: float
    waited_ms: float

    @property
    def duration_ms(self) -> float:
        return self.end - self.start


def path(steps: Sequence[Step]) -> list[Link]:
    """The critical path of one execution's steps, first step first ([] for none). A step
    that ran more than once (a retry) counts by its last run."""
    last: dict[str, Step] = {}
    for s in sorted(steps, key=lambda s: (s.end, s.step)):
        last[s.step] = s
    if not last:
        return []
    ordered = sorted(last.values(), key=lambda s: (s.end, s.step))
    current = ordered[-1]
    chain: list[Link] = []
    seen = {current.step}
    while True:
        before = _waited_on(current, last, ordered)
        if before is not None and before.step in seen:
            before = None  # a cycle in what the steps declared: stop
        waited = float(max(current.start - before.end, 0)) if before is not None else 0.0
        chain.append(Link(current.step, current.start, current.end, waited))
        if before is None:
            return chain[::-1]
        seen.add(before.step)
        current = before


def _waited_on(step: Step, by_name: dict[str, Step], ordered: list[Step]) -> Step | None:
    if step.after:
        declared = [by_name[name] for name in step.after if name in by_name]
        return max(declared, key=lambda s: (s.end, s.step), default=None)
    started = step.start + TOLERANCE_MS
    earlier = [s for s in ordered if s.end <= started and s.step != step.step]
    return earlier[-1] if earlier else None


def summarize(executions: Iterable[Sequence[Step]]) -> dict[str, Any]:
    """Over many executions of one workflow: per step, the share of executions whose
    critical path it is on, its mean time on the path and its share of the path's time;
    the path's mean length in time and the mean waiting on it.

    >>> fast = [Step("a", 0, 10), Step("b", 0, 50), Step("c", 50, 60, after=("a", "b"))]
    >>> slow_a = [Step("a", 0, 90), Step("b", 0, 50), Step("c", 90, 100, after=("a", "b"))]
    >>> out = summarize([fast, slow_a])
    >>> [(s["step"], s["on_path"]) for s in out["steps"]]
    [('c', 1.0), ('a', 0.5), ('b', 0.5)]
    >>> out["path_ms_mean"]
    80.0
    """
    counts: dict[str, list[float]] = {}
    lengths: list[float] = []
    waits: list[float] = []
    n = 0
    for steps in executions:
        links = path(steps)
        if not links:
            continue
        n += 1
        lengths.append(links[-1].end - links[0].start)
        waits.append(sum(link.waited_ms for link in links))
        for link in links:
            counts.setdefault(link.step, []).append(link.duration_ms)
    total = sum(lengths)
    rows = [
        {
            "step": step,
            "on_path": len(times) / n,
            "mean_ms": sum(times) / len(times),
            "path_share": sum(times) / total if total else None,
        }
        for step, times in counts.items()
    ]
    rows.sort(key=lambda r: (-r["on_path"], -r["mean_ms"], r["step"]))
    return {
        "executions": n,
        "path_ms_mean": sum(lengths) / n if n else None,
        "waited_ms_mean": sum(waits) / n if n else None,
        "steps": rows,
    }
