"""Workflow events of one test workflow, ``etl``, for unit and integration tests."""

from __future__ import annotations

from typing import Any

#: The steps of ``etl`` and how long each takes, in ms.
STEPS = [("extract", 4_000), ("transform", 9_000), ("load", 3_000)]


def event(kind: str, ts: int, eid: str, **fields: Any) -> dict[str, Any]:
    """A schema v1 event of execution ``eid`` of workflow ``etl``."""
    return {
        "kind": kind,
        "ts": ts,
        "service": "pipeline",
        "name": "etl",
        "execution_id": eid,
        **fields,
    }


def execution(
    eid: str, start: int, *, fail_step: str | None = None, recover: bool = True
) -> tuple[list[dict[str, Any]], int]:
    """The events of one whole execution from ``start``, and its end time.

    ``fail_step`` fails once and is recovered (and rerun) or, without ``recover``, ends
    the execution as failed.
    """
    out = [event("execution.start", start, eid, attrs={"total_steps": len(STEPS)})]
    t = start
    for i, (step, ms) in enumerate(STEPS):
        out.append(event("step.start", t, eid, step=step, attrs={"index": i}))
        if step == fail_step:
            out.append(event("step.end", t + 100, eid, step=step, value=100.0, ok=False))
            out.append(event("recovery", t + 101, eid, step=step, ok=recover))
            if not recover:
                end = t + 102
                out.append(
                    event(
                        "execution.end",
                        end,
                        eid,
                        value=float(end - start),
                        ok=False,
                        status="failed",
                    )
                )
                return out, end
            t += 102
            out.append(event("step.start", t, eid, step=step, attrs={"index": i}))
        t += ms
        out.append(event("step.end", t, eid, step=step, value=float(ms), ok=True))
    out.append(event("execution.end", t, eid, value=float(t - start), ok=True, status="success"))
    return out, t


def history_then_running(
    start: int, *, done: str, running: str, running_at: int | None = None
) -> list[dict[str, Any]]:
    """Three whole executions of ``etl`` from ``start`` (ids ``{done}-0``..``-2``), which
    teach a worker how long each step takes, then execution ``running`` with its first
    step started at ``running_at`` (by default a second after the third ended)."""
    out: list[dict[str, Any]] = []
    t = start
    for r in range(3):
        events, end = execution(f"{done}-{r}", t)
        out.extend(events)
        t = end + 1_000
    at = t if running_at is None else running_at
    out.append(event("execution.start", at, running, attrs={"total_steps": len(STEPS)}))
    out.append(event("step.start", at, running, step=STEPS[0][0], attrs={"index": 0}))
    return out
