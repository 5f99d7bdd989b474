"""History queries, the same through ``vigil history NAME`` and ``GET /history/NAME``.

Every query is a function ``fn(store, *, now, **params)`` over a :class:`ReadOnly` store
(``sinks.catalog`` says which parameters each takes and runs it; ``sinks.service`` serves
them on a thread of their own). Results are JSON-safe.

| name       | answers                                                                   |
| ---------- | ------------------------------------------------------------------------- |
| series     | one series over a time range, per step, with an aggregate                 |
| chart      | one series' windows, anomaly scores and alert spans (the dashboard's)     |
| workflows  | per workflow: runs, success rate, mean/p50/p95 duration, trend vs before  |
| steps      | the slowest and the most failing steps; steps per action type             |
| errors     | top error types; recovery attempts and their success rate                 |
| recoveries | recovery attempts, success and time per step and per action type          |
| phases     | the phases of executions: runs, failures, durations                       |
| critical_path | per step, how often it decides when a workflow's execution ends       |
| execution_resources | CPU time, memory peak, disk and network bytes per execution      |
| resources  | CPU, memory and GPU use per service                                       |
| runtimes   | what each service runs on: Python, platform, revision, packages           |
| alerts     | alert transitions                                                         |
| daily      | daily rollups per series or per workflow                                  |
| logs       | log lines and errors by text, level, service and time                     |
| trace      | one trace as a span tree, with its log lines                              |
| usage      | feature usage by feature, by user, and the most common call sequences     |
| distributions | parameter combinations, parameters with failures, data sizes, steps    |
| correlations | error types that come together; metrics that move together             |
| failure_modes | how each function fails: error types, counts, latest message           |
| feedback   | satisfaction per feature: responses, mean score, share satisfied, texts   |
| models     | model evaluations: accuracy first, latest, mean, confidence, samples      |
| optimizations | each optimization's figure before and after, change, user impact       |
| utilization | allocations: mean, p95 and max use in %, allocated and used             |
| forecast   | a series' expected values and band for the hours ahead (River)          |
| anomaly_patterns | recurring anomalies: episodes by series, hour of day and shape      |
| compare    | a series before and after a marker (a deploy): the change, significance   |
"""

from __future__ import annotations

import functools
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from producers import runtime
from producers.resources import NAMES as RESOURCE_NAMES
from sinks import critical, episodes, patterns
from sinks import forecast as forecasting
from sinks.queries import (
    AGGREGATES,
    LEVELS,
    MAX_POINTS,
    HistoryError,
    ReadOnly,
    change,
    like_pattern,
    parse_duration,
    parse_series,
    parse_time,
    time_range,
)
from sinks.significance import significance
from streams.figures import CHART, LINES, QUANTILE_NAMES, QUANTILES
from streams.windows import parse_windows

log = logging.getLogger(__name__)


def series_history(
    store: ReadOnly, *, now: datetime, series: str, since: str, until: str, step: str, agg: str
) -> dict[str, Any]:
    start, end = time_range(since, until, now=now)
    step_s = max(1, int(parse_duration(step)))
    if agg not in AGGREGATES:
        raise HistoryError(f"agg {agg!r} is not one of {', '.join(AGGREGATES)}")
    points = (end - start).total_seconds() / step_s
    if points > MAX_POINTS:
        raise HistoryError(f"{points:.0f} steps of {step}: at most {MAX_POINTS}, use a longer step")
    rows = store.select(
        "series",
        {
            **_series_filter(series),
            "start": start,
            "end": end,
            "step_s": step_s,
            "limit": MAX_POINTS,
        },
        agg=AGGREGATES[agg],
    )
    return {
        "series": series,
        "agg": agg,
        "step_s": step_s,
        "from": start,
        "to": end,
        "points": rows,
    }


#: The ``series`` query (its name is the parameter's: the function keeps another).
series = series_history

#: Steps a forecast looks ahead at most.
MAX_HORIZON = 1000


def forecast(
    store: ReadOnly,
    *,
    now: datetime,
    series: str,
    since: str,
    step: str,
    horizon: str,
    agg: str,
) -> dict[str, Any]:
    """``series`` per ``step`` (``agg`` of each bucket) since ``since``, and its expected
    values with their band for ``horizon`` ahead (``sinks.forecast``)."""
    past = series_history(store, now=now, series=series, since=since, until="now", step=step,
                          agg=agg)  # fmt: skip
    step_s = past["step_s"]
    ahead = int(parse_duration(horizon) // step_s)
    if not 1 <= ahead <= MAX_HORIZON:
        raise HistoryError(f"horizon {horizon} is {ahead} steps of {step}: 1 to {MAX_HORIZON}")
    step_ms = step_s * 1000
    end = int(past["to"].timestamp() * 1000) // step_ms * step_ms  # the step under way is left out
    points = [(int(p["t"].timestamp() * 1000), p["value"]) for p in past["points"]]
    start, values = forecasting.filled(points, step_ms, end)
    known = [{"t": _at(start + i * step_ms), "value": v} for i, v in enumerate(values)]
    answer = {"series": series, "agg": agg, "step_s": step_s, "history": known}
    try:
        out = forecasting.forecast(values, steps_per_day=86_400 // step_s, horizon=ahead)
    except ValueError as exc:  # an answer, not an error: the series is just too young
        return {**answer, "model": None, "mae": None, "forecast": [],
                "note": f"too little history to forecast: {exc}"}  # fmt: skip
    times = [end + h * step_ms for h in range(ahead)]
    return {
        **answer,
        "model": out["model"],
        "mae": out["mae"],
        "note": "",
        "forecast": [
            {"t": _at(t), "expected": e, "low": lo, "high": hi}
            for t, e, lo, hi in zip(times, out["expected"], out["low"], out["high"], strict=True)
        ],
    }


def anomaly_patterns(
    store: ReadOnly, *, now: datetime, since: str, until: str, service: str, window: str,
    limit_: int,
) -> dict[str, Any]:  # fmt: skip
    """The detectors' anomalous ``window`` windows as episodes (``sinks.episodes``): per
    series by shape and hour of day, with the hour they recur at; the newest episodes."""
    start, end = time_range(since, until, now=now)
    try:
        (spec,) = parse_windows(window)
    except ValueError as exc:
        raise HistoryError(f"window {window!r}: {exc}") from None
    rows = store.select("anomalous_windows", {
        "start": start, "end": end, "service": service, "window": window, "limit": MAX_ROWS,
    })  # fmt: skip
    by_series: dict[str, list[episodes.Row]] = {}
    medians: dict[str, float | None] = {}
    for r in rows:
        at = int(r["window_end"].timestamp() * 1000)
        by_series.setdefault(r["series"], []).append((at, r["value"], r["score"]))
        medians[r["series"]] = r["median"]
    out = episodes.analyse(by_series, medians, hop_ms=spec.hop_ms)
    for e in out["episodes"]:
        e["start"], e["end"] = _at(e.pop("start_ms")), _at(e.pop("end_ms"))
    for s in out["series"]:
        last = s.pop("last_ms")
        s["last"] = _at(last) if last is not None else None
    return {"series": out["series"][:limit_], "episodes": out["episodes"][:limit_],
            "truncated": len(rows) >= MAX_ROWS}  # fmt: skip


#: A chart shows at most this many windows; longer ranges are drawn from raw events.
CHART_WINDOWS = 360
#: Bucket widths (seconds) for charts drawn from raw events: the first giving at most
#: CHART_BUCKETS points.
CHART_STEPS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400)
CHART_BUCKETS = 240


def chart(
    store: ReadOnly, *, now: datetime, series: str, since: str, until: str, window: str
) -> dict[str, Any]:
    """One series as the dashboard charts it: count, errors, mean, min, max and p50/p95/p99
    per point, the detectors' anomaly scores, and the spans its alerts were pending or
    firing. Points are its closed ``window`` windows when the range holds at most
    :data:`CHART_WINDOWS` of them, else buckets of its raw events."""
    key = parse_series(series)
    kind, service, name = key.kind, key.service, key.name
    start, end = time_range(since, until, now=now)
    width_text, _, hop_text = window.partition("/")
    hop_s = int(parse_duration(hop_text or width_text))
    span_s = (end - start).total_seconds()
    where = {"kind": kind, "service": service, "name": name, "series": series}
    bounds = {"start": start, "end": end, "limit": MAX_POINTS}
    if span_s / hop_s <= CHART_WINDOWS:
        source, step_s = "windows", hop_s
        points = store.select(
            "chart_windows", {**where, **bounds, "window": window}, figures=", ".join(CHART)
        )
    else:
        source = "events"
        step_s = next((s for s in CHART_STEPS if span_s / s <= CHART_BUCKETS), CHART_STEPS[-1])
        quantiles = ", ".join(map(str, QUANTILES))
        params = {**where, **bounds, "step_s": step_s}
        points = store.select("chart_events", params, quantiles=quantiles)
        for point in points:
            found = point.pop("q") or [None] * len(QUANTILES)
            point.update(zip(QUANTILE_NAMES, found, strict=True))
    scores = store.select("chart_scores", {**where, **bounds, "step_s": step_s})
    transitions = store.select("chart_alerts", {"series": series, **bounds})
    others = []
    if not points:  # a key without its tags, say: the series of that name to choose from
        named = {"kind": kind, "service": service, "name": name, "start": start, "end": end}
        others = [row["series"] for row in store.select("chart_series", named)]
    return {
        "series": series,
        "window": window,
        "source": source,
        "step_s": step_s,
        "from": start,
        "to": end,
        "points": points,
        # What the chart draws as lines on the values' scale.
        "lines": list(LINES),
        "scores": scores,
        "spans": alert_spans(transitions, start),
        "series_of_name": others,
    }


def alert_spans(transitions: list[dict[str, Any]], start: datetime) -> list[dict[str, Any]]:
    """The stretches each rule's alert was pending or firing from ``start`` on, from its
    transitions before the range's end in time order (``to`` None: still so at the end).

    >>> t = lambda m: datetime(2026, 1, 1, 0, m, tzinfo=UTC)
    >>> rows = [{"at": t(m), "rule": "r", "severity": "warning", "state": s}
    ...         for m, s in ((1, "pending"), (3, "firing"), (7, "resolved"), (9, "firing"))]
    >>> [(s["state"], s["from"].minute, s["to"] and s["to"].minute)
    ...  for s in alert_spans(rows, t(2))]
    [('pending', 2, 3), ('firing', 3, 7), ('firing', 9, None)]
    """
    spans: list[dict[str, Any]] = []
    open_: dict[str, dict[str, Any]] = {}
    for row in transitions:
        rule, at = row["rule"], row["at"]
        if at.tzinfo is None:  # the driver gives UTC times without a zone
            at = at.replace(tzinfo=UTC)
        current = open_.pop(rule, None)
        if current is not None:
            current["to"] = at
            if at > start:
                current["from"] = max(current["from"], start)
                spans.append(current)
        if row["state"] in ("pending", "firing"):
            open_[rule] = {
                "rule": rule,
                "severity": row["severity"],
                "state": row["state"],
                "from": at,
                "to": None,
            }
    for current in open_.values():
        current["from"] = max(current["from"], start)
        spans.append(current)
    return sorted(spans, key=lambda s: (s["from"], s["rule"]))


def workflows(
    store: ReadOnly, *, now: datetime, hours: str, workflow: str, limit_: int
) -> list[dict[str, Any]]:
    """The last ``hours`` against the period of the same length before it."""
    span = timedelta(seconds=parse_duration(hours, unit="h"))
    rows = store.select(
        "workflows",
        {
            "start": now - 2 * span,
            "mid": now - span,
            "end": now,
            "workflow": workflow,
            "limit": limit_,
        },
    )
    out = []
    for row in rows:
        if not row["runs"]:
            continue  # ran only in the period before
        previous = {k.removeprefix("prev_"): row.pop(k) for k in list(row) if k.startswith("prev_")}
        if not previous["runs"]:
            previous = {k: None for k in previous}
        row["previous"] = previous
        row["trend"] = {
            "runs_pct": _pct(change(row["runs"], previous["runs"])),
            "success_rate_points": (
                None
                if previous["success_rate"] is None
                else (row["success_rate"] - previous["success_rate"]) * 100
            ),
            "mean_ms_pct": _pct(change(row["mean_ms"], previous["mean_ms"])),
            "p95_ms_pct": _pct(change(row["p95_ms"], previous["p95_ms"])),
        }
        out.append(row)
    return out


def steps(
    store: ReadOnly, *, now: datetime, since: str, until: str, workflow: str, limit_: int
) -> dict[str, Any]:
    start, end = time_range(since, until, now=now)
    rows = store.select(
        "steps", {"start": start, "end": end, "workflow": workflow, "limit": 100_000}
    )
    slowest = sorted(rows, key=lambda r: (-(r["p95_ms"] or 0), r["workflow"], r["step"]))
    failing = sorted(
        (r for r in rows if r["failures"]),
        key=lambda r: (-r["failures"], -r["failure_rate"], r["workflow"], r["step"]),
    )
    params = {"start": start, "end": end, "workflow": workflow, "limit": limit_}
    by_action = store.select("step_actions", params)
    return {"slowest": slowest[:limit_], "failing": failing[:limit_], "by_action": by_action}


def recoveries(
    store: ReadOnly, *, now: datetime, since: str, until: str, workflow: str, limit_: int
) -> dict[str, Any]:
    """Recovery attempts per step (with its action type) and strategy, and per action
    type over every step: attempts, success rate, and the mean and longest recovery."""
    rows = _recovery_steps(store, now, since, until, workflow=workflow)
    by_action = _roll_up(rows, "action")
    return {"steps": rows[:limit_], "actions": by_action[:limit_]}


def _recovery_steps(
    store: ReadOnly, now: datetime, since: str, until: str, *, workflow: str = "",
    service: str = "",
) -> list[dict[str, Any]]:  # fmt: skip
    start, end = time_range(since, until, now=now)
    params = {"start": start, "end": end, "workflow": workflow, "service": service}
    return store.select("recovery_steps", {**params, "limit": MAX_ROWS})


def _roll_up(rows: list[dict[str, Any]], by: str) -> list[dict[str, Any]]:
    """``recovery_steps`` rows summed per service, workflow and ``by`` (strategy or
    action), the most attempted first: attempts, successes, and the timed ones' mean
    (weighted by their count) and longest."""
    out: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in rows:
        key = (r["service"], r["workflow"], r[by])
        a = out.setdefault(key, {"service": key[0], "workflow": key[1], by: key[2],
                                 "attempts": 0, "succeeded": 0, "timed": 0, "total_ms": 0.0,
                                 "max_ms": None})  # fmt: skip
        a["attempts"] += r["attempts"]
        a["succeeded"] += r["succeeded"]
        if r["timed"]:
            a["timed"] += r["timed"]
            a["total_ms"] += r["mean_ms"] * r["timed"]
            a["max_ms"] = max(a["max_ms"] or 0.0, r["max_ms"])
    rolled = [
        {
            "service": a["service"], "workflow": a["workflow"], by: a[by],
            "attempts": a["attempts"], "succeeded": a["succeeded"],
            "success_rate": a["succeeded"] / a["attempts"], "timed": a["timed"],
            "mean_ms": a["total_ms"] / a["timed"] if a["timed"] else None, "max_ms": a["max_ms"],
        }
        for a in out.values()
    ]  # fmt: skip
    return sorted(rolled, key=lambda a: (-a["attempts"], a["service"], a["workflow"], a[by]))


#: Rows a query that is summarised in Python reads at most.
MAX_ROWS = 100_000


def phases(
    store: ReadOnly, *, now: datetime, since: str, until: str, workflow: str, limit_: int
) -> list[dict[str, Any]]:
    """Per workflow, its phases in the order they first ran."""
    start, end = time_range(since, until, now=now)
    rows = store.select(
        "phases", {"start": start, "end": end, "workflow": workflow, "limit": limit_}
    )
    for r in rows:
        r.pop("first_start")
    return rows


def critical_path(
    store: ReadOnly,
    *,
    now: datetime,
    workflow: str,
    execution_id: str,
    since: str,
    until: str,
    executions: str,
    limit_: int,
) -> dict[str, Any]:
    """Over the newest ``executions`` of ``workflow`` (or one, ``execution_id``): per
    step, how often it is on the critical path and its share of the path's time
    (``sinks.critical``), and the path of the newest execution, link by link."""
    if not workflow:
        raise HistoryError("workflow is required")
    start, end = time_range(since, until, now=now)
    count = int(executions) if executions.isdigit() else 0
    if not 1 <= count <= 10_000:
        raise HistoryError(f"executions must be a whole number from 1 to 10000, got {executions!r}")
    rows = store.select("execution_steps", {
        "start": start, "end": end, "workflow": workflow, "execution_id": execution_id,
        "executions": count, "limit": MAX_ROWS,
    })  # fmt: skip
    runs: dict[str, list[critical.Step]] = {}
    for r in rows:
        ended = r["ended_at"].timestamp() * 1000
        step = critical.Step(r["step"], ended - r["duration_ms"], ended, tuple(r["after"]))
        runs.setdefault(r["execution_id"], []).append(step)
    out = critical.summarize(runs.values())
    out["steps"] = out["steps"][:limit_]
    latest = max(runs, key=lambda e: (max(s.end for s in runs[e]), e), default=None)
    out["latest"] = None if latest is None else {
        "execution_id": latest,
        "path": [
            {"step": link.step, "duration_ms": link.duration_ms, "waited_ms": link.waited_ms,
             "started_at": _at(link.start), "ended_at": _at(link.end)}
            for link in critical.path(runs[latest])
        ],
    }  # fmt: skip
    out["truncated"] = len(rows) >= MAX_ROWS
    return out


def _at(ms: float) -> datetime:
    """A time of ms since the epoch; answers carry datetimes, which ``clean`` writes as
    every other answer's times."""
    return datetime.fromtimestamp(ms / 1000, UTC)


def runtimes(
    store: ReadOnly, *, now: datetime, since: str, until: str, service: str, limit_: int
) -> list[dict[str, Any]]:
    """Per service and distinct runtime (Python, platform, revision): process starts,
    hosts, first and last seen, and the newest report (with its package versions)."""
    start, end = time_range(since, until, now=now)
    params = {"start": start, "end": end, "service": service, "limit": limit_}
    rows = store.select("runtimes", {**params, "name": runtime.NAME})
    for r in rows:
        try:
            r["latest"] = orjson.loads(r["latest"])
        except orjson.JSONDecodeError:
            r["latest"] = None
    return rows


def errors(
    store: ReadOnly, *, now: datetime, since: str, until: str, service: str, limit_: int
) -> dict[str, Any]:
    start, end = time_range(since, until, now=now)
    params = {"start": start, "end": end, "service": service, "limit": limit_}
    steps = _recovery_steps(store, now, since, until, service=service)
    recoveries = _roll_up(steps, "strategy")[:limit_]
    attempts = sum(r["attempts"] for r in recoveries)
    return {
        "types": store.select("error_types", params),
        "impact": store.select("error_impact", params),
        "recoveries": recoveries,
        "recovery_attempts": attempts,
        "recovery_success_rate": (
            sum(r["succeeded"] for r in recoveries) / attempts if attempts else None
        ),
    }


def alert_stats(
    store: ReadOnly, *, now: datetime, since: str, until: str, rule: str, limit_: int
) -> dict[str, Any]:
    """Per rule and severity: transitions by state, series touched, time to resolve; and
    the totals by state and by severity."""
    start, end = time_range(since, until, now=now)
    rows = store.select("alert_stats", {"start": start, "end": end, "rule": rule, "limit": limit_})
    by_severity: dict[str, int] = {}
    for r in rows:
        by_severity[r["severity"]] = by_severity.get(r["severity"], 0) + r["fired"]
    by_state = {s: sum(r[key] for r in rows) for s, key in _STATES}
    return {"rules": rows, "fired_by_severity": by_severity, "by_state": by_state}


_STATES = (("pending", "pending"), ("firing", "fired"), ("resolved", "resolved"))


def _per_service(
    query: str, store: ReadOnly, *, now: datetime, since: str, until: str, service: str,
    limit_: int, **extra: Any,
) -> list[dict[str, Any]]:  # fmt: skip
    """The rows of ``query`` over the period, for one service or all."""
    start, end = time_range(since, until, now=now)
    params = {"start": start, "end": end, "service": service, "limit": limit_}
    return store.select(query, {**params, **extra})


operations = functools.partial(_per_service, "operations")
metrics = functools.partial(_per_service, "metrics")
#: What executions used, per workflow (the figures of ``producers.measure``).
execution_resources = functools.partial(_per_service, "execution_resources")
#: CPU, memory, GPU, disk, network and container samples per service.
resources = functools.partial(_per_service, "resources", names=list(RESOURCE_NAMES))


def alerts(
    store: ReadOnly,
    *,
    now: datetime,
    since: str,
    until: str,
    rule: str,
    series: str,
    state: str,
    limit_: int,
) -> list[dict[str, Any]]:
    start, end = time_range(since, until, now=now)
    if state and state not in ("pending", "firing", "resolved"):
        raise HistoryError(f"state {state!r} is not pending, firing or resolved")
    params = {"start": start, "end": end, "rule": rule, "series": series, "state": state}
    return store.select("alerts", {**params, "limit": limit_})


def daily(
    store: ReadOnly,
    *,
    now: datetime,
    days: str,
    by: str,
    kind: str,
    service: str,
    name: str,
    series: str,
    workflow: str,
    limit_: int,
) -> list[dict[str, Any]]:
    """Rollups of the last ``days`` days (today included), per series or per workflow."""
    n = int(parse_duration(days, unit="d") // 86400) or 1
    last = now.date()
    params = {"first": last - timedelta(days=n - 1), "last": last, "limit": limit_}
    if by == "workflow":
        rows = store.select("workflow_daily", {**params, "workflow": workflow})
        key = "quantiles_ms"
    elif by == "series":
        filters = {"kind": kind, "service": service, "name": name, "series": series}
        rows = store.select("series_daily", {**params, **filters})
        key = "quantiles"
    else:
        raise HistoryError(f"by {by!r} is not series or workflow")
    for row in rows:
        quantiles = row.pop(key)
        suffix = "_ms" if key.endswith("_ms") else ""
        for label, q in zip(("p50", "p95", "p99"), quantiles, strict=True):
            row[label + suffix] = q
    return rows


def logs(
    store: ReadOnly,
    *,
    now: datetime,
    text: str,
    level: str,
    service: str,
    since: str,
    until: str,
    limit_: int,
) -> list[dict[str, Any]]:
    """Newest first. ``level`` is one level or ``warning+`` (that level and above)."""
    start, end = time_range(since, until, now=now)
    pattern = like_pattern(text) if text else ""
    params = {"start": start, "end": end, "service": service, "levels": _levels(level)}
    return store.select("logs", {**params, "pattern": pattern, "limit": limit_})


def _levels(level: str) -> list[str]:
    """``level`` (or ``LEVEL+``: it and above) as the levels it takes; [] for all."""
    if not level:
        return []
    base = level.rstrip("+")
    if base not in LEVELS:
        raise HistoryError(f"level {level!r} is not one of {', '.join(LEVELS)} (or LEVEL+)")
    return list(LEVELS[LEVELS.index(base) :]) if level.endswith("+") else [base]


#: Log lines mined per period at most (the baseline and the period each).
MINED_LINES = 200_000


def log_patterns(
    store: ReadOnly,
    *,
    now: datetime,
    since: str,
    until: str,
    service: str,
    level: str,
    limit_: int,
) -> dict[str, Any]:
    """The templates of the period's log lines (``sinks.patterns``), the most frequent
    first, each flagged new when no line of the period as long just before had it."""
    start, end = time_range(since, until, now=now)
    base = {"service": service, "levels": _levels(level), "limit": MINED_LINES}
    before = start - (end - start)
    baseline = store.select("log_lines", {**base, "start": before, "end": start})
    period = store.select("log_lines", {**base, "start": start, "end": end})
    mined = patterns.mine(
        ((r["ts"], r["level"], r["message"]) for r in baseline),
        ((r["ts"], r["level"], r["message"]) for r in period),
    )
    return {
        "lines": len(period),
        "templates": len(mined),
        "new": sum(p["new"] for p in mined),
        "truncated": len(period) >= MINED_LINES,
        "patterns": mined[:limit_],
    }


def trace(store: ReadOnly, *, now: datetime, trace_id: str, limit_: int) -> dict[str, Any]:
    """The spans of ``trace_id`` as a tree (children by start time), with its log lines."""
    if not trace_id:
        raise HistoryError("trace_id is required (a log line's trace_id, for example)")
    spans = store.select("trace_spans", {"trace_id": trace_id, "limit": limit_})
    lines = store.select("trace_logs", {"trace_id": trace_id, "limit": limit_})
    by_id = {s["span_id"]: {**_span_node(s), "logs": [], "children": []} for s in spans}
    roots = []
    for node in by_id.values():
        parent = by_id.get(node["parent_id"])
        (parent["children"] if parent is not None else roots).append(node)
    loose = []
    for line in lines:
        owner = by_id.get(line["span_id"])
        (owner["logs"] if owner is not None else loose).append(line)
    ends = [s["ts"] + timedelta(milliseconds=s["duration_ms"]) for s in spans]
    return {
        "trace_id": trace_id,
        "spans": len(spans),
        "started_at": min((s["ts"] for s in spans), default=None),
        "duration_ms": (
            (max(ends) - min(s["ts"] for s in spans)).total_seconds() * 1000 if spans else None
        ),
        "errors": sum(not s["ok"] for s in spans),
        "roots": roots,
        "logs": loose,  # log lines whose span is not stored (sampled out or still open)
    }


def _span_node(span: dict[str, Any]) -> dict[str, Any]:
    """A stored span as the trace tree shows it: its kind and span events out of its
    attributes (``internal`` and none when it has no such attributes)."""
    node = {k: v for k, v in span.items() if k != "attrs"}
    try:
        attrs = orjson.loads(span.get("attrs") or "{}")
    except orjson.JSONDecodeError:
        attrs = {}
    attrs = attrs if isinstance(attrs, dict) else {}
    node["kind"] = attrs.get("span_kind", "internal")
    node["events"] = attrs.get("events", [])
    return node


def usage(
    store: ReadOnly,
    *,
    now: datetime,
    since: str,
    until: str,
    service: str,
    length: str,
    limit_: int,
) -> dict[str, Any]:
    start, end = time_range(since, until, now=now)
    n = int(length)
    if not 2 <= n <= 10:
        raise HistoryError(f"length must be between 2 and 10, got {n}")
    params = {"start": start, "end": end, "service": service, "limit": limit_}
    users = store.select("usage_users", params)
    if users:
        named = {"users": [u["user"] for u in users], **params}
        top = {r["user"]: r["top_features"] for r in store.select("usage_user_features", named)}
        for u in users:
            u["top_features"] = top.get(u["user"], [])
    return {
        "features": store.select("usage_features", params),
        "users": users,
        "sequences": store.select("usage_sequences", {**params, "length": n}),
    }


def distributions(
    store: ReadOnly, *, now: datetime, since: str, until: str, service: str, feature: str,
    limit_: int,
) -> dict[str, Any]:  # fmt: skip
    """How uses spread: per parameter combination, per parameter value (with its lift:
    the value's failure rate over its feature's), per power of ten of the data size; and
    executions per number of steps (a workflow's complexity)."""
    start, end = time_range(since, until, now=now)
    params = {"start": start, "end": end, "service": service, "limit": limit_}
    use = {**params, "feature": feature}
    values = store.select("usage_params", use)
    for v in values:
        total, failed = v.pop("feature_calls"), v.pop("feature_failures")
        v["failure_rate"] = v["failures"] / v["calls"]
        base = failed / total if total else 0.0
        v["lift"] = v["failure_rate"] / base if base else None
    return {
        "combos": store.select("usage_combos", use),
        "params": values,
        "sizes": store.select("usage_sizes", use),
        "complexity": store.select("workflow_complexity", params),
    }


def error_pairs(
    store: ReadOnly, *, now: datetime, since: str, until: str, service: str, limit_: int
) -> list[dict[str, Any]]:
    """Error types that come together, each pair with its lift (``correlations``)."""
    pairs = _per_service("error_pairs", store, now=now, since=since, until=until,
                         service=service, limit_=limit_)  # fmt: skip
    for p in pairs:
        expected = p["first_groups"] * p["second_groups"] / p["groups"] if p["groups"] else 0
        p["lift"] = p["together"] / expected if expected else None
    return pairs


def correlations(
    store: ReadOnly, *, now: datetime, since: str, until: str, service: str, step: str,
    limit_: int,
) -> dict[str, Any]:  # fmt: skip
    """Error types that come together (per execution, trace or minute; with their lift:
    how much more often than if they were independent) and metric series that move
    together (Pearson's r of their means per ``step``, the 50 busiest series)."""
    start, end = time_range(since, until, now=now)
    params = {"start": start, "end": end, "service": service, "limit": limit_}
    pairs = error_pairs(store, now=now, since=since, until=until, service=service, limit_=limit_)
    step_s = int(parse_duration(step, unit="s"))
    if not 1 <= step_s <= 86_400:
        raise HistoryError(f"step must be from 1s to 1d, got {step!r}")
    metrics = store.select(
        "metric_correlations",
        {**params, "step_s": step_s, "min_buckets": 5, "max_series": 50},
    )
    return {"errors": pairs, "metrics": metrics}


failure_modes = functools.partial(_per_service, "failure_modes")
#: Satisfaction, model evaluations, optimizations and allocations (``producers.outcomes``).
feedback = functools.partial(_per_service, "feedback")
models = functools.partial(_per_service, "models")
optimizations = functools.partial(_per_service, "optimizations")
utilization = functools.partial(_per_service, "utilization")


def compare(
    store: ReadOnly,
    *,
    now: datetime,
    series: str,
    at: str,
    marker: str,
    window: str,
) -> dict[str, Any]:
    """``series`` in the ``window`` before and after ``at`` (or the latest ``marker``)."""
    params = _series_filter(series)
    if bool(at) == bool(marker):
        raise HistoryError("give one of at (a time) or marker (the name of a marker log line)")
    if marker:
        found = store.select("marker", {"marker": marker, "until": now, "service": ""})[0]
        if not found["seen"]:
            raise HistoryError(f"no log line named {marker!r} marks a time")
        moment = found["at"]
    else:
        moment = parse_time(at, now=now)
    span = timedelta(seconds=parse_duration(window))
    row = store.select(
        "compare", {**params, "at": moment, "start": moment - span, "end": moment + span}
    )[0]
    sides = {
        side: {k.removeprefix(side + "_"): row[k] for k in row if k.startswith(side + "_")}
        for side in ("before", "after")
    }
    return {
        "series": series,
        "at": moment,
        "window_s": span.total_seconds(),
        **sides,
        **significance(row),
    }


def _series_filter(series: str) -> dict[str, str]:
    """The parameters that select ``series``: its kind, service and name (the primary key),
    and the key itself, empty when it is only ``kind|service|name`` (all its series)."""
    key = parse_series(series)
    return {
        "kind": key.kind,
        "service": key.service,
        "name": key.name,
        "series": "" if key.whole else series,
    }


def _pct(ratio: float | None) -> float | None:
    return None if ratio is None else ratio * 100
