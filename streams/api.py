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


def series_windows(processor: Processor | None, series: str | None) -> dict[str, Any]:
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
    raise ApiError(404, f"series {key!r} has no open window on this worker")


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


def alerts(processor: Processor | None) -> list[dict[str, Any]]:
    """The pending and firing alerts of every partition held here, by partition."""
    return [a for _, state in sorted(_states(processor).items()) for a in state.evaluation.alerts()]


def _states(processor: Processor | None) -> dict[int, Any]:
    return processor.states if processor is not None else {}
