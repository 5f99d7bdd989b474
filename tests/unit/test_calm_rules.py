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
