"""Valid events for tests that need some and do not care which."""

from __future__ import annotations

import time
from typing import Any


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
    """The first ``n`` events of a simulated workflow engine over the last ``minutes``."""
    from vigil.simulation import Simulation

    sim = Simulation(seed=seed, start_ms=int(time.time() * 1000) - minutes * 60_000)
    events = []
    for event in sim.advance(minutes * 60_000):
        events.append(event)
        if len(events) == n:
            break
    assert len(events) == n, f"{minutes} simulated minutes hold {len(events)} events, not {n}"
    return events


def threshold_rule(
    name: str, *, metric: str, threshold: float, severity: str, window: str = "1m"
) -> str:
    """The TOML of a rule that fires when a metric's max over ``window`` passes
    ``threshold``."""
    return f"""
[[rule]]
name = "{name}"
match = {{ kind = "metric", name = "{metric}" }}
signal = "max"
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
