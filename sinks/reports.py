"""``vigil report``: how things did over a period and what to do about it.

:func:`build` asks the history queries and returns the report as JSON-safe data (the
worker serves it as the ``report`` history query); :func:`markdown`, :func:`csv_text`
and :func:`sinks.charts.html` render that data, so a report fetched over HTTP renders the
same as one built from the store.

A report has a ``kind`` (:data:`KINDS`): ``workflows`` (per workflow: score, charts,
bottlenecks, critical path, recommendations), ``usage`` (features, users, parameter
combinations and sizes, satisfaction), ``performance`` (operations, functions, what runs
used, resources, models, optimizations, allocations), ``reliability`` (errors, their
impact and correlations, failure modes, recoveries, alerts) or ``comprehensive`` (all).
Every kind but ``workflows`` is a list of sections, each a table and, where one figure
ranks its rows, a bar chart of it; options: a title, the period's end, and the workflows
to include.

The performance score (0-100) is the sum of four components, each ``points * max``:

| component   | max | full marks                          | zero                         |
| ----------- | --- | ----------------------------------- | ---------------------------- |
| reliability | 40  | success rate >= 99.5 %              | <= 80 %                      |
| stability   | 20  | p95 <= 1.5 x p50                    | p95 >= 4 x p50               |
| trend       | 20  | p95 no worse than the period before | p95 50 % worse               |
| alerts      | 20  | no alert fired                      | 5 or more alerts fired       |
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from producers.events import WORKFLOW_KINDS
from sinks import history
from sinks.queries import HistoryError, ReadOnly, clean, time_range
from sinks.tables import cell, md_escape, md_table

SPARK = "▁▂▃▄▅▆▇█"


def _clamp(x: float) -> float:
    return max(0.0, min(1.0, x))


def score(flow: dict[str, Any], fired: int) -> dict[str, Any]:
    """The score and its components (see the module doc) for one workflow's figures."""
    rate = flow["success_rate"] or 0.0
    ratio = (flow["p95_ms"] / flow["p50_ms"]) if flow["p50_ms"] else 1.0
    change = flow["trend"]["p95_ms_pct"]
    parts = {
        "reliability": (40, _clamp((rate - 0.8) / 0.195), f"success rate {rate:.1%}"),
        "stability": (20, _clamp((4.0 - ratio) / 2.5), f"p95 is {ratio:.2f} x p50"),
        "trend": (
            20,
            1.0 if change is None else _clamp(1.0 - change / 50.0),
            "no earlier period" if change is None else f"p95 {change:+.0f} % vs before",
        ),
        "alerts": (20, 1.0 - min(fired, 5) / 5, f"{fired} alert(s) fired"),
    }
    components = {
        name: {"points": round(weight * value, 1), "max": weight, "why": why}
        for name, (weight, value, why) in parts.items()
    }
    return {"score": round(sum(c["points"] for c in components.values())), "components": components}


def recommendations(w: dict[str, Any]) -> list[str]:
    """Concrete advice from one workflow's figures; each names the figure behind it."""
    out = []
    name = w["workflow"]
    if w["success_rate"] is not None and w["success_rate"] < 0.95:
        failing = w["failing_steps"][:1]
        where = (
            f"; the most failing step is {failing[0]['step']} "
            f"({failing[0]['failures']} failures, {failing[0]['failure_rate']:.0%} of its runs)"
            if failing
            else ""
        )
        out.append(f"Success rate {w['success_rate']:.1%} is below 95 %{where}: fix that first.")
    path = [s for s in w.get("critical_path", []) if s["path_share"] is not None]
    off_path = [s["step"] for s in path if s["on_path"] < 0.5]
    for step in sorted(path, key=lambda s: -s["path_share"])[:1]:
        if off_path and step["on_path"] >= 0.5 and step["path_share"] >= 0.4:
            out.append(  # only where steps run side by side: else the bottleneck says it
                f"Step {step['step']} is on the critical path of {step['on_path']:.0%} of "
                f"{name}'s runs and takes {step['path_share']:.0%} of it: shortening it "
                f"shortens the runs; {', '.join(off_path[:3])} seldom decide their length."
            )
    for step in w["bottlenecks"][:1]:
        if step["share"] >= 0.5 and len(w["bottlenecks"]) > 1:
            out.append(
                f"Step {step['step']} takes {step['share']:.0%} of {name}'s time "
                f"(mean {step['mean_ms']:.0f} ms, p95 {step['p95_ms']:.0f} ms): it is the "
                "bottleneck; speed it up, cache its input or split it to run in parallel."
            )
    if w["p50_ms"] and w["p95_ms"] / w["p50_ms"] >= 2.5:
        out.append(
            f"Durations vary widely (p95 {w['p95_ms']:.0f} ms is {w['p95_ms'] / w['p50_ms']:.1f}x"
            f" p50 {w['p50_ms']:.0f} ms): look for contention, retries or uneven inputs."
        )
    change = w["trend"]["p95_ms_pct"]
    if change is not None and change >= 20:
        out.append(
            f"p95 duration grew {change:.0f} % against the period before: compare around recent"
            f" deploys (vigil history compare 'execution.end|{w['service']}|{name}'"
            " --marker deploy)."
        )
    attempts = sum(r["attempts"] for r in w["recoveries"])
    if attempts >= 5:
        rate = sum(r["succeeded"] for r in w["recoveries"]) / attempts
        if rate < 0.5:
            worst = min(w["recoveries"], key=lambda r: r["success_rate"])
            out.append(
                f"Recoveries succeed only {rate:.0%} of {attempts} attempts (strategy "
                f"{worst['strategy'] or '-'} {worst['success_rate']:.0%}): retrying does not "
                "fix these failures; handle their cause or fail fast."
            )
    if w["alerts_fired"]:
        rules = ", ".join(sorted({a["rule"] for a in w["alerts"] if a["state"] == "firing"}))
        out.append(f"{w['alerts_fired']} alert(s) fired ({rules}): review them below.")
    for r in w["resources"]:
        if r["resource"].endswith("cpu_percent") and (r["p95"] or 0) >= 85:
            out.append(
                f"{w['service']} CPU p95 is {r['p95']:.0f} %: it runs near saturation; add "
                "capacity or cut work per run."
            )
    return out or ["No action needed: reliable, steady and no slower than before."]


KINDS = ("workflows", "usage", "performance", "reliability", "comprehensive")


@dataclass(frozen=True)
class Section:
    """One table of a report: ``rows`` of a history query, the ``columns`` shown, and the
    column whose values the section's bar chart ranks (None: no chart)."""

    title: str
    rows: list[dict[str, Any]]
    columns: list[str]
    chart: str | None = None
    label: str | None = None  # the column that names each bar (default: the first)

    def data(self) -> dict[str, Any]:
        return {"title": self.title, "rows": self.rows, "columns": self.columns,
                "chart": self.chart, "label": self.label or self.columns[0]}  # fmt: skip


def _sections(store: ReadOnly, now: datetime, window: dict[str, str], kind: str) -> list[Section]:
    per = {"since": window["since"], "until": window["until"], "service": "", "limit_": 50}
    out: list[Section] = []
    if kind in ("usage", "comprehensive"):
        usage = history.usage(store, now=now, **per, length="3")
        dist = history.distributions(store, now=now, **per, feature="")
        out += [
            Section("Features", usage["features"],
                    ["feature", "calls", "failures", "users", "sessions"], "calls"),
            Section("Most active users", usage["users"], ["user", "calls", "features", "sessions"],
                    "calls"),
            Section("Common sequences", usage["sequences"], ["sequence", "occurrences", "sessions"],
                    "occurrences"),
            Section("Parameter combinations", dist["combos"],
                    ["feature", "combo", "calls", "failures", "failure_rate", "mean_ms"], "calls",
                    "combo"),
            Section("Parameters that go with failures",
                    [p for p in dist["params"] if p["failures"]],
                    ["feature", "param", "value", "calls", "failures", "lift"], "lift", "value"),
            Section("Data sizes (power of ten)", dist["sizes"],
                    ["feature", "bucket", "calls", "min_size", "max_size", "mean_ms"]),
            Section("Satisfaction", history.feedback(store, now=now, **per),
                    ["feature", "aspect", "responses", "mean_score", "satisfied_rate"],
                    "mean_score", "feature"),
        ]  # fmt: skip
    if kind in ("performance", "comprehensive"):
        out += [
            Section("Operations (spans)", history.operations(store, now=now, **per),
                    ["service", "operation", "spans", "errors", "p50_ms", "p95_ms"], "p95_ms",
                    "operation"),
            Section("What runs used", history.execution_resources(store, now=now, **per,
                                                                  workflow=""),
                    ["workflow", "measured", "cpu_ms_mean", "cpu_ms_p95", "rss_peak_bytes_max"],
                    "cpu_ms_mean"),
            Section("Phases", history.phases(store, now=now, since=per["since"],
                                             until=per["until"], workflow="", limit_=50),
                    ["workflow", "phase", "runs", "mean_ms", "p95_ms"], "mean_ms", "phase"),
            Section("Resources", history.resources(store, now=now, **per),
                    ["service", "resource", "mean", "median", "p95", "max"]),
            Section("Allocations", history.utilization(store, now=now, **per),
                    ["resource", "type", "mean_percent", "p95_percent", "allocated", "used"],
                    "p95_percent", "resource"),
            Section("Models", history.models(store, now=now, **per),
                    ["model", "task", "evaluations", "latest_accuracy", "accuracy_change"],
                    "latest_accuracy", "model"),
            Section("Forecasts (next hour, and six hours ahead)", _forecasts(store, now, per),
                    ["series", "model", "next_expected", "next_low", "next_high",
                     "in_6h_expected", "mae"]),
            Section("Optimizations", history.optimizations(store, now=now, **per),
                    ["feature", "category", "optimization_id", "before", "after", "change_pct",
                     "user_impact"]),
        ]  # fmt: skip
    if kind in ("reliability", "comprehensive"):
        errors = history.errors(store, now=now, **per)
        rec = history.recoveries(
            store, now=now, since=per["since"], until=per["until"], workflow="", limit_=50
        )
        together = history.error_pairs(store, now=now, **per)  # no metric correlations
        stats = history.alert_stats(
            store, now=now, since=per["since"], until=per["until"], rule="", limit_=50
        )
        out += [
            Section("Error types", errors["types"], ["service", "type", "count", "last_message"],
                    "count", "type"),
            Section("Errors by severity and impact", errors["impact"],
                    ["type", "severity", "impact", "errors", "recovery_attempted", "recovered"]),
            Section("Failure modes", history.failure_modes(store, now=now, **per),
                    ["service", "function", "type", "errors", "last_message"], "errors",
                    "function"),
            Section("Errors that come together", together,
                    ["first", "second", "together", "lift"], "together", "first"),
            Section("Recoveries per step", rec["steps"],
                    ["workflow", "step", "action", "strategy", "attempts", "success_rate",
                     "mean_ms"], "attempts", "step"),
            Section("Alerts per rule", stats["rules"],
                    ["rule", "severity", "fired", "resolved", "mean_resolve_s"], "fired",
                    "rule"),
        ]  # fmt: skip
    return out


#: The busiest metric series a performance report forecasts.
FORECAST_SERIES = 3


def _forecasts(store: ReadOnly, now: datetime, per: dict[str, Any]) -> list[dict[str, Any]]:
    """The busiest metric series' hourly forecast from the week before the period's end."""
    metrics = history.metrics(store, now=now, **{**per, "limit_": 1000})
    busiest = sorted(metrics, key=lambda m: (-m["samples"], m["series"]))[:FORECAST_SERIES]
    out = []
    for m in busiest:
        fc = history.forecast(store, now=now, series=m["series"], since="7d", step="1h",
                              horizon="6h", agg="avg")  # fmt: skip
        ahead = fc["forecast"]
        if not ahead:  # too little history: nothing to show
            continue
        first, last = ahead[0], ahead[-1]
        out.append({
            "series": m["series"], "model": fc["model"], "mae": fc["mae"],
            "next_expected": first["expected"], "next_low": first["low"],
            "next_high": first["high"], "in_6h_expected": last["expected"],
        })  # fmt: skip
    return out


def build(
    store: ReadOnly,
    *,
    now: datetime,
    since: str,
    until: str = "now",
    kind: str = "workflows",
    title: str = "",
    workflows: str = "",
) -> dict[str, Any]:
    """The report of ``kind`` over [since, until); ``workflows``: a comma-separated list
    of the workflows to include (default all)."""
    if kind not in KINDS:
        raise HistoryError(f"report kind {kind!r} is not one of {', '.join(KINDS)}")
    start, end = time_range(since, until, now=now)
    # Both ends as times from here on: every query sees the same period.
    window = {"since": start.isoformat(), "until": end.isoformat()}
    chosen = {w.strip() for w in workflows.split(",") if w.strip()}
    data: dict[str, Any] = {"kind": kind, "title": title or f"Vigil {kind} report"}
    if kind in ("workflows", "comprehensive"):
        data.update(_workflows(store, now, window, (start, end), chosen))
    else:
        data.update(workflows=[], errors=[], alerts=[], resources=[], step_s=60,
                    recovery_success_rate=None)  # fmt: skip
    data["sections"] = [s.data() for s in _sections(store, now, window, kind)]
    if chosen:
        for section in data["sections"]:
            if section["rows"] and "workflow" in section["rows"][0]:
                section["rows"] = [r for r in section["rows"] if r["workflow"] in chosen]
    return clean({**data, "from": start, "to": end})


def _workflows(
    store: ReadOnly,
    now: datetime,
    window: dict[str, str],
    period: tuple[datetime, datetime],
    chosen: set[str],
) -> dict[str, Any]:
    start, end = period
    hours = (end - start).total_seconds() / 3600
    flows = history.workflows(store, now=end, hours=f"{hours:.6f}h", workflow="", limit_=1000)
    if chosen:
        flows = [f for f in flows if f["workflow"] in chosen]
    steps = history.steps(store, now=now, **window, workflow="", limit_=10_000)["slowest"]
    errors = history.errors(store, now=now, **window, service="", limit_=10)
    alerts = history.alerts(store, now=now, **window, rule="", series="", state="", limit_=10_000)
    resources = history.resources(store, now=now, **window, service="", limit_=1000)
    phases = history.phases(store, now=now, **window, workflow="", limit_=10_000)
    run_use = history.execution_resources(
        store, now=now, **window, service="", workflow="", limit_=10_000
    )
    recovery_steps = history.recoveries(store, now=now, **window, workflow="", limit_=10_000)
    step_s = max(60, int(hours * 3600 / 24) // 60 * 60)
    timeline = store.select(
        "workflow_timeline", {"start": start, "end": end, "step_s": step_s, "limit": 100_000}
    )
    by_flow: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for point in timeline:
        by_flow[(point["service"], point["workflow"])].append(point)
    workflows = []
    for flow in flows:
        key = (flow["service"], flow["workflow"])
        own = [s for s in steps if (s["service"], s["workflow"]) == key]
        total = sum(s["mean_ms"] * s["runs"] for s in own) or 1.0
        bottlenecks = sorted(
            ({**s, "share": s["mean_ms"] * s["runs"] / total} for s in own),
            key=lambda s: -s["share"],
        )
        flow_alerts = [
            a for a in alerts if a["name"] == flow["workflow"] and a["kind"] in WORKFLOW_KINDS
        ]
        fired = sum(a["state"] == "firing" for a in flow_alerts)
        path = (
            history.critical_path(store, now=now, **window, workflow=flow["workflow"],
                                  execution_id="", executions="200", limit_=10)["steps"]
            if own
            else []
        )  # fmt: skip
        w = {
            **flow,
            **score(flow, fired),
            "bottlenecks": bottlenecks[:5],
            "failing_steps": sorted(
                (s for s in own if s["failures"]), key=lambda s: -s["failures"]
            )[:5],
            "recoveries": [r for r in errors["recoveries"] if r["workflow"] == flow["workflow"]],
            "recovery_steps": [
                r for r in recovery_steps["steps"] if (r["service"], r["workflow"]) == key
            ],
            "phases": [p for p in phases if (p["service"], p["workflow"]) == key],
            "critical_path": path,
            "run_resources": [r for r in run_use if (r["service"], r["workflow"]) == key],
            "alerts": flow_alerts[:50],
            "alerts_fired": fired,
            "anomalies": sum(
                a["type"] == "detector" and a["state"] == "firing" for a in flow_alerts
            ),
            "resources": [r for r in resources if r["service"] == flow["service"]],
            "timeline": by_flow.get(key, []),
        }
        w["recommendations"] = recommendations(w)
        workflows.append(w)
    workflows.sort(key=lambda w: (w["score"], w["workflow"]))
    return {
        "step_s": step_s,
        "workflows": workflows,
        "errors": errors["types"],
        "recovery_success_rate": errors["recovery_success_rate"],
        "alerts": alerts[:200],
        "resources": resources,
    }


def sparkline(values: list[float | None]) -> str:
    known = [v for v in values if v is not None]
    if not known:
        return ""
    lo, hi = min(known), max(known)
    span = (hi - lo) or 1.0
    return "".join(
        " " if v is None else SPARK[min(7, int((v - lo) / span * 7.999))] for v in values
    )


_TABLES = {
    "Bottlenecks": ("bottlenecks", ["step", "share", "runs", "mean_ms", "p95_ms", "failures"]),
    "Critical path": ("critical_path", ["step", "on_path", "mean_ms", "path_share"]),
    "Phases": ("phases", ["phase", "runs", "failures", "mean_ms", "p95_ms"]),
    "Recoveries per step": (
        "recovery_steps",
        ["step", "action", "strategy", "attempts", "success_rate", "mean_ms"],
    ),
    "What runs used": (
        "run_resources",
        [
            "measured",
            "cpu_ms_mean",
            "cpu_ms_p95",
            "rss_peak_bytes_max",
            "io_write_bytes_mean",
            "net_rx_bytes_mean",
        ],
    ),
    "Alerts": ("alerts", ["at", "rule", "state", "value", "series"]),
    "Resources": ("resources", ["resource", "mean", "p95", "max"]),
}


def markdown(data: dict[str, Any]) -> str:
    title = md_escape(data.get("title") or "Vigil report")
    lines = [
        f"# {title}: {data['from']} to {data['to']}",
        "",
        "| workflow | score | runs | success | p50 ms | p95 ms | p95 trend % |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for w in data["workflows"]:
        figures = (w["score"], w["runs"], w["success_rate"], w["p50_ms"], w["p95_ms"])
        trend = w["trend"]["p95_ms_pct"]
        lines.append(
            f"| {md_escape(w['workflow'])} | "
            + " | ".join(cell(x) for x in (*figures, trend))
            + " |"
        )
    for w in data["workflows"]:
        title = f"{md_escape(w['workflow'])} ({md_escape(w['service'])})"
        lines += ["", f"## {title}: {w['score']}/100", ""]
        lines += md_table(
            [{"component": k, **v} for k, v in w["components"].items()],
            ["component", "points", "max", "why"],
        )
        p95 = [p["p95_ms"] for p in w["timeline"]]
        lines += [f"p95 duration per {data['step_s'] // 60} min: `{sparkline(p95)}`", ""]
        for heading, (key, columns) in _TABLES.items():
            lines += [f"### {heading}", "", *md_table(w[key], columns)]
        lines += ["### Recommendations", "", *(f"- {md_escape(r)}" for r in w["recommendations"])]
    lines += ["", "## Top errors", ""]
    lines += md_table(data["errors"], ["service", "type", "count", "last_message"])
    for section in data.get("sections", []):
        lines += ["", f"## {md_escape(section['title'])}", ""]
        lines += md_table(section["rows"], section["columns"])
    return "\n".join(lines)


def csv_text(data: dict[str, Any]) -> str:
    """One row per workflow: score, components and the figures behind them; a report of
    another kind: one row per section row, its section first, then its columns."""
    out = io.StringIO()
    writer = csv.writer(out)
    if data.get("kind", "workflows") != "workflows":
        for section in data["sections"]:
            writer.writerow(["section", *section["columns"]])
            for row in section["rows"]:
                writer.writerow([section["title"], *(row.get(c) for c in section["columns"])])
        return out.getvalue()
    names = ["reliability", "stability", "trend", "alerts"]
    writer.writerow(
        [
            "service",
            "workflow",
            "score",
            *names,
            "runs",
            "success_rate",
            "mean_ms",
            "p50_ms",
            "p95_ms",
            "p95_change_pct",
            "bottleneck",
            "bottleneck_share",
            "alerts_fired",
            "recommendations",
        ]
    )
    for w in data["workflows"]:
        top = w["bottlenecks"][0] if w["bottlenecks"] else {"step": "", "share": None}
        writer.writerow(
            [
                w["service"],
                w["workflow"],
                w["score"],
                *(w["components"][n]["points"] for n in names),
                w["runs"],
                w["success_rate"],
                w["mean_ms"],
                w["p50_ms"],
                w["p95_ms"],
                w["trend"]["p95_ms_pct"],
                top["step"],
                top["share"],
                w["alerts_fired"],
                " | ".join(w["recommendations"]),
            ]
        )
    return out.getvalue()
