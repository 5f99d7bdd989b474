"""The scheduled jobs' clock: once a day at their time, after the worker caught up or
past their patience, a failure tried again at the next check, and the days done kept
across a restart. The jobs themselves run through a real worker in
tests/integration/test_scheduled.py."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from sinks.scheduled import PATIENCE_MS, Jobs, ScheduleSettings

DAY = datetime(2026, 12, 3, tzinfo=UTC)


def at(hour: int, minute: int = 0) -> float:
    return DAY.replace(hour=hour, minute=minute).timestamp()


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def jobs(tmp_path: Any, clock: Clock, answers: list[Any]) -> tuple[Jobs, list[dict]]:
    asked: list[dict] = []

    async def answer(name: str, params: dict[str, str]) -> Any:
        asked.append(params)
        outcome = answers.pop(0) if answers else (200, None)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    settings = ScheduleSettings(report_at="06:00", report_kind="usage")
    made = Jobs(settings, tmp_path, "vigil", answer=answer, open_store=lambda: None, clock=clock)
    made._report = _fake(made)  # type: ignore[method-assign]  # the job: one query
    return made, asked


def _fake(made: Jobs) -> Any:
    async def report(due: Any) -> None:
        status, _ = await made.answer("report", {"day": str(due.date())})
        if status != 200:
            raise RuntimeError(status)

    return report


def test_a_job_runs_once_a_day_after_its_time(tmp_path):
    clock = Clock(at(5, 59))
    made, asked = jobs(tmp_path, clock, [])
    made.done["report"] = "2026-12-02"  # the day before ran
    assert asyncio.run(made.tick()) == [] and asked == []
    clock.t = at(6, 0)
    assert asyncio.run(made.tick()) == ["report 2026-12-03"]
    clock.t = at(23, 0)
    assert asyncio.run(made.tick()) == []
    assert asked == [{"day": "2026-12-03"}]


def test_a_worker_behind_waits_until_it_caught_up_or_its_patience_ran_out(tmp_path):
    clock = Clock(at(6, 1))
    made, asked = jobs(tmp_path, clock, [])
    assert asyncio.run(made.tick(caught_up=False)) == []
    clock.t = at(6, 0) + PATIENCE_MS / 1000
    assert asyncio.run(made.tick(caught_up=False)) == ["report 2026-12-03"]
    assert len(asked) == 1


def test_a_failed_job_is_tried_again_and_the_days_done_survive_a_restart(tmp_path):
    clock = Clock(at(7, 0))
    made, asked = jobs(tmp_path, clock, [RuntimeError("store down"), (503, None)])
    assert asyncio.run(made.tick()) == [] and made.runs["failed"] == 1
    assert asyncio.run(made.tick()) == [] and made.runs["failed"] == 2
    assert asyncio.run(made.tick()) == ["report 2026-12-03"] and len(asked) == 3
    again, asked_again = jobs(tmp_path, clock, [])
    assert asyncio.run(again.tick()) == [] and asked_again == []
    clock.t = at(6, 0) + 86_400
    assert asyncio.run(again.tick()) == ["report 2026-12-04"]
