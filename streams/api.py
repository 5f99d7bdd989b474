"""The worker's live read API: what the web pages answer, without the web framework.

Each function takes the worker's :class:`~streams.processing.Processor` and the request's
parameters, and returns a JSON-safe body or raises :class:`ApiError` (400 for a bad
parameter, 404 for something this worker does not hold; its message says why).

| path                          | answers                                                |
| ----------------------------- | ------------------------------------------------------ |
| ``/series/windows?series=K``  | the open windows of series ``K`` with their figures    |
| ``/executions/{id}``          | one execution: status, progress, elapsed, ETA          |
| ``/workflows/{name}``         | a workflow over the horizon: runs, durations, steps    |
| ``/alerts``                   | pending and firing alerts (:func:`alerts`)             |
| ``/workflows/{name}/detail``  | the dashboard's workflow view (:func:`workflow_detail`)  |
| ``/overview``, ``/live``      | the dashboard's overview (:func:`overview`); ``/live``   |
|                               | pushes it as server-sent events                        |

A worker answers for the partitions it holds; with several workers, ask each (a 404
says the series or execution is not here).
"""

from __future__ import annotations

from typing import Any

from streams.processing import Processor

MAX_PARAM = 1024


class ApiError(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _param(name: str, value: str | None, limit: int = MAX_PARAM) -> str:
    if value is None or not value.strip():
        raise ApiError(400, f"parameter {name!r} is required")
    if len(value) > limit:
        raise ApiError(400, f"parameter {name!r} is longer than {limit} characters")
    return value


def series_open(processor: Processor | None, series: str | None) -> dict[str, Any]:
    """The open windows of a series held here, with their figures so far (``windows``
    empty when it has none here)."""
    key = _param("series", series)
    for partition, state in sorted(_states(processor).items()):
        windows = state.windows.open_series(key)
        if windows:
            return {
                "series": key,
                "partition": partition,
                "watermark_ms": state.windows.watermark,
                "late": state.windows.late.get(key, 0),
                "windows": windows,
            }
    return {"series": key, "partition": None, "watermark_ms": None, "late": 0, "windows": []}


def series_windows(processor: Processor | None, series: str | None) -> dict[str, Any]:
    found = series_open(processor, series)
    if not found["windows"]:
        raise ApiError(404, f"series {found['series']!r} has no open window on this worker")
    return found


def execution(processor: Processor | None, execution_id: str, *, now_ms: int) -> dict[str, Any]:
    eid = _param("execution_id", execution_id, 128)
    for partition, state in sorted(_states(processor).items()):
        view = state.executions.execution(eid, now_ms=now_ms)
        if view is not None:
            return {"partition": partition, **view}
    raise ApiError(404, f"execution {eid!r} is not known to this worker")


def workflow(processor: Processor | None, name: str) -> dict[str, Any]:
    wanted = _param("name", name, 256)
    for partition, state in sorted(_states(processor).items()):
        view = state.executions.workflow(wanted)
        if view is not None:
            return {"partition": partition, **view}
    raise ApiError(404, f"workflow {wanted!r} is not known to this worker")


def workflow_detail(processor: Processor | None, name: str, *, now_ms: int) -> dict[str, Any]:
    """The dashboard's workflow view: :func:`workflow`, its latest executions and a
    waterfall of a typical execution's steps."""
    wanted = _param("name", name, 256)
    for partition, state in sorted(_states(processor).items()):
        ex = state.executions
        view = ex.workflow(wanted)
        if view is not None:
            return {
                "partition": partition,
                **view,
                "executions": ex.recent(wanted, now_ms=now_ms),
                "waterfall": ex.waterfall(wanted),
            }
    raise ApiError(404, f"workflow {wanted!r} is not known to this worker")


def alerts(processor: Processor | None) -> list[dict[str, Any]]:
    """The pending and firing alerts of every partition held here, by partition."""
    return [a for _, state in sorted(_states(processor).items()) for a in state.evaluation.alerts()]


#: Running executions listed in the overview, the most recently active first.
MAX_RUNNING = 50


def overview(
    processor: Processor | None,
    counts: Any,
    *,
    events_per_s: float,
    now_ms: int,
    silenced: Any = None,
    silences: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """What the dashboard's overview shows, from the partitions held here: throughput and
    dead letters, running executions with progress and ETA, each workflow's success rate
    and p95 duration, and the alerts pending or firing with their age."""
    running = []
    workflows: dict[str, dict[str, Any]] = {}
    for state in _states(processor).values():
        ex = state.executions
        for run in ex.running.values():
            running.append((run.last_ms, ex.execution(run.execution_id, now_ms=now_ms)))
        for name in ex.workflows:
            view = ex.workflow(name)
            if view is not None:
                workflows[name] = {
                    k: view[k]
                    for k in (
                        "workflow",
                        "service",
                        "runs",
                        "running",
                        "success_rate",
                        "duration_p50_ms",
                        "duration_p95_ms",
                        "bottleneck",
                    )
                }
    running.sort(key=lambda pair: (-pair[0], pair[1]["execution_id"]))
    listed = []
    for alert in alerts(processor):
        muted = bool(silenced(alert["labels"], now_ms)) if silenced else False
        listed.append(
            {
                **alert,
                "age_s": max(0.0, (now_ms - alert["started_at"]) / 1000)
                if alert["started_at"]
                else None,
                "silenced": muted,
            }
        )
    severity = {"critical": 0, "warning": 1, "info": 2}
    listed.sort(key=lambda a: (a["status"] != "firing", severity.get(a["severity"], 3), a["rule"]))
    return {
        "at": now_ms,
        "events_per_s": round(events_per_s, 1),
        "events": counts.get("valid", 0),
        "dead_letters": counts.get("rejected", 0),
        "late": counts.get("late", 0),
        "partitions": sorted(_states(processor)),
        "windows": [spec.label for spec in processor.specs] if processor is not None else [],
        "running": [view for _, view in running[:MAX_RUNNING]],
        "running_total": len(running),
        "workflows": [workflows[name] for name in sorted(workflows)],
        "alerts": listed,
        "firing": sum(a["status"] == "firing" for a in listed),
        "silences": [s for s in silences or [] if s["ends_at"] > now_ms],
    }


def _states(processor: Processor | None) -> dict[int, Any]:
    return processor.states if processor is not None else {}
