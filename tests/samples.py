"""Valid events, rule files, closed windows and alert transitions for tests that need
some and do not care which."""

from __future__ import annotations

import time
from typing import Any

from producers.alerts import Alert
from streams.evaluation import Evaluation
from streams.records import BatchResult, WindowRecord
from streams.rules import RuleSet, parse


def metric(
    ts: int | None = None,
    value: float = 1.0,
    *,
    service: str = "api",
    name: str = "latency_ms",
    **extra: Any,
) -> dict[str, Any]:
    """A metric sample (now, unless ``ts`` says when)."""
    when = int(time.time() * 1000) if ts is None else ts
    return {"kind": "metric", "ts": when, "service": service, "name": name, "value": value, **extra}


def simulated(n: int, *, seed: int, minutes: int) -> list[dict[str, Any]]:
    """The first ``n`` events of a simulated workflow engine over the last ``minutes``,
    starting on a whole minute: the same seed fills the same windows whenever it runs."""
    from vigil.simulation import Simulation

    start_ms = (int(time.time() * 1000) // 60_000 - minutes) * 60_000
    sim = Simulation(seed=seed, start_ms=start_ms)
    events = []
    for event in sim.advance(minutes * 60_000):
        events.append(event)
        if len(events) == n:
            break
    assert len(events) == n, f"{minutes} simulated minutes hold {len(events)} events, not {n}"
    return events


def threshold_rule(
    name: str,
    *,
    metric: str,
    threshold: float,
    severity: str,
    window: str = "1m",
    signal: str = "max",
) -> str:
    """The TOML of a rule that fires when a metric's ``signal`` over ``window`` passes
    ``threshold``."""
    return f"""
[[rule]]
name = "{name}"
match = {{ kind = "metric", name = "{metric}" }}
signal = "{signal}"
window = "{window}"
op = ">"
threshold = {threshold}
severity = "{severity}"
annotations = {{ summary = "{{service}} {metric} {{value:.0f}}" }}
"""


def detector_rule(name: str, *, metric: str, severity: str, signal: str = "mean") -> str:
    """The TOML of a detector on a metric's 1m windows (``signal`` of each window)."""
    return f"""
[[detector]]
name = "{name}"
match = {{ kind = "metric", name = "{metric}" }}
signal = "{signal}"
window = "1m"
severity = "{severity}"
"""


#: Rules that flip often on the simulated events (a workflow step that failed at least
#: once in a minute fires; a minute without a failure resolves it), so that the fault tests
#: check dozens of alert transitions for duplicates (about 50 a run), not one or four.
FLAPPING_RULES = """
[[rule]]
name = "step_failed"
match = { kind = "step.end" }
signal = "errors"
window = "1m"
op = ">="
threshold = 1
severity = "info"
"""


MIN = 60_000
SERIES = "metric|api|latency_ms"


def ruleset(text: str) -> RuleSet:
    """The rules of ``text``, checked against 1-minute windows."""
    return parse(text, "r.toml", windows=("1m",), hops={"1m": MIN})


def window(end_min: int, *, mean=100.0, count=50, errors=0, series=SERIES) -> WindowRecord:
    """A closed 1-minute window of ``series`` ending at minute ``end_min``."""
    kind, service, name = series.split("|")[:3]
    return WindowRecord(
        series=series, kind=kind, service=service, name=name,
        start_ms=(end_min - 1) * MIN, end_ms=end_min * MIN, hop_ms=MIN, label="1m",
        partition=0, count=count, errors=errors, values=count, sum=mean * count, mean=mean,
        min=mean, max=mean, stddev=0.0, p50=mean, p95=mean, p99=mean, sketch=None,
    )  # fmt: skip


def feed(e: Evaluation, records: list[WindowRecord]) -> list[Alert]:
    """The transitions ``e`` makes as each window closes (its end is the watermark)."""
    out = []
    for r in records:
        out += e.window(r, now_ms=r.end_ms + 1)
        out += e.advance(r.end_ms, now_ms=r.end_ms + 1)
    return out


TRANSITION_RULES = """
[[rule]]
name = "slow"
match = { name = "latency*" }
signal = "p95"
window = "1m"
op = ">"
threshold = 500
for = "1m"
labels = { team = "web" }
annotations = { summary = "{service} p95 {value:.0f}" }
channels = []

[[rule]]
name = "gone"
match = { name = "latency*" }
signal = "absent"
window = "1m"
for = "2m"
""" + detector_rule("odd", metric="latency*", severity="info")


def alert_transitions() -> list[Alert]:
    """Threshold, absence and detector transitions, every state, from the real evaluation
    of a latency series: steady, a spike, calm, then silent."""
    e = Evaluation(ruleset(TRANSITION_RULES), partition=2)
    steady = [window(i, mean=100.0 + i % 3) for i in range(1, 160)]
    spike = [window(i, mean=5_000.0) for i in range(160, 175)]
    calm = [window(i, mean=100.0) for i in range(175, 180)]
    out = feed(e, steady + spike + calm)
    out += e.advance(200 * MIN, now_ms=200 * MIN)  # silence: the absence rule
    return out


def raw_table_rows(*results: BatchResult) -> list[dict[str, Any]]:
    """The ``events`` rows the writer would insert for the raw rows of ``results``: their
    Arrow payload (``sinks.rows.RawRows.payload``) read back, in order."""
    from sinks.rows import RawRows, read_payload

    return [
        row
        for out in results
        if any(map(len, out.raw.values()))
        for row in read_payload(RawRows(out.source).payload(out.raw.values()))
    ]
