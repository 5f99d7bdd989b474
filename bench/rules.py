"""How calm the shipped rules are: false firings per quiet hour and notifications per
incident, on the demo's simulated engine.

The simulator (``vigil.simulation``, the demo's) runs ``--hours`` of ordinary traffic, then
an incident in which most workflow steps fail for ``--incident`` minutes, then an hour of
ordinary traffic again; its events go through the worker's pure core
(``streams.processing.Processor``: 1-minute windows, the shipped rules and detectors),
ten simulated seconds an envelope. This is repeated for ``--seeds`` seeds.

- **false firings per quiet hour**: transitions to firing outside the incident (from
  its start to 30 minutes after its end), per rule, over all quiet hours; and the same
  for transitions to pending (shown on the dashboard and the alerts topic, not sent to
  channels);
- **notifications per incident**: firing and resolved transitions inside the incident
  period, per (rule, series) that fired there; one incident, one alert is 2;
- **incident caught**: the share of seeds in which the rule fired during the incident.

    python -m bench.rules [--hours 6] [--incident 10] [--seeds 5] [--rules FILE]
"""

from __future__ import annotations

import argparse
import collections
import time
from pathlib import Path
from typing import Any

import orjson

from bench.report import emit, progress
from producers.alerts import Alert
from streams import rules as rule_files
from streams.processing import Processor
from streams.windows import parse_windows
from vigil.simulation import Simulation

MINUTE_MS = 60_000
HOUR_MS = 60 * MINUTE_MS
ENVELOPE_MS = 10_000
#: Transitions this long after an incident ends still belong to it (resolving takes time).
AFTER_MS = 30 * MINUTE_MS
START_MS = 1_767_225_600_000  # 2026-01-01 00:00 UTC
#: The windows the simulator's events are folded into, and the rules watch.
WINDOWS = "1m"


Incident = tuple[int, int]  # [start, end) in ms


def inside(at: int, incident: Incident) -> bool:
    """Whether a transition at ``at`` belongs to the incident (or its resolving)."""
    return incident[0] <= at < incident[1] + AFTER_MS


def load(path: Path = rule_files.DEFAULT_RULES) -> rule_files.RuleSet:
    """The rules of ``path`` on the :data:`WINDOWS` the simulator's events make."""
    windows = [w.label for w in parse_windows(WINDOWS)]
    return rule_files.load(path, windows=windows, skip_unconfigured=True)


def run(
    seed: int, hours: float, incident_min: float, ruleset: rule_files.RuleSet | None = None
) -> tuple[list[Alert], Incident]:
    """The alert transitions of one simulated run with ``ruleset`` (the shipped rules if
    None), and its incident."""
    windows = parse_windows(WINDOWS)
    ruleset = load() if ruleset is None else ruleset
    processor = Processor(windows=windows, grace_ms=5_000, source="bench/rules", rules=ruleset)
    processor.load(0, None, -1)
    begins = START_MS + int(hours * HOUR_MS)
    incident = (begins, begins + int(incident_min * MINUTE_MS))
    sim = Simulation(seed=seed, start_ms=START_MS, requests_per_s=5.0, incident=incident)
    end = incident[1] + HOUR_MS
    alerts: list[Alert] = []
    offset = 0
    while sim.now_ms < end:
        events = list(sim.advance(ENVELOPE_MS))
        value = b"\n".join(orjson.dumps(e) for e in events)
        out = processor.process([(0, offset, value)], now_ms=sim.now_ms, checkpoint=False)
        alerts += out.alerts
        offset += 1
    # The feed stops at ``end``: what its silence makes after (absence) is not counted.
    return [a for a in alerts if a.at <= end], incident


def figures(
    runs: list[tuple[list[Alert], Incident]], hours: float, names: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The figures of ``runs``, for every rule that made a transition and every one of
    ``names`` (the rule file's: a rule that stayed silent is reported as such)."""
    quiet_hours = 0.0
    false_firings: collections.Counter[str] = collections.Counter()
    false_pendings: collections.Counter[str] = collections.Counter()
    per_incident: dict[str, list[int]] = collections.defaultdict(list)
    caught: collections.Counter[str] = collections.Counter()
    rules = set(names)
    for alerts, incident in runs:
        quiet_hours += hours + (HOUR_MS - AFTER_MS) / HOUR_MS
        during: collections.Counter[tuple[str, str]] = collections.Counter()
        for a in alerts:
            rules.add(a.rule)
            if inside(a.at, incident):
                if a.state in ("firing", "resolved"):
                    during[a.rule, a.series] += 1
            elif a.state == "firing":
                false_firings[a.rule] += 1
            elif a.state == "pending":
                false_pendings[a.rule] += 1
        for rule in {rule for rule, _ in during}:
            caught[rule] += 1
        for (rule, _), n in during.items():
            per_incident[rule].append(n)
    out: dict[str, Any] = {"quiet hours": round(quiet_hours, 1)}
    out["false firings per quiet hour"] = round(sum(false_firings.values()) / quiet_hours, 3)
    out["pending per quiet hour"] = round(sum(false_pendings.values()) / quiet_hours, 3)
    notes = [n for ns in per_incident.values() for n in ns]
    out["notifications per incident alert"] = round(sum(notes) / max(len(notes), 1), 2)
    for rule in sorted(rules):
        out[f"{rule}: false firings per quiet hour"] = round(false_firings[rule] / quiet_hours, 3)
        out[f"{rule}: pending per quiet hour"] = round(false_pendings[rule] / quiet_hours, 3)
        n = per_incident.get(rule, [])
        out[f"{rule}: notifications per incident"] = round(sum(n) / len(n), 2) if n else 0
        out[f"{rule}: incidents caught"] = f"{caught[rule]}/{len(runs)}"
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=6.0, help="quiet hours before")
    parser.add_argument("--incident", type=float, default=10.0, help="incident minutes")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--rules", type=Path, default=rule_files.DEFAULT_RULES)
    args = parser.parse_args()
    started = time.perf_counter()
    ruleset = load(args.rules)  # read once: each run's processor holds its own state
    runs = []
    for seed in range(args.seeds):
        runs.append(run(seed, args.hours, args.incident, ruleset))
        progress("seeds", seed + 1, args.seeds, started)
    emit(figures(runs, args.hours, tuple(rule.name for rule in ruleset.rules)))


if __name__ == "__main__":
    main()
