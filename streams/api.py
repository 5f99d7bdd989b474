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

These functions answer for the partitions one worker holds (a 404 says the series or
execution is not here); :mod:`streams.web` asks the group's other workers
(:mod:`streams.peers`) for the rest, and :func:`held` and :func:`merge` make one
overview of the group's partitions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from streams.processing import Processor
from streams.rules import Rule

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

#: What the overview shows of each workflow.
WORKFLOW_FIELDS = (
    "workflow",
    "service",
    "runs",
    "running",
    "success_rate",
    "duration_p50_ms",
    "duration_p95_ms",
    "bottleneck",
)


def held(processor: Processor | None, *, now_ms: int) -> dict[str, dict[str, Any]]:
    """What the overview needs of each partition held here, keyed by the partition (a
    string: this goes over HTTP as JSON): the offset applied, the running executions
    (each with the time it was last active), the workflows and the pending and firing
    alerts. Another worker merges it with its own (:func:`merge`)."""
    out = {}
    for partition, state in sorted(_states(processor).items()):
        ex = state.executions
        workflows = {}
        for name in ex.workflows:
            view = ex.workflow(name)
            if view is not None:
                workflows[name] = {k: view[k] for k in WORKFLOW_FIELDS}
        out[str(partition)] = {
            "offset": state.offset,
            "running": [
                [run.last_ms, ex.execution(run.execution_id, now_ms=now_ms)]
                for run in ex.running.values()
            ],
            "workflows": workflows,
            "alerts": state.evaluation.alerts(),
        }
    return out


def merge(parts: Iterable[Mapping[str, Any]]) -> dict[int, dict[str, Any]]:
    """One part per partition from several workers' :func:`held`. While a partition moves,
    two workers may both report it; the one that applied more of it is the newer.

    >>> merge([{"0": {"offset": 5}}, {"0": {"offset": 9}, "1": {"offset": 2}}])
    {0: {'offset': 9}, 1: {'offset': 2}}
    """
    out: dict[int, dict[str, Any]] = {}
    for some in parts:
        for key, part in some.items():
            partition = int(key)
            if partition not in out or part["offset"] > out[partition]["offset"]:
                out[partition] = part
    return dict(sorted(out.items()))


def overview(
    parts: Mapping[int, Mapping[str, Any]],
    counts: Mapping[str, int],
    *,
    events_per_s: float,
    now_ms: int,
    windows: list[str],
    silenced: Any = None,
    silences: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """What the dashboard's overview shows, from the partitions' parts (:func:`held`,
    :func:`merge`): throughput and dead letters, running executions with progress and
    ETA, each workflow's success rate and p95 duration, and the alerts pending or firing
    with their age."""
    running = sorted(
        (pair for part in parts.values() for pair in part["running"]),
        key=lambda pair: (-pair[0], pair[1]["execution_id"]),
    )
    workflows = {name: view for part in parts.values() for name, view in part["workflows"].items()}
    listed = []
    for alert in (a for part in parts.values() for a in part["alerts"]):
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
        "partitions": sorted(parts),
        "windows": windows,
        "running": [view for _, view in running[:MAX_RUNNING]],
        "running_total": len(running),
        "workflows": [workflows[name] for name in sorted(workflows)],
        "alerts": listed,
        "firing": sum(a["status"] == "firing" for a in listed),
        "silences": [s for s in silences or [] if s["ends_at"] > now_ms],
    }


def rule_view(rule: Rule) -> dict[str, Any]:
    """A rule as ``/rules`` lists it."""
    return {
        "name": rule.name,
        "type": rule.type,
        "signal": rule.signal,
        "window": rule.window,
        "op": rule.op,
        "threshold": rule.threshold,
        "severity": rule.severity,
        "labels": dict(rule.labels),
        "channels": list(rule.channels) if rule.channels is not None else None,
        "for_ms": rule.policy.for_ms,
        "keep_firing_for_ms": rule.policy.keep_firing_for_ms,
        "location": rule.location,
    }


def _states(processor: Processor | None) -> dict[int, Any]:
    return processor.states if processor is not None else {}
