"""Live execution tracking: progress, ETA, workflow statistics, horizon, persistence."""

from __future__ import annotations

import pytest

from streams.executions import Executions
from tests.workflows import event as _ev
from tests.workflows import execution


def _run(ex, eid, start, **kwargs):
    """A whole execution of etl, applied to ``ex``; returns its end time."""
    events, end = execution(eid, start, **kwargs)
    for ev in events:
        ex.add(ev)
    return end


def test_progress_and_eta_move_as_the_steps_complete():
    ex = Executions()
    t = 0
    for i in range(5):
        t = _run(ex, f"old{i}", t) + 1000
    start = t
    ex.add(_ev("execution.start", start, "live", attrs={"total_steps": 3}))
    ex.add(_ev("step.start", start, "live", step="extract", attrs={"index": 0}))
    first = ex.execution("live", now_ms=start + 1_000)
    assert (first["status"], first["current_step"], first["progress_pct"]) == (
        "running",
        "extract",
        0.0,
    )
    assert first["eta_ms"] == pytest.approx(3_000 + 9_000 + 3_000)
    ex.add(_ev("step.end", start + 4_000, "live", step="extract", value=4_000.0, ok=True))
    ex.add(_ev("step.start", start + 4_000, "live", step="transform", attrs={"index": 1}))
    second = ex.execution("live", now_ms=start + 6_000)
    assert second["progress_pct"] == pytest.approx(33.3)
    assert second["eta_ms"] == pytest.approx(7_000 + 3_000)
    assert second["elapsed_ms"] == 6_000
    ex.add(_ev("step.end", start + 13_000, "live", step="transform", value=9_000.0, ok=True))
    between = ex.execution("live", now_ms=start + 13_000)  # no step running: load is next
    assert between["current_step"] is None and between["eta_ms"] == pytest.approx(3_000)
    ex.add(_ev("step.start", start + 13_000, "live", step="load", attrs={"index": 2}))
    ex.add(_ev("step.end", start + 16_000, "live", step="load", value=3_000.0, ok=True))
    ex.add(_ev("execution.end", start + 16_000, "live", value=16_000.0, ok=True, status="success"))
    done = ex.execution("live", now_ms=start + 99_000)
    assert (done["status"], done["progress_pct"], done["eta_ms"], done["elapsed_ms"]) == (
        "success",
        100.0,
        0.0,
        16_000.0,
    )
    assert "live" not in ex.running


def test_an_execution_without_declared_steps_has_no_progress_or_eta():
    ex = Executions()
    ex.add(_ev("execution.start", 0, "r"))
    view = ex.execution("r", now_ms=10)
    assert view["progress_pct"] is None and view["eta_ms"] is None
    assert ex.execution("nope", now_ms=10) is None


def test_workflow_stats_give_success_rate_durations_bottleneck_and_recoveries():
    ex = Executions()
    t = 0
    t = _run(ex, "a", t) + 1
    t = _run(ex, "b", t, fail_step="transform", recover=True) + 1
    t = _run(ex, "c", t, fail_step="load", recover=False) + 1
    stats = ex.workflow("etl")
    assert stats["runs"] == 3 and stats["success_rate"] == pytest.approx(2 / 3)
    assert stats["duration_p50_ms"] == stats["duration_p95_ms"] == 16_000.0  # lower rank
    assert stats["duration_mean_ms"] == pytest.approx((16_000 + 16_102 + 13_102) / 3)
    assert stats["bottleneck"] == "transform"
    assert [s["step"] for s in stats["steps"]] == ["extract", "transform", "load"]
    assert sum(s["share"] for s in stats["steps"]) == pytest.approx(1.0, abs=1e-3)
    assert (stats["recoveries"], stats["recovery_success_rate"]) == (2, 0.5)
    assert ex.workflow("unknown") is None
    assert ex.execution("c", now_ms=t)["status"] == "failed"


def test_statistics_only_cover_the_horizon_of_event_time():
    ex = Executions(horizon_ms=60_000)
    _run(ex, "old", 0)
    _run(ex, "new", 200_000)
    assert ex.workflow("etl")["runs"] == 1


def test_a_straggler_after_the_end_does_not_reopen_the_execution():
    ex = Executions()
    _run(ex, "a", 0)
    ex.add(_ev("step.end", 50, "a", step="load", value=1.0, ok=True))
    assert "a" not in ex.running and ex.execution("a", now_ms=0)["status"] == "success"


def test_a_snapshot_restores_the_same_views():
    ex = Executions()
    _run(ex, "a", 0, fail_step="extract")
    ex.add(_ev("execution.start", 30_000, "live", attrs={"total_steps": 3}))
    ex.add(_ev("step.start", 30_000, "live", step="extract", attrs={"index": 0}))
    back = Executions.restore(ex.snapshot())
    assert back.execution("live", now_ms=31_000) == ex.execution("live", now_ms=31_000)
    assert back.execution("a", now_ms=31_000) == ex.execution("a", now_ms=31_000)
    assert back.workflow("etl") == ex.workflow("etl")


def test_recent_executions_come_newest_first_and_the_waterfall_follows_step_order():
    ex = Executions()
    t = 1_700_000_000_000
    for r in range(3):
        t = _run(ex, f"r{r}", t) + 1_000
    ex.add(_ev("execution.start", t, "live", attrs={"total_steps": 3}))
    recent = ex.recent("etl", now_ms=t + 500, limit=3)
    assert [e["execution_id"] for e in recent] == ["live", "r2", "r1"]
    assert recent[0]["status"] == "running" and recent[1]["status"] == "success"
    steps = ex.waterfall("etl")
    assert [s["step"] for s in steps] == ["extract", "transform", "load"]
    assert [s["mean_ms"] for s in steps] == [4_000, 9_000, 3_000]
    assert [s["start_ms"] for s in steps] == [0, 4_000, 13_000]  # each after the one before
    assert ex.waterfall("nope") == [] and ex.recent("nope", now_ms=t) == []
