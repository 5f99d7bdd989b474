"""Unit tests of alert rules on given series, as ``promtool test rules`` does for
Prometheus: ``vigil rules test FILE``.

A test file (TOML) names the rule files and holds tests; each test gives series as values
per step and the alerts expected at given times. The events go through the worker's own
processor (windows, rules, detectors, alert states), so a rule that passes here behaves
the same in the stream.

```toml
rule_files = ["rules.toml"]        # relative to this file
windows = "1m,5m"                  # the worker's VIGIL_WINDOWS (default: the setting)
start = "2026-01-01T00:00:00Z"     # time of the first step (the default)

[[test]]
name = "checkout p95 over 800 fires after 3 minutes"
interval = "1m"                    # one step (default 1m)

[[test.series]]
event = { kind = "metric", service = "shop", name = "latency_ms", tags = { env = "prod" } }
values = "100x2 900x6"             # a value per step (see expand), "_": no event
per_step = 20                      # events in each step (default 1), spread over it

[[test.alerts]]
at = "8m"                          # the alerts pending or firing then...
rule = "slow_checkout"             # ...of this rule: exactly these (an empty list: none)
expect = [{ state = "firing", labels = { service = "shop" }, annotations = { summary = "..." } }]
```

Labels and annotations compare on the keys given; every expected alert must match one
alert and no alert may be left over.
"""

from __future__ import annotations

import datetime as dt
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from producers.alerts import Alert
from streams.processing import Processor
from streams.rules import RuleFileError, RuleSet, load
from streams.windows import parse_duration, parse_windows

DEFAULT_START = "2026-01-01T00:00:00Z"
_TOKEN = re.compile(r"^(_|-?[\d.eE+-]+?)(?:([+-][\d.eE]+))?(?:x(\d+))?$")


class RuleTestError(ValueError):
    """A test file that cannot run; the message says where and why."""


def expand(text: str) -> list[float | None]:
    """promtool's series notation: ``a`` one value, ``axn`` a then n more of it,
    ``a+bxn`` a then n more each b higher (``a-bxn`` lower), ``_`` no value (``_xn``:
    n + 1 steps without one).

    >>> expand("1 2x2 10+5x2 _ 3-1x1")
    [1.0, 2.0, 2.0, 2.0, 10.0, 15.0, 20.0, None, 3.0, 2.0]
    """
    out: list[float | None] = []
    for token in text.split():
        match = _TOKEN.match(token)
        if match is None:
            raise RuleTestError(f"{token!r} is not a value, axn, a+bxn or _")
        start, delta, times = match.groups()
        n = int(times) if times else 0
        if start == "_":
            out.extend([None] * (n + 1))
            continue
        first, step = float(start), float(delta) if delta else 0.0
        out.extend(first + step * i for i in range(n + 1))
    return out


@dataclass
class Outcome:
    file: str
    tests: int = 0
    failures: list[str] = field(default_factory=list)


def run_file(path: Path, *, windows: str) -> Outcome:
    """Run every test of the file at ``path``; ``windows``: VIGIL_WINDOWS when the file
    does not say. Raises :class:`RuleTestError` (or RuleFileError) when it cannot run."""
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RuleTestError(f"{path}: {exc}") from None
    labels = str(data.get("windows", windows))
    specs = parse_windows(labels)
    rule_files = data.get("rule_files")
    if not isinstance(rule_files, list) or not rule_files:
        raise RuleTestError(f"{path}: rule_files must list the rule files to test")
    rules = [
        load(
            path.parent / name,
            windows=[s.label for s in specs],
            hops={s.label: s.hop_ms for s in specs},
        )
        for name in rule_files
    ]
    ruleset = RuleSet(
        tuple(r for rs in rules for r in rs.rules),
        {k: v for rs in rules for k, v in rs.channels.items()},
    )
    start = _time(data.get("start", DEFAULT_START), path)
    outcome = Outcome(str(path))
    for test in data.get("test", []):
        name = test.get("name", f"test {outcome.tests + 1}")
        outcome.tests += 1
        try:
            outcome.failures.extend(_run_test(test, name, ruleset, specs, start))
        except (RuleTestError, KeyError, TypeError, ValueError) as exc:
            outcome.failures.append(f"{name}: cannot run: {exc}")
    return outcome


def _time(text: Any, path: Path) -> int:
    try:
        parsed = dt.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    except ValueError:
        raise RuleTestError(f"{path}: start {text!r} is not an ISO time") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return int(parsed.timestamp() * 1000)


def _events(test: dict[str, Any], start: int) -> list[dict[str, Any]]:
    interval = parse_duration(test.get("interval", "1m"))
    events = []
    for series in test.get("series", []):
        base = dict(series["event"])
        values = expand(series["values"])
        oks = expand(series["ok"]) if "ok" in series else []
        per_step = int(series.get("per_step", 1))
        if per_step < 1:
            raise RuleTestError("per_step must be >= 1")
        for i, value in enumerate(values):
            if value is None:
                continue
            for j in range(per_step):
                event = {**base, "ts": start + i * interval + j * interval // per_step}
                if base.get("kind") in ("metric", "span", "step.end", "execution.end"):
                    event["value"] = value
                if i < len(oks) and oks[i] is not None:
                    event["ok"] = bool(oks[i])
                events.append(event)
    return sorted(events, key=lambda e: e["ts"])


def _run_test(test: dict[str, Any], name: str, rules: RuleSet, specs: Any, start: int) -> list[str]:
    events = _events(test, start)
    failures = []
    for check in test.get("alerts", []):
        at = start + parse_duration(check["at"])
        # From the start for each time: once the clock is moved to one time, the events
        # before the next would arrive late (behind the watermark) and count for nothing.
        latest = _alerts_at(events, at, rules, specs)
        got = [a for a in latest if a.rule == check["rule"]]
        expected = check.get("expect", [])
        left = list(got)
        missing = []
        for want in expected:
            found = next((a for a in left if _matches(a, want)), None)
            if found is None:
                missing.append(want)
            else:
                left.remove(found)
        if missing or left:
            shown = [{"state": a.state, "labels": a.labels, "value": a.value} for a in got]
            failures.append(
                f"{name}: at {check['at']}, rule {check['rule']!r}: expected "
                f"{orjson.dumps(expected).decode()}, got {orjson.dumps(shown).decode()}"
            )
    return failures


def _alerts_at(events: list[dict[str, Any]], at: int, rules: RuleSet, specs: Any) -> list[Alert]:
    """The latest transition of each alert pending or firing at ``at``."""
    processor = Processor(windows=specs, grace_ms=0, idle_ms=0, source="rules-test", rules=rules)
    processor.load(0, None, -1)
    before = [e for e in events if e["ts"] < at]
    transitions: list[Alert] = []
    if before:
        lines = b"\n".join(orjson.dumps(e) for e in before)
        result = processor.process([(0, 0, lines)], now_ms=before[-1]["ts"], checkpoint=False)
        transitions.extend(result.alerts)
        rejected = [r.reason for r in result.rejected]
        if rejected:
            raise RuleTestError(f"events the worker refuses: {rejected[0]}")
    transitions.extend(processor.tick(now_ms=at, checkpoint=False).alerts)
    latest = {a.fingerprint: a for a in transitions}
    return [a for a in latest.values() if a.state in ("pending", "firing")]


def _matches(alert: Alert, want: dict[str, Any]) -> bool:
    if want.get("state", "firing") != alert.state:
        return False
    for key, mine in (("labels", alert.labels), ("annotations", alert.annotations)):
        for k, v in want.get(key, {}).items():
            if mine.get(k) != v:
                return False
    return True


def check_files(paths: list[Path], *, windows: str) -> tuple[int, list[str]]:
    """``vigil rules check``: exit code and lines to print (``file:line: reason`` for
    each mistake, a summary for each good file)."""
    specs = parse_windows(windows)
    code, lines = 0, []
    for path in paths:
        try:
            rules = load(
                path, windows=[s.label for s in specs], hops={s.label: s.hop_ms for s in specs}
            )
        except RuleFileError as exc:
            code = 1
            lines.extend(exc.errors)
            continue
        kinds = [r.type for r in rules.rules]
        lines.append(
            f"{path}: SUCCESS: {kinds.count('detector')} detectors, "
            f"{len(kinds) - kinds.count('detector')} rules, {len(rules.channels)} channels"
        )
    return code, lines
