"""The report's advice and score, from figures alone."""

from __future__ import annotations

from sinks import reports


def test_recommendations_follow_from_the_figures():
    flow = {
        "workflow": "etl",
        "service": "engine",
        "runs": 100,
        "success_rate": 0.9,
        "p50_ms": 100.0,
        "p95_ms": 400.0,
        "trend": {"p95_ms_pct": 35.0},
    }
    w = {
        **flow,
        "failing_steps": [{"step": "load", "failures": 8, "failure_rate": 0.08}],
        "bottlenecks": [
            {"step": "load", "share": 0.7, "mean_ms": 70.0, "p95_ms": 300.0},
            {"step": "extract", "share": 0.3, "mean_ms": 30.0, "p95_ms": 60.0},
        ],
        "recoveries": [{"attempts": 10, "succeeded": 2, "success_rate": 0.2, "strategy": "retry"}],
        "alerts": [{"rule": "failed_runs", "state": "firing"}],
        "alerts_fired": 1,
        "resources": [{"resource": "cpu_percent", "p95": 93.0}],
    }
    text = "\n".join(reports.recommendations(w))
    for expected in (
        "Success rate 90.0% is below 95 %; the most failing step is load (8 failures",
        "Step load takes 70% of etl's time",
        "p95 400 ms is 4.0x p50",
        "p95 duration grew 35 %",
        "Recoveries succeed only 20% of 10 attempts (strategy retry 20%)",
        "1 alert(s) fired (failed_runs)",
        "CPU p95 is 93 %",
    ):
        assert expected in text
    calm = {
        **w,
        "success_rate": 1.0,
        "p95_ms": 150.0,
        "trend": {"p95_ms_pct": -5.0},
        "bottlenecks": w["bottlenecks"][1:],
        "recoveries": [],
        "alerts": [],
        "alerts_fired": 0,
        "resources": [],
    }
    assert reports.recommendations(calm) == [
        "No action needed: reliable, steady and no slower than before."
    ]
    assert reports.score(calm, 0)["score"] == 100
