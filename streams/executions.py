"""Live workflow executions of one partition: progress, ETA, and per-workflow statistics.

Workflow events travel on the partition of their workflow, so one partition sees every
event of an execution. :class:`Executions` follows them:

- each running execution: status, current step, steps done of declared, progress,
  elapsed time and an ETA (the recent mean durations of the steps still to run: by name
  when the workflow's step order is known, else the workflow's mean step duration);
- each workflow, over a horizon of event time (default 24 h): runs, success rate, mean,
  p50 and p95 duration, each step's share of the time (the bottlenecks), recovery
  attempts and their success rate.

Time is passed in: ``now_ms`` is the wall clock of whoever asks.

>>> ex = Executions()
>>> ex.add({"kind": "execution.start", "ts": 0, "service": "s", "name": "etl",
...         "execution_id": "r1", "attrs": {"total_steps": 2}})
>>> ex.add({"kind": "step.start", "ts": 0, "service": "s", "name": "etl",
...         "execution_id": "r1", "step": "extract", "attrs": {"index": 0}})
>>> ex.execution("r1", now_ms=500)["progress_pct"]
0.0
"""

from __future__ import annotations

import collections
import math
from dataclasses import asdict, dataclass, field
from typing import Any

DAY_MS = 24 * 3600 * 1000
#: At most this many samples per workflow and per step are kept within the horizon.
MAX_SAMPLES = 10_000
#: Durations averaged for an ETA.
RECENT = 20
#: Finished executions kept for lookup, per partition.
MAX_FINISHED = 1_000


@dataclass
class Run:
    execution_id: str
    workflow: str
    service: str
    started_ms: int
    status: str = "running"
    total_steps: int | None = None
    steps_done: int = 0
    current_step: str | None = None
    step_started_ms: int | None = None
    last_ms: int = 0
    ended_ms: int | None = None
    duration_ms: float | None = None
    recoveries: int = 0
    recoveries_ok: int = 0


@dataclass
class WorkflowStats:
    service: str
    #: (end ts, duration ms, ok) of finished runs, oldest first.
    runs: collections.deque[list[Any]] = field(default_factory=collections.deque)
    #: step -> (end ts, duration ms), oldest first.
    steps: dict[str, collections.deque[list[Any]]] = field(default_factory=dict)
    #: step -> position in the workflow, from the events' ``index`` or first-seen order.
    order: dict[str, int] = field(default_factory=dict)
    #: (ts, ok) of recovery attempts.
    recoveries: collections.deque[list[Any]] = field(default_factory=collections.deque)


class Executions:
    def __init__(self, *, horizon_ms: int = DAY_MS) -> None:
        self.horizon_ms = horizon_ms
        self.running: dict[str, Run] = {}
        self.finished: collections.OrderedDict[str, Run] = collections.OrderedDict()
        self.workflows: dict[str, WorkflowStats] = {}
        self.max_ts = 0

    # -- events -------------------------------------------------------------------------
    def add(self, ev: dict[str, Any]) -> None:
        """Apply one validated workflow event."""
        kind, ts, eid = ev["kind"], ev["ts"], ev["execution_id"]
        attrs = ev.get("attrs") or {}
        self.max_ts = max(self.max_ts, ts)
        wf = self.workflows.get(ev["name"])
        if wf is None:
            wf = self.workflows[ev["name"]] = WorkflowStats(ev["service"])
        run = self.running.get(eid)
        if run is None:
            if eid in self.finished:
                return  # a straggler of an execution that has ended
            run = self.running[eid] = Run(eid, ev["name"], ev["service"], started_ms=ts)
        run.last_ms = max(run.last_ms, ts)
        total = _int(attrs.get("total_steps"))
        if total is not None:
            run.total_steps = total
        if kind == "execution.start":
            run.started_ms = min(run.started_ms, ts)
        elif kind == "step.start":
            run.current_step, run.step_started_ms = ev["step"], ts
            index = _int(attrs.get("index"))
            if ev["step"] not in wf.order:
                wf.order[ev["step"]] = index if index is not None else len(wf.order)
        elif kind == "step.end":
            if ev.get("ok") is not False:
                run.steps_done += 1
            if run.current_step == ev["step"]:
                run.current_step = run.step_started_ms = None
            duration = ev.get("value")
            if duration is not None:
                samples = wf.steps.setdefault(ev["step"], collections.deque())
                _push(samples, [ts, duration])
        elif kind == "recovery":
            run.recoveries += 1
            run.recoveries_ok += ev.get("ok") is True
            _push(wf.recoveries, [ts, ev.get("ok") is True])
        elif kind == "execution.end":
            self._end(run, wf, ev)
        self._expire(wf)

    def _end(self, run: Run, wf: WorkflowStats, ev: dict[str, Any]) -> None:
        ok = ev.get("ok")
        run.status = ev.get("status") or ("success" if ok is not False else "failed")
        run.ended_ms = ev["ts"]
        duration = ev.get("value")
        run.duration_ms = float(duration) if duration is not None else ev["ts"] - run.started_ms
        run.current_step = run.step_started_ms = None
        _push(wf.runs, [ev["ts"], run.duration_ms, ok is not False])
        del self.running[run.execution_id]
        self.finished[run.execution_id] = run
        if len(self.finished) > MAX_FINISHED:
            self.finished.popitem(last=False)

    def _expire(self, wf: WorkflowStats) -> None:
        oldest = self.max_ts - self.horizon_ms
        for samples in (wf.runs, wf.recoveries, *wf.steps.values()):
            while samples and samples[0][0] < oldest:
                samples.popleft()

    # -- views --------------------------------------------------------------------------
    def execution(self, execution_id: str, *, now_ms: int) -> dict[str, Any] | None:
        run = self.running.get(execution_id) or self.finished.get(execution_id)
        if run is None:
            return None
        view = asdict(run)
        done = run.status != "running"
        view["elapsed_ms"] = run.duration_ms if done else max(now_ms - run.started_ms, 0)
        if run.total_steps:
            share = 1.0 if run.status == "success" else run.steps_done / run.total_steps
            view["progress_pct"] = round(100.0 * min(share, 1.0), 1)
        else:
            view["progress_pct"] = None
        view["eta_ms"] = 0.0 if done else self._eta(run, now_ms)
        return view

    def _eta(self, run: Run, now_ms: int) -> float | None:
        """Expected time left: recent mean durations of the steps still to run."""
        wf = self.workflows[run.workflow]
        if not run.total_steps:
            return None
        means = {s: m for s, d in wf.steps.items() if (m := _mean_recent(d)) is not None}
        if not means:
            return None
        overall = sum(means.values()) / len(means)
        left = 0.0
        remaining = run.total_steps - run.steps_done
        if run.current_step is not None:
            spent = max(now_ms - (run.step_started_ms or now_ms), 0)  # clocks may differ
            left += max(means.get(run.current_step, overall) - spent, 0.0)
            remaining -= 1
        # The steps after the current one, by their learned order when it is known.
        position = wf.order.get(run.current_step or "", run.steps_done - 1)
        upcoming = sorted((i, s) for s, i in wf.order.items() if i > position)
        for _, step in upcoming[: max(remaining, 0)]:
            left += means.get(step, overall)
        left += max(remaining - len(upcoming), 0) * overall
        return round(left, 1)

    def workflow(self, name: str) -> dict[str, Any] | None:
        wf = self.workflows.get(name)
        if wf is None:
            return None
        durations = sorted(d for _, d, _ in wf.runs)
        successes = sum(1 for _, _, ok in wf.runs if ok)
        step_time = {s: sum(d for _, d in samples) for s, samples in wf.steps.items()}
        total_time = sum(step_time.values())
        steps = [
            {
                "step": s,
                "samples": len(wf.steps[s]),
                "mean_ms": _mean_recent(wf.steps[s], len(wf.steps[s])),
                "p95_ms": _rank(sorted(d for _, d in wf.steps[s]), 0.95),
                "share": round(step_time[s] / total_time, 4) if total_time else None,
            }
            for s in sorted(wf.steps, key=lambda s: wf.order.get(s, math.inf))
        ]
        attempts = len(wf.recoveries)
        recovered = sum(1 for _, ok in wf.recoveries if ok)
        return {
            "workflow": name,
            "service": wf.service,
            "horizon_ms": self.horizon_ms,
            "runs": len(durations),
            "running": sum(1 for r in self.running.values() if r.workflow == name),
            "success_rate": successes / len(durations) if durations else None,
            "duration_mean_ms": sum(durations) / len(durations) if durations else None,
            "duration_p50_ms": _rank(durations, 0.5),
            "duration_p95_ms": _rank(durations, 0.95),
            "steps": steps,
            "bottleneck": max(step_time, key=step_time.__getitem__) if step_time else None,
            "recoveries": attempts,
            "recovery_success_rate": recovered / attempts if attempts else None,
        }

    def recent(self, workflow: str, *, now_ms: int, limit: int = 20) -> list[dict[str, Any]]:
        """The latest executions of ``workflow`` (running and finished), newest first."""
        runs = [r for r in self.running.values() if r.workflow == workflow]
        runs += [r for r in self.finished.values() if r.workflow == workflow]
        runs.sort(key=lambda r: (-(r.ended_ms or r.last_ms), r.execution_id))
        found = (self.execution(r.execution_id, now_ms=now_ms) for r in runs[:limit])
        return [e for e in found if e is not None]  # every one is held: never None

    def waterfall(self, workflow: str) -> list[dict[str, Any]]:
        """A typical execution of ``workflow``: its steps in order, each starting where the
        one before ends on average (recent mean durations)."""
        wf = self.workflows.get(workflow)
        if wf is None:
            return []
        out, start = [], 0.0
        for step in sorted(wf.steps, key=lambda s: wf.order.get(s, math.inf)):
            mean = _mean_recent(wf.steps[step]) if wf.steps[step] else None
            if mean is None:
                continue
            out.append({"step": step, "start_ms": round(start, 1), "mean_ms": mean})
            start += mean
        return out

    # -- persistence (JSON-safe) ------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        return {
            "max_ts": self.max_ts,
            "running": [asdict(r) for r in self.running.values()],
            "finished": [asdict(r) for r in self.finished.values()],
            "workflows": {
                name: {
                    "service": wf.service,
                    "runs": list(wf.runs),
                    "steps": {s: list(d) for s, d in wf.steps.items()},
                    "order": wf.order,
                    "recoveries": list(wf.recoveries),
                }
                for name, wf in self.workflows.items()
            },
        }

    @classmethod
    def restore(cls, data: dict[str, Any], **kwargs: Any) -> Executions:
        ex = cls(**kwargs)
        ex.max_ts = data["max_ts"]
        ex.running = {r["execution_id"]: Run(**r) for r in data["running"]}
        ex.finished = collections.OrderedDict(
            (r["execution_id"], Run(**r)) for r in data["finished"]
        )
        for name, wf in data["workflows"].items():
            ex.workflows[name] = WorkflowStats(
                service=wf["service"],
                runs=collections.deque(wf["runs"]),
                steps={s: collections.deque(d) for s, d in wf["steps"].items()},
                order=dict(wf["order"]),
                recoveries=collections.deque(wf["recoveries"]),
            )
        return ex


def _push(samples: collections.deque[list[Any]], item: list[Any]) -> None:
    samples.append(item)
    if len(samples) > MAX_SAMPLES:
        samples.popleft()


def _mean_recent(samples: collections.deque[list[Any]], n: int = RECENT) -> float | None:
    recent = [d for _, d in list(samples)[-n:]]
    return round(sum(recent) / len(recent), 1) if recent else None


def _rank(ordered: list[float], q: float) -> float | None:
    return ordered[math.floor(q * (len(ordered) - 1))] if ordered else None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None
