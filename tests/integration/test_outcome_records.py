"""The records of seed 004 through the real pipeline: satisfaction, model effectiveness,
an optimization's before and after, allocated and used resources, a metric's unit and
category, and errors with severity, impact and recovery; read back by the history
queries and compared with a recount of what was published."""

from __future__ import annotations

import asyncio
import dataclasses
import statistics

import pytest

from producers import Client

pytestmark = pytest.mark.integration

#: (score, scale, feedback, interaction)
SCORES = [
    (0.9, 1, "fast", "i-1"),
    (4, 5, "", "i-2"),
    (2, 5, "slow today", "i-3"),
    (1.0, 1, "", "i-3"),
]
ACCURACY = [(0.80, 0.70, 500, None), (0.86, 0.75, 800, 0.075), (0.90, 0.81, 1000, 0.047)]
#: (type, severity, impact, recovery tried, recovered)
ERRORS = [
    ("PatternError", "warning", "low", True, True),
    ("PatternError", "warning", "low", True, False),
    ("PatternError", "critical", "high", False, False),
    ("DiskFull", "critical", "high", None, None),
]


def publish(vigil: Client) -> None:
    vigil.opt_out("mallory")
    for score, scale, text, interaction in SCORES:
        vigil.satisfaction("search", score, scale=scale, feedback=text or None,
                           interaction_id=interaction, user="ana")  # fmt: skip
    assert not vigil.satisfaction("search", 1, scale=5, user="mallory")
    for accuracy, confidence, samples, improvement in ACCURACY:
        vigil.model_effectiveness("ranker", accuracy=accuracy, confidence=confidence,
                                  sample_size=samples, improvement_rate=improvement)  # fmt: skip
    vigil.optimization("checkout", "opt-1", category="task_time", before=45.2, after=40.0)
    vigil.optimization("checkout", "opt-1", category="task_time", before=45.2, after=38.7,
                       user_impact=0.85, unit="s")  # fmt: skip
    vigil.utilization("cache", used=670.0, allocated=1024.0, resource_type="memory", unit="MB")
    vigil.utilization("cache", used=900.0, allocated=1024.0, resource_type="memory", unit="MB")
    for kind, severity, impact, tried, recovered in ERRORS:
        vigil.error(f"{kind}!", name=kind, severity=severity, impact=impact,
                    recovery_attempted=tried, recovered=recovered)  # fmt: skip
    vigil.metric("queue_wait", 12.0, unit="ms", category="performance")
    # Wrong calls are dropped and counted, never raised.
    assert not vigil.satisfaction("search", 7, scale=5)
    assert not vigil.utilization("cache", used=1.0, allocated=0.0)


async def test_outcomes_reach_history_as_published(kafka_settings, start_worker):
    worker = start_worker()
    async with Client(dataclasses.replace(kafka_settings, service="learn")) as vigil:
        publish(vigil)
        assert await vigil.flush(30)
        stats = vigil.stats()
    assert (stats["opted_out"], stats["invalid"]) == (1, 2)
    await asyncio.to_thread(worker.wait_until, lambda s: s.get("raw_rows") == stats["sent"], 60)

    status, answer = worker.call("/history/feedback?since=1h")
    assert status == 200 and len(answer) == 1, answer
    (fb,) = answer
    normalized = [s if scale == 1 else (s - 1) / 4 for s, scale, _, _ in SCORES]
    assert (fb["feature"], fb["aspect"], fb["responses"]) == ("search", "overall", len(SCORES))
    assert fb["mean_score"] == pytest.approx(statistics.mean(normalized))
    assert fb["satisfied_rate"] == pytest.approx(sum(v >= 0.75 for v in normalized) / 4)
    assert fb["interactions"] == 3 and sorted(fb["feedback"]) == ["fast", "slow today"]

    status, (model,) = worker.call("/history/models?since=1h")
    assert status == 200, model
    assert (model["model"], model["evaluations"]) == ("ranker", 3)
    assert model["first_accuracy"] == 0.80 and model["latest_accuracy"] == 0.90
    assert model["accuracy_change"] == pytest.approx(0.10)
    assert model["mean_confidence"] == pytest.approx(statistics.mean(a[1] for a in ACCURACY))
    assert model["samples"] == sum(a[2] for a in ACCURACY)
    assert model["mean_improvement_rate"] == pytest.approx((0.075 + 0.047) / 2)

    status, (opt,) = worker.call("/history/optimizations?since=1h")
    assert status == 200, opt
    assert (opt["optimization_id"], opt["before"], opt["after"]) == ("opt-1", 45.2, 38.7)
    assert opt["change_pct"] == pytest.approx((38.7 - 45.2) / 45.2 * 100)
    assert (opt["user_impact"], opt["unit"]) == (0.85, "s")

    status, (use,) = worker.call("/history/utilization?since=1h")
    assert status == 200, use
    assert (use["resource"], use["type"], use["samples"]) == ("cache", "memory", 2)
    assert use["mean_percent"] == pytest.approx((670 + 900) / 2 / 1024 * 100)
    assert (use["allocated"], use["used"], use["unit"]) == (1024.0, 900.0, "MB")

    status, errors = worker.call("/history/errors?since=1h")
    assert status == 200, errors
    impact = {(r["type"], r["severity"], r["impact"]): r for r in errors["impact"]}
    low = impact[("PatternError", "warning", "low")]
    assert (low["errors"], low["recovery_attempted"], low["recovered"]) == (2, 2, 1)
    assert low["recovery_rate"] == 0.5
    assert impact[("PatternError", "critical", "high")]["recovery_rate"] is None
    assert impact[("DiskFull", "critical", "high")]["errors"] == 1

    status, metrics = worker.call("/history/metrics?since=1h&service=learn")
    assert status == 200, metrics
    described = {m["metric"]: (m["unit"], m["category"]) for m in metrics}
    assert described["queue_wait"] == ("ms", "performance")
    assert described["model_accuracy"] == ("", "")
