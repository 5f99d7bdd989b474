"""The shipped rules on the demo's simulated engine: quiet hours raise nothing, and an
incident is one alert per rule and series (``bench/rules.py`` measures the same)."""

from __future__ import annotations

import collections

from bench import rules


def test_quiet_hours_fire_no_threshold_rule_and_an_incident_is_one_alert_each():
    alerts, incident = rules.run(seed=1, hours=3, incident_min=10)
    threshold = [a for a in alerts if a.type == "threshold"]
    inside = [a for a in threshold if rules.inside(a.at, incident)]
    quiet = [a for a in threshold if not rules.inside(a.at, incident)]
    assert [a for a in quiet if a.state == "firing"] == []
    told = collections.Counter((a.rule, a.series, a.state) for a in inside if a.state != "pending")
    fired = {(rule, series) for rule, series, state in told if state == "firing"}
    assert {rule for rule, _ in fired} >= {"failed_executions", "low_success_rate"}
    assert all(told[r, s, "firing"] == 1 and told[r, s, "resolved"] == 1 for r, s in fired)


def test_every_rule_of_the_file_is_reported_a_silent_one_as_catching_nothing():
    names = tuple(rule.name for rule in rules.load().rules)
    out = rules.figures([([], (0, 60_000))], hours=1.0, names=names)
    assert "latency_anomaly" in names and "high_error_rate" in names
    for name in names:
        assert out[f"{name}: incidents caught"] == "0/1"
        assert out[f"{name}: false firings per quiet hour"] == 0.0
    assert len([key for key in out if key.endswith(": incidents caught")]) == len(names)
