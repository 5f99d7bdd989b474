"""A simulated workflow engine and services: seeded, with time passed in.

It produces every event kind: executions of a few workflows with declared steps (each
with its action type, after the step before it, within a phase), steps that fail at
random and are retried (recovery), logs and spans per step and per phase, errors, what
each execution used, each service's runtime once, resource samples (CPU, memory, GPU,
the container's), requests traced across two services, and metric samples (latency,
satisfaction, feature usage, model accuracy, an allocation's use). Latency shifts to a
slower regime at ``shift_at_ms`` (for anomaly detection); in an ``incident`` most steps
fail (for the alert rules).

>>> sim = Simulation(seed=1, start_ms=1_700_000_000_000)
>>> kinds = {e["kind"] for e in sim.advance(120_000)}
>>> sorted(kinds) == sorted(ALL_KINDS)
True
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from producers import runtime, usage
from producers.events import KINDS

ALL_KINDS = sorted(KINDS)

WORKFLOWS: dict[str, tuple[str, list[tuple[str, float]]]] = {
    # workflow: (service, [(step, median seconds)])
    "etl": ("pipeline", [("extract", 4.0), ("transform", 9.0), ("load", 3.0)]),
    "train": ("ml", [("fetch", 5.0), ("prepare", 6.0), ("fit", 25.0), ("evaluate", 4.0)]),
    "report": ("reports", [("query", 2.0), ("render", 3.0), ("send", 1.0)]),
}
#: Each step's action type and phase.
STEPS: dict[str, tuple[str, str]] = {
    "extract": ("io", "read"), "transform": ("compute", "process"), "load": ("io", "write"),
    "fetch": ("network", "data"), "prepare": ("compute", "data"), "fit": ("compute", "model"),
    "evaluate": ("compute", "model"), "query": ("io", "gather"), "render": ("compute", "build"),
    "send": ("network", "build"),
}  # fmt: skip
SERVICES = ("api", "pipeline", "ml", "reports")
ERRORS = ("TimeoutError", "ConnectionError", "ValueError")


@dataclass
class _Run:
    workflow: str
    execution_id: str
    trace_id: str
    started_ms: int
    step_index: int = 0
    step_started_ms: int = 0
    step_ends_ms: int = 0
    attempts: int = 0
    recoveries: int = 0
    phase_started_ms: int = 0
    failed_steps: list[str] = field(default_factory=list)


class Simulation:
    def __init__(
        self,
        *,
        seed: int,
        start_ms: int,
        shift_at_ms: int | None = None,
        requests_per_s: float = 20.0,
        step_failure: float = 0.08,
        incident: tuple[int, int] | None = None,
        incident_failure: float = 0.6,
    ) -> None:
        self.rng = random.Random(seed)
        self.now_ms = start_ms
        self.shift_at_ms = shift_at_ms
        self.requests_per_s = requests_per_s
        self.step_failure = step_failure
        #: [start, end) of an incident: steps that end in it fail with ``incident_failure``.
        self.incident = incident
        self.incident_failure = incident_failure
        self._runs: list[_Run] = []
        self._ids = 0
        self._started = False
        self._start_ms = start_ms

    def _id(self, prefix: str) -> str:
        self._ids += 1
        return f"{prefix}-{self._ids:08d}"

    def advance(self, ms: int) -> Iterator[dict[str, Any]]:
        """Events of the next ``ms`` milliseconds of simulated time, in time order per second."""
        end = self.now_ms + ms
        while self.now_ms < end:
            step = min(1000, end - self.now_ms)
            yield from self._tick(self.now_ms, step)
            self.now_ms += step

    # -- one simulated second ------------------------------------------------------------
    def _tick(self, t: int, span_ms: int) -> Iterator[dict[str, Any]]:
        rng = self.rng
        scale = span_ms / 1000
        if not self._started:  # each service's runtime, once
            self._started = True
            yield from (self._runtime(service, t) for service in SERVICES)
        for workflow in WORKFLOWS:
            if rng.random() < 0.08 * scale:
                yield from self._start(workflow, t + rng.randrange(span_ms))
        for run in list(self._runs):
            if run.step_ends_ms < t + span_ms:
                yield from self._finish_step(run)
        yield from self._requests(t, span_ms)
        if (t // 1000) % 10 == 0:  # resources every 10 s per service
            for service in SERVICES:
                yield from self._resources(service, t)

    def _start(self, workflow: str, t: int) -> Iterator[dict[str, Any]]:
        service, steps = WORKFLOWS[workflow]
        run = _Run(workflow, self._id("exec"), self._id("trace"), t)
        run.phase_started_ms = t
        self._runs.append(run)
        yield {
            "kind": "execution.start",
            "ts": t,
            "service": service,
            "name": workflow,
            "execution_id": run.execution_id,
            "trace_id": run.trace_id,
            "attrs": {"total_steps": len(steps)},
        }
        yield from self._start_step(run, t)

    def _start_step(self, run: _Run, t: int) -> Iterator[dict[str, Any]]:
        service, steps = WORKFLOWS[run.workflow]
        name, median_s = steps[run.step_index]
        run.step_started_ms = t
        duration = int(median_s * 1000 * math.exp(self.rng.gauss(0, 0.35)))
        run.step_ends_ms = t + max(duration, 50)
        yield {
            "kind": "step.start",
            "ts": t,
            "service": service,
            "name": run.workflow,
            "execution_id": run.execution_id,
            "step": name,
            "attrs": {
                "index": run.step_index,
                "total_steps": len(steps),
                **self._step_attrs(run.workflow, run.step_index),
            },
        }

    @staticmethod
    def _step_attrs(workflow: str, index: int) -> dict[str, Any]:
        """A step's action type and phase, and the step before it, which it waited on."""
        steps = WORKFLOWS[workflow][1]
        action, phase = STEPS[steps[index][0]]
        after = {"after": [steps[index - 1][0]]} if index else {}
        return {"action": action, "phase": phase, **after}

    def _finish_step(self, run: _Run) -> Iterator[dict[str, Any]]:
        rng = self.rng
        service, steps = WORKFLOWS[run.workflow]
        name = steps[run.step_index][0]
        t = run.step_ends_ms
        duration = t - run.step_started_ms
        failure = self.step_failure
        if self.incident is not None and self.incident[0] <= t < self.incident[1]:
            failure = self.incident_failure
        ok = rng.random() >= failure
        base = {"service": service, "name": run.workflow, "execution_id": run.execution_id}
        yield {
            **base,
            "kind": "step.end",
            "ts": t,
            "step": name,
            "value": float(duration),
            "ok": ok,
            "status": "success" if ok else "failed",
            "attrs": self._step_attrs(run.workflow, run.step_index),
        }
        yield {
            "kind": "span",
            "ts": run.step_started_ms,
            "service": service,
            "name": f"{run.workflow}.{name}",
            "trace_id": run.trace_id,
            "span_id": self._id("span"),
            "value": float(duration),
            "ok": ok,
            # The engine runs the step for the workflow: a span of its own work (internal,
            # the default, not written); a failed step says where in a span event.
            **(
                {}
                if ok
                else {"status": "error", "attrs": {"events": [{"name": "step failed", "ts": t}]}}
            ),
        }
        yield {
            "kind": "log",
            "ts": t,
            "service": service,
            "name": run.workflow,
            "level": "info" if ok else "error",
            "trace_id": run.trace_id,
            "message": f"step {name} of {run.execution_id} "
            f"{'finished' if ok else 'failed'} in {duration} ms",
        }
        if not ok:
            error = rng.choice(ERRORS)
            recovered = run.attempts < 2 and rng.random() < 0.7  # drawn in the same order
            yield {
                "kind": "error",
                "ts": t,
                "service": service,
                "name": error,
                "message": f"{error} in {run.workflow}.{name}",
                "execution_id": run.execution_id,
                "trace_id": run.trace_id,
                "attrs": {
                    "step": name,
                    "severity": "error" if run.attempts < 2 else "critical",
                    "impact": "high" if run.workflow == "train" else "medium",
                    "recovery_attempted": run.attempts < 2,
                    "recovered": recovered,
                },
            }
            run.attempts += 1
            run.recoveries += 1
            yield {
                **base,
                "kind": "recovery",
                "ts": t + 1,
                "step": name,
                "ok": recovered,
                "status": "retry",
                # The backoff before the retry, as a timed recovery reports its duration.
                "value": float(100 * 2 ** (run.attempts - 1)),
                "attrs": {
                    "strategy": "retry",
                    "attempt": run.attempts,
                    "action": STEPS[name][0],
                },
            }
            if recovered:
                yield from self._start_step(run, t + 2)
                return
            yield from self._end(run, t + 2, ok=False)
            return
        run.attempts = 0
        run.step_index += 1
        phase = STEPS[name][1]
        if run.step_index == len(steps) or STEPS[steps[run.step_index][0]][1] != phase:
            yield self._phase(run, phase, t)
        if run.step_index == len(steps):
            yield from self._end(run, t, ok=True)
        else:
            yield from self._start_step(run, t)

    def _phase(self, run: _Run, phase: str, t: int) -> dict[str, Any]:
        """The span of a phase whose last step just ended."""
        started, run.phase_started_ms = run.phase_started_ms, t
        return {
            "kind": "span",
            "ts": started,
            "service": WORKFLOWS[run.workflow][0],
            "name": phase,
            "trace_id": run.trace_id,
            "span_id": self._id("span"),
            "execution_id": run.execution_id,
            "value": float(t - started),
            "ok": True,
            "attrs": {"phase": phase, "workflow": run.workflow},
        }

    def _runtime(self, service: str, t: int) -> dict[str, Any]:
        """A service's runtime, as a client publishes it at start."""
        info = {
            "python": "3.12.7",
            "implementation": "CPython",
            "platform": "Linux-6.8-x86_64",
            "host": f"{service}-0",
            "pid": 1,
            "revision": "4f2c9e1d7a3b5c6e8f90a1b2c3d4e5f607182930",
            "packages": {"vigil": "0.1.0", "aiokafka": "0.12.0"},
        }
        return {
            "kind": "log",
            "ts": t,
            "service": service,
            "name": runtime.NAME,
            "level": "info",
            "message": f"CPython 3.12.7 on {service}-0 at {info['revision'][:12]}",
            "attrs": info,
        }

    @staticmethod
    def _used(run: _Run, t: int) -> dict[str, float]:
        """What a run used (as the SDK measures it), drawn from the run's own generator:
        the simulation's stays as it was."""
        draw = random.Random(run.execution_id)
        seconds = (t - run.started_ms) / 1000
        busy = {"train": 0.9, "etl": 0.5, "report": 0.3}[run.workflow]
        base = {"train": 2048, "etl": 512, "report": 256}[run.workflow] * 2**20
        rss = base * draw.uniform(0.9, 1.1)
        return {
            "cpu_ms": round(seconds * 1000 * busy * draw.uniform(0.8, 1.0), 3),
            "rss_before_bytes": int(rss),
            "rss_after_bytes": int(rss * draw.uniform(1.0, 1.05)),
            "rss_peak_bytes": int(rss * draw.uniform(1.2, 1.8)),
            "io_read_bytes": int(seconds * 4e6 * draw.uniform(0.5, 1.5)),
            "io_write_bytes": int(seconds * 1e6 * draw.uniform(0.5, 1.5)),
            "net_rx_bytes": int(seconds * 2e5 * draw.uniform(0.5, 1.5)),
            "net_tx_bytes": int(seconds * 5e4 * draw.uniform(0.5, 1.5)),
        }

    def _end(self, run: _Run, t: int, *, ok: bool) -> Iterator[dict[str, Any]]:
        service, steps = WORKFLOWS[run.workflow]
        self._runs.remove(run)
        yield {
            "kind": "execution.end",
            "ts": t,
            "service": service,
            "name": run.workflow,
            "execution_id": run.execution_id,
            "value": float(t - run.started_ms),
            "ok": ok,
            "status": "success" if ok else "failed",
            "attrs": {
                "steps_done": run.step_index,
                "total_steps": len(steps),
                "recoveries": run.recoveries,
                **self._used(run, t),
            },
        }

    def _requests(self, t: int, span_ms: int) -> Iterator[dict[str, Any]]:
        rng = self.rng
        shifted = self.shift_at_ms is not None and t >= self.shift_at_ms
        median = 180.0 if shifted else 80.0
        n = int(self.requests_per_s * span_ms / 1000)
        for i in range(n):
            ts = t + (i * span_ms) // max(n, 1)
            route = rng.choice(("/checkout", "/search", "/profile"))
            latency = round(median * math.exp(rng.gauss(0, 0.4)), 2)
            yield {
                "kind": "metric",
                "ts": ts,
                "service": "api",
                "name": "latency_ms",
                "value": latency,
                "tags": {"route": route},
            }
            if ts % 2_000 == 0:  # a request every two seconds is traced across services
                yield from self._call(ts, route, latency)
            if rng.random() < 0.05:
                feature, user = rng.choice(("export", "share")), f"user-{rng.randrange(50)}"
                yield self._use(feature, user, ts)
            if rng.random() < 0.02:
                yield {
                    "kind": "metric",
                    "ts": ts,
                    "service": "api",
                    "name": "satisfaction",
                    "value": float(rng.choice((3, 4, 4, 5, 5))),
                }
                yield self._rated(ts, route)
        if (t // 1000) % 60 == 0:  # each minute: a model evaluation and the cache's use
            yield from self._outcomes(t)

    @staticmethod
    def _rated(ts: int, route: str) -> dict[str, Any]:
        """A satisfaction score as the SDK's ``satisfaction`` records it (1-5, on 0-1),
        drawn from a generator of its own; slower routes rate lower."""
        draw = random.Random(ts)
        score = draw.choice((2, 3, 4, 4, 5, 5) if route == "/search" else (3, 4, 5, 5, 5))
        words = {2: "too slow", 3: "ok", 4: "good", 5: "great"}
        return {
            "kind": "metric",
            "ts": ts,
            "service": "api",
            "name": "satisfaction_score",
            "value": (score - 1) / 4,
            "tags": {"feature": route.strip("/"), "aspect": "speed"},
            "attrs": {"score": float(score), "scale": 5, "feedback": words[score],
                      "interaction_id": f"req-{ts}"},
        }  # fmt: skip

    def _outcomes(self, t: int) -> Iterator[dict[str, Any]]:
        """The ml service's model evaluation (accuracy creeping up) and its feature cache's
        use, and once an hour the optimization the team shipped; from a generator of their
        own."""
        draw = random.Random(t)
        minutes = (t - self._start_ms) / 60_000
        accuracy = min(0.97, 0.82 + 0.0004 * minutes + draw.gauss(0, 0.01))
        yield {
            "kind": "metric", "ts": t, "service": "ml", "name": "model_accuracy",
            "value": round(accuracy, 4), "tags": {"model": "ranker", "task": "ranking"},
            "attrs": {"confidence": round(accuracy - 0.05, 4), "sample_size": 1000,
                      "improvement_rate": 0.0004},
        }  # fmt: skip
        allocated, used = 2048.0, round(draw.uniform(900, 1900), 1)
        yield {
            "kind": "metric", "ts": t, "service": "ml", "name": "utilization_percent",
            "value": used / allocated * 100,
            "tags": {"resource": "feature_cache", "type": "memory"},
            "attrs": {"used": used, "allocated": allocated, "unit": "MB"},
        }  # fmt: skip
        if (t // 1000) % 3600 == 0:
            before, after = 45.2, round(draw.uniform(36, 41), 1)
            yield {
                "kind": "metric", "ts": t, "service": "api", "name": "optimization_change_pct",
                "value": (after - before) / before * 100,
                "tags": {"feature": "checkout", "category": "task_time"},
                "attrs": {"optimization_id": f"opt-{t // 3_600_000}", "before": before,
                          "after": after, "user_impact": 0.8, "unit": "s"},
            }  # fmt: skip

    def _use(self, feature: str, user: str, ts: int) -> dict[str, Any]:
        """One use, as ``track_usage`` records it: its session, duration, data size and
        parameters, drawn from a generator of its own (the simulation's stays as it was);
        exports as xml fail half the time."""
        draw = random.Random(f"{user}{ts}")
        fmt = draw.choice(("csv", "csv", "json", "xml")) if feature == "export" else "link"
        rows = int(10 ** draw.uniform(0, 5))
        params = {"format": fmt, "compress": rows > 10_000}
        ok = fmt != "xml" or draw.random() < 0.5
        return {
            "kind": "metric",
            "ts": ts,
            "service": "api",
            "name": "feature_used",
            "value": 1.0,
            "ok": ok,
            "tags": {"feature": feature},
            "attrs": {
                "user": user,
                "session": f"{user}-{ts // 1_800_000}",
                "duration_ms": round(5 + rows * 0.02 * draw.uniform(0.5, 1.5), 2),
                "size": float(rows),
                "params": params,
                "combo": usage.combo(params),
            },
        }

    def _resources(self, service: str, t: int) -> Iterator[dict[str, Any]]:
        samples = [("cpu_percent", 35.0, 10.0, 100.0), ("memory_mb", 900.0, 60.0, None)]
        if service == "ml":
            samples.append(("gpu_percent", 70.0, 15.0, 100.0))
        for name, mean, sd, cap in samples:
            value = max(0.0, self.rng.gauss(mean, sd))
            if cap is not None:
                value = min(cap, value)
            yield {
                "kind": "metric",
                "ts": t,
                "service": service,
                "name": name,
                "value": round(value, 1),
            }
        yield from self._container(service, t)

    @staticmethod
    def _container(service: str, t: int) -> Iterator[dict[str, Any]]:
        """What the SDK's sampler reads from the service's container (cgroup): its memory
        and limit, CPU limit and share; from a generator of its own."""
        draw = random.Random(f"{service}{t}")
        limit = {"ml": 8192.0, "pipeline": 2048.0}.get(service, 1024.0)
        samples = {
            "container_memory_mb": round(limit * draw.uniform(0.45, 0.8), 1),
            "container_memory_limit_mb": limit,
            "container_cpu_limit": 4.0 if service == "ml" else 2.0,
            "container_cpu_percent": round(draw.uniform(20, 70), 1),
        }
        for name, value in samples.items():
            yield {"kind": "metric", "ts": t, "service": service, "name": name, "value": value}

    @staticmethod
    def _call(ts: int, route: str, latency: float) -> Iterator[dict[str, Any]]:
        """A request that crosses services: the api's server span, its client span to the
        reports service, and that service's server span (the trace continued from the
        call's traceparent, as ``producers.inject`` and ``span(traceparent=)`` do)."""
        trace, root, call, served = (
            f"{p}{ts:x}" for p in ("t-req-", "s-api-", "s-call-", "s-rep-")
        )
        inner = round(latency * 0.6, 2)
        spans = (
            ("api", root, "", f"GET {route}", latency, "server", ts),
            ("api", call, root, "call reports", inner + 2, "client", ts + 1),
            ("reports", served, call, "render summary", inner, "server", ts + 2),
        )
        for service, span, parent, name, ms, kind, at in spans:
            event = {"kind": "span", "ts": at, "service": service, "name": name,
                     "trace_id": trace, "span_id": span, "value": ms, "ok": True,
                     "attrs": {"span_kind": kind}}  # fmt: skip
            if parent:
                event["parent_id"] = parent
            yield event
