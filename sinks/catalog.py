"""The history queries by name, with their parameters as text (as a command line or a
query string gives them): :data:`CATALOG`, and :func:`run`, which parses the parameters
and calls the query. ``vigil history NAME`` and ``GET /history/NAME`` both go through it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sinks import history, reports
from sinks.queries import AGGREGATES, HistoryError, ReadOnly, clean, limit


def report(
    store: ReadOnly, *, now: datetime, since: str, until: str, kind: str, title: str,
    workflows: str,
) -> dict[str, Any]:  # fmt: skip
    """The data of ``vigil report`` (sinks.reports renders it as html, md or csv)."""
    return reports.build(
        store, now=now, since=since, until=until, kind=kind, title=title, workflows=workflows
    )


@dataclass(frozen=True)
class Param:
    name: str
    default: str | None  # None: required
    help: str


@dataclass(frozen=True)
class Query:
    fn: Callable[..., Any]
    params: tuple[Param, ...]
    help: str


_SINCE = Param("since", "24h", "start: a duration ago (24h), ISO 8601 or epoch ms")
_UNTIL = Param("until", "now", "end (exclusive), same forms as since")
_LIMIT = Param("limit", "100", "at most this many rows (each list)")
_SERIES_HELP = (
    "series key (metric|api|latency_ms|route=/a); kind|service|name alone takes all its series"
)
_SERVICE = Param("service", "", "only this service")
_WORKFLOW = Param("workflow", "", "only this workflow")

CATALOG: dict[str, Query] = {
    "series": Query(
        history.series,
        (
            Param("series", None, _SERIES_HELP),
            _SINCE,
            _UNTIL,
            Param("step", "5m", "bucket width"),
            Param("agg", "avg", "one of " + ", ".join(AGGREGATES)),
        ),
        "one series over time",
    ),
    "chart": Query(
        history.chart,
        (
            Param("series", None, "the series key (kind|service|name[|...])"),
            Param("since", "1h", _SINCE.help),
            _UNTIL,
            Param("window", "1m", "the windows to draw (one of VIGIL_WINDOWS)"),
        ),
        "one series as the dashboard charts it: windows, anomaly scores, alert spans",
    ),
    "workflows": Query(
        history.workflows,
        (Param("hours", "24", "the period (hours, or 30m, 7d)"), _WORKFLOW, _LIMIT),
        "workflow statistics with the trend against the period before",
    ),
    "steps": Query(
        history.steps, (_SINCE, _UNTIL, _WORKFLOW, _LIMIT), "slowest and most failing steps"
    ),
    "errors": Query(
        history.errors, (_SINCE, _UNTIL, _SERVICE, _LIMIT), "error types and recoveries"
    ),
    "resources": Query(
        history.resources,
        (_SINCE, _UNTIL, _SERVICE, _LIMIT),
        "CPU, memory and GPU use per service: mean, median, stddev, p95, max",
    ),
    "recoveries": Query(
        history.recoveries,
        (_SINCE, _UNTIL, _WORKFLOW, _LIMIT),
        "recovery attempts, success rate and time per step and per action type",
    ),
    "phases": Query(
        history.phases,
        (_SINCE, _UNTIL, _WORKFLOW, _LIMIT),
        "the phases of executions (run.phase): runs, failures, durations",
    ),
    "critical_path": Query(
        history.critical_path,
        (
            Param("workflow", None, "the workflow"),
            Param("execution_id", "", "only this execution"),
            _SINCE,
            _UNTIL,
            Param("executions", "500", "the newest N executions"),
            _LIMIT,
        ),
        "per step: how often it is on the critical path, its share of the path's time",
    ),
    "execution_resources": Query(
        history.execution_resources,
        (_SINCE, _UNTIL, _SERVICE, _WORKFLOW, _LIMIT),
        "CPU time, memory peak, disk and network bytes of executions, per workflow",
    ),
    "runtimes": Query(
        history.runtimes,
        (_SINCE, _UNTIL, _SERVICE, _LIMIT),
        "what each service runs on: Python, platform, git revision, package versions",
    ),
    "alerts": Query(
        history.alerts,
        (
            _SINCE,
            _UNTIL,
            Param("rule", "", "only this rule"),
            Param("series", "", "only this series"),
            Param("state", "", "pending, firing or resolved"),
            _LIMIT,
        ),
        "alert transitions",
    ),
    "alert_stats": Query(
        history.alert_stats,
        (_SINCE, _UNTIL, Param("rule", "", "only this rule"), _LIMIT),
        "alert statistics: transitions by rule, severity and state, time to resolve",
    ),
    "operations": Query(
        history.operations,
        (_SINCE, _UNTIL, _SERVICE, _LIMIT),
        "per operation (span name): spans, traces, errors and durations",
    ),
    "metrics": Query(
        history.metrics,
        (_SINCE, _UNTIL, _SERVICE, Param("limit", "1000", "at most this many series")),
        "the metrics each service sends, with their current value",
    ),
    "daily": Query(
        history.daily,
        (
            Param("days", "7", "the last N days, today included"),
            Param("by", "series", "series or workflow"),
            Param("kind", "", "only this kind (by series)"),
            _SERVICE,
            Param("name", "", "only this name (by series)"),
            Param("series", "", "only this series (by series)"),
            _WORKFLOW,
            Param("limit", "1000", "at most this many rows"),
        ),
        "daily rollups",
    ),
    "logs": Query(
        history.logs,
        (
            Param("text", "", "text found literally in the message (any case)"),
            Param("level", "", "a level, or LEVEL+ for it and above"),
            _SERVICE,
            _SINCE,
            _UNTIL,
            _LIMIT,
        ),
        "log search",
    ),
    "log_patterns": Query(
        history.log_patterns,
        (
            _SINCE,
            _UNTIL,
            _SERVICE,
            Param("level", "", "a level, or LEVEL+ for it and above"),
            _LIMIT,
        ),
        "log templates (Drain3) with their counts, and those new against the period before",
    ),
    "trace": Query(
        history.trace,
        (Param("trace_id", None, "the trace"), Param("limit", "10000", "at most this many spans")),
        "one trace as a span tree",
    ),
    "usage": Query(
        history.usage,
        (_SINCE, _UNTIL, _SERVICE, Param("length", "3", "length of call sequences"), _LIMIT),
        "feature usage by feature and user, common sequences",
    ),
    "distributions": Query(
        history.distributions,
        (_SINCE, _UNTIL, _SERVICE, Param("feature", "", "only this feature"), _LIMIT),
        "parameter combinations, parameters with failures, data sizes, workflow complexity",
    ),
    "correlations": Query(
        history.correlations,
        (_SINCE, _UNTIL, _SERVICE, Param("step", "5m", "bucket of the metric means"), _LIMIT),
        "error types that come together; metric series that move together",
    ),
    "failure_modes": Query(
        history.failure_modes,
        (_SINCE, _UNTIL, _SERVICE, _LIMIT),
        "per function: its error types, how often, the latest message",
    ),
    "feedback": Query(
        history.feedback,
        (_SINCE, _UNTIL, _SERVICE, _LIMIT),
        "satisfaction per feature and aspect: responses, mean, share satisfied, feedback",
    ),
    "models": Query(
        history.models,
        (_SINCE, _UNTIL, _SERVICE, _LIMIT),
        "model evaluations: accuracy first, latest, mean and change; confidence; samples",
    ),
    "optimizations": Query(
        history.optimizations,
        (_SINCE, _UNTIL, _SERVICE, _LIMIT),
        "optimizations: before, after, change in %, user impact",
    ),
    "utilization": Query(
        history.utilization,
        (_SINCE, _UNTIL, _SERVICE, _LIMIT),
        "allocated resources: mean, p95 and max use in %, allocated and used",
    ),
    "forecast": Query(
        history.forecast,
        (
            Param("series", None, _SERIES_HELP),
            Param("since", "7d", "the history it learns from"),
            Param("step", "1h", "bucket width (the forecast's step)"),
            Param("horizon", "6h", "how far ahead"),
            Param("agg", "avg", "one of " + ", ".join(AGGREGATES)),
        ),
        "a series' expected values and band for the hours ahead",
    ),
    "anomaly_patterns": Query(
        history.anomaly_patterns,
        (
            Param("since", "7d", _SINCE.help),
            _UNTIL,
            _SERVICE,
            Param("window", "1m", "the windows whose detector scores to read"),
            _LIMIT,
        ),
        "recurring anomalies: episodes per series by shape and hour of day",
    ),
    "compare": Query(
        history.compare,
        (
            Param("series", None, _SERIES_HELP),
            Param("at", "", "the moment to compare around (a time)"),
            Param("marker", "", "or: the latest log line with this name (e.g. deploy)"),
            Param("window", "1h", "how long before and after"),
        ),
        "a series before and after a marker",
    ),
    "report": Query(
        report,
        (
            Param("since", "24h", "the period: a duration ago, or a time"),
            _UNTIL,
            Param("kind", "workflows", "one of " + ", ".join(reports.KINDS)),
            Param("title", "", "the report's title"),
            Param("workflows", "", "only these workflows (comma-separated)"),
        ),
        "report data",
    ),
}


def run(store: ReadOnly, name: str, raw: Mapping[str, str], *, now: datetime) -> Any:
    """Run query ``name`` with text parameters ``raw``; a JSON-safe result."""
    query = CATALOG.get(name)
    if query is None:
        raise HistoryError(f"no history query {name!r}; there are: {', '.join(CATALOG)}")
    known = {p.name for p in query.params}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise HistoryError(f"{name} takes no parameter {unknown[0]!r}; it takes {sorted(known)}")
    kwargs: dict[str, Any] = {}
    for param in query.params:
        value = raw.get(param.name, param.default)
        if value is None or (param.default is None and not str(value).strip()):
            raise HistoryError(f"{name} needs the parameter {param.name!r} ({param.help})")
        if len(str(value)) > 1024:
            raise HistoryError(f"parameter {param.name!r} is longer than 1024 characters")
        if param.name == "limit":
            kwargs["limit_"] = limit(value)
        else:
            kwargs[param.name] = str(value)
    try:
        return clean(query.fn(store, now=now, **kwargs))
    except HistoryError:
        raise
    except ValueError as exc:  # int("x") and the like: a parameter that does not parse
        raise HistoryError(str(exc)) from None
