"""The daily jobs: a surprise at the time of day it came on each of the last two days is
scheduled work (streams.recurrence). The contract every detector passes is in
test_detection.py, which builds one of these too."""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import orjson
import pytest

from bench import synthetic
from streams import backtest, detection
from streams.detection import GaussianDetector, default_detector
from streams.recurrence import DAY_SLOTS, RING, SLOT_MS, DailyRecurrence

MARK = DailyRecurrence(GaussianDetector()).mark
NIGHTLY = {24, 25, 26}  # 02:00 to 02:15


def _quiet(slot: int) -> float:
    """An ordinary value every 5 minutes: 10 to 11.2, the same each day."""
    return 10.0 + (slot * 7919 % 13) / 10


def _fed(
    jobs: dict[int, set[int]], days: int, teach_jobs: bool = True
) -> tuple[DailyRecurrence, dict]:
    """A recurrence over a Gaussian of the last day (``teach_jobs`` as given), fed a
    value every 5 minutes for ``days`` days: 100 in the slots of the day ``jobs[day]``
    holds, ordinary otherwise; and its score of each (day, slot)."""
    gaussian = GaussianDetector(window_size=DAY_SLOTS, grace_period=30)
    d = DailyRecurrence(gaussian, teach_jobs=teach_jobs)
    scores = {}
    for day in range(days):
        for slot in range(DAY_SLOTS):
            at = (day * DAY_SLOTS + slot) * SLOT_MS
            x = 100.0 if slot in jobs.get(day, ()) else _quiet(slot)
            scores[day, slot] = d.score_one(x, at)
            d.learn_one(x, at)
    return d, scores


def test_a_nightly_job_is_surprising_until_it_came_on_two_days_then_ordinary():
    _, scores = _fed(dict.fromkeys(range(1, 6), NIGHTLY), 6)
    assert [scores[day, 24] for day in (1, 2)] == [1.0, 1.0]
    assert all(scores[day, slot] == MARK for day in (3, 4, 5) for slot in NIGHTLY)
    assert max(scores[day, slot] for day in range(6) for slot in (30, 100, 200)) < MARK


def test_a_job_seen_yesterday_alone_is_still_a_surprise():
    """Jobs on days 1, 3 and 4: on day 3 the day before had none; on day 4 the day
    before yesterday had none."""
    _, scores = _fed({1: NIGHTLY, 3: NIGHTLY, 4: NIGHTLY}, 5)
    assert scores[3, 24] == scores[4, 24] == 1.0


def test_the_same_load_at_another_time_of_day_is_a_surprise():
    _, scores = _fed({1: NIGHTLY, 2: NIGHTLY, 3: NIGHTLY | {150, 151}}, 4)
    assert scores[3, 24] == MARK and scores[3, 150] == 1.0


def test_a_job_that_starts_five_minutes_later_each_day_is_the_same_job():
    _, scores = _fed({1: {24, 25}, 2: {25, 26}, 3: {26, 27}}, 4)
    assert scores[3, 26] == MARK


@pytest.mark.parametrize("today", [22, 26], ids=["10 minutes early", "10 minutes late"])
def test_a_surprise_ten_minutes_off_the_last_two_days_is_another_time_of_day(today):
    """A slot either way is the same time of day (cron jobs run late); two are not."""
    job = {24, DAY_SLOTS + 24, 2 * DAY_SLOTS + today}
    assert _scripted(job, list(range(2 * DAY_SLOTS + today + 1)))[-1] == 1.0


def test_a_job_after_most_of_a_day_without_values_is_still_the_job():
    """Values every 5 minutes until yesterday's job, the latest learned, then none until
    today's: yesterday's job is read from the ring's newest slot, and the half day
    before today, which had no value, is quiet."""
    job = {24, DAY_SLOTS + 24, 2 * DAY_SLOTS + 24}
    slots = [*range(DAY_SLOTS + 25), 2 * DAY_SLOTS + 24]
    assert _scripted(job, slots)[-1] == MARK


class Scripted:
    """A raw detector whose score is ``score`` (1) in the slots it was given (since the
    epoch) and 0.5 elsewhere: which steps surprise, and nothing else, decides."""

    kind = "scripted"

    def __init__(self, surprising: set[int], score: float = 1.0) -> None:
        self.surprising, self.score = surprising, score

    def score_one(self, x: float, at: int | None = None) -> float:
        return self.score if at is not None and at // SLOT_MS in self.surprising else 0.5

    def learn_one(self, x: float, at: int | None = None) -> None:
        pass

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind}


def _scripted(surprising: set[int], slots: list[int]) -> list[float]:
    """A recurrence's scores over a scripted detector, a value in each of ``slots``."""
    d = DailyRecurrence(Scripted(surprising))
    scores = []
    for slot in slots:
        scores.append(d.score_one(1.0, slot * SLOT_MS))
        d.learn_one(1.0, slot * SLOT_MS)
    return scores


def test_two_days_of_surprises_on_end_are_not_a_schedule():
    """Surprising all day for two days (a level the detectors have not learned yet):
    half a day before each match was not quiet, so nothing is taken for a job."""
    end = 2 * DAY_SLOTS + 100
    assert _scripted(set(range(end)), list(range(end)))[2 * DAY_SLOTS :] == [1.0] * 100
    # The same matches with quiet half days between them are a schedule; a surprise half
    # a day before yesterday's match is not.
    job, slots = {24, DAY_SLOTS + 24, 2 * DAY_SLOTS + 24}, list(range(2 * DAY_SLOTS + 25))
    assert _scripted(job, slots)[-1] == MARK
    assert _scripted(job | {DAY_SLOTS + 24 - DAY_SLOTS // 2}, slots)[-1] == 1.0
    # Nor is one half a day before today's (surprised since yesterday afternoon).
    assert _scripted(job | {2 * DAY_SLOTS + 24 - DAY_SLOTS // 2}, slots)[-1] == 1.0


def test_a_gap_of_more_than_two_days_forgets_the_schedule():
    """A job on three days, then no value for three days: the next job is a surprise
    (the slots of the days without values were quiet). After half a day without values,
    yesterday's slot is read as quiet too, not as the older slot whose bit it takes
    (fails without the ring's bounds in ``_bit``)."""
    job = {day * DAY_SLOTS + 24 for day in range(7)}
    slots = [*range(3 * DAY_SLOTS), 6 * DAY_SLOTS + 24]
    scores = _scripted(job, slots)
    assert scores[2 * DAY_SLOTS + 24] == MARK and scores[-1] == 1.0
    # A gap of half a day: yesterday's slot at this time is not learned yet, and its
    # place in the ring still holds day 0's bit two days and 40 minutes before it.
    surprising = {192, DAY_SLOTS + 200, 3 * DAY_SLOTS + 200}
    slots = [*range(2 * DAY_SLOTS + 100), 3 * DAY_SLOTS + 200]
    assert (2 * DAY_SLOTS + 200) % RING == 192
    assert _scripted(surprising, slots)[-1] == 1.0


def test_a_slot_without_a_value_since_its_bit_came_round_again_reads_quiet():
    """The bits are a ring of two days and 40 minutes: day 0's 02:00 takes the bit of day
    2's 02:40. An hourly series has no value at 02:40 to clear it, so it is cleared as
    time passes it; otherwise day 3's 02:40 would match day 0's surprise and day 1's."""
    surprising = {24, DAY_SLOTS + 32, 3 * DAY_SLOTS + 32}
    slots = sorted(set(range(0, 3 * DAY_SLOTS, 12)) | surprising)
    assert RING == 2 * DAY_SLOTS + 8  # day 0's slot 24 is day 2's slot 32
    assert _scripted(surprising, slots)[-1] == 1.0


def test_a_value_without_a_time_is_scored_as_the_detector_scores_it():
    d = DailyRecurrence(Scripted(set()))
    assert d.score_one(1.0) == 0.5
    d.learn_one(1.0)
    assert d.to_json()["slot"] is None


def test_a_state_restores_with_its_slots_and_a_wrong_one_is_refused():
    d, _ = _fed({1: NIGHTLY, 2: NIGHTLY}, 3)
    state = orjson.loads(orjson.dumps(d.to_json()))
    at = (3 * DAY_SLOTS + 24) * SLOT_MS
    assert detection.restore(state).score_one(100.0, at) == d.score_one(100.0, at) == MARK
    state["marked"] = state["marked"][:8]
    with pytest.raises(ValueError, match="bytes of slots"):
        detection.restore(state)


def test_a_state_holds_73_bytes_of_slots_keeps_its_mark_and_refuses_stray_characters():
    """584 slots (two days and 40 minutes) are 73 bytes; a mark of its own comes back;
    a state whose slots have a character base64 does not use is damaged, not read
    around it."""
    d = DailyRecurrence(Scripted({24}), mark=0.99)
    d.learn_one(1.0, 24 * SLOT_MS)
    state = orjson.loads(orjson.dumps(d.to_json()))
    assert RING == 584 and len(base64.b64decode(state["marked"])) == 73
    restored = DailyRecurrence.restore(state, lambda _: Scripted({24}))
    assert restored.mark == 0.99 and restored.to_json() == state
    state["marked"] = state["marked"][:40] + "!" + state["marked"][40:]
    with pytest.raises(ValueError):
        DailyRecurrence.restore(state, lambda _: Scripted({24}))


@pytest.mark.parametrize("mark", [0.0, 1.0, 1.5, -0.5])
def test_a_mark_that_is_not_a_score_between_0_and_1_is_refused(mark):
    with pytest.raises(ValueError, match=r"mark is a score in \(0, 1\), got"):
        DailyRecurrence(Scripted(set()), mark=mark)


class ByValue:
    """A raw detector that scores 1 a value of 50 or more with a time and 0.5 anything
    else, and keeps what it was asked to score and to learn."""

    kind = "by value"

    def __init__(self) -> None:
        self.scored: list[tuple[float, int | None]] = []
        self.learned: list[tuple[float, int | None]] = []

    def score_one(self, x: float, at: int | None = None) -> float:
        self.scored.append((x, at))
        return 1.0 if at is not None and x >= 50 else 0.5

    def learn_one(self, x: float, at: int | None = None) -> None:
        self.learned.append((x, at))

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind}


def test_a_value_just_scored_is_learned_on_that_score_and_another_one_is_scored_afresh():
    """The recurrence keeps the score of the value it just scored for learning it (one
    call to its detector a value); a value other than that one, or one not scored first,
    is scored again when learned: it marks its slot by its own score, and a job among
    them is kept from a detector that is not taught jobs."""
    inner = ByValue()
    d = DailyRecurrence(inner, teach_jobs=False)
    for day in range(3):  # a job at 02:00 every night
        for slot in range(DAY_SLOTS):
            x, at = (100.0 if slot == 24 else 1.0), (day * DAY_SLOTS + slot) * SLOT_MS
            d.score_one(x, at)
            d.learn_one(x, at)
    assert len(inner.scored) == 3 * DAY_SLOTS
    job, other = 3 * DAY_SLOTS + 24, 3 * DAY_SLOTS + 150
    d.score_one(1.0, job * SLOT_MS)  # scored as ordinary, learned as the job's load
    d.learn_one(100.0, job * SLOT_MS)
    assert d._bit(job) and (100.0, job * SLOT_MS) not in inner.learned
    d.score_one(100.0, other * SLOT_MS)  # scored as a surprise, learned as ordinary
    d.learn_one(1.0, other * SLOT_MS)
    assert not d._bit(other) and (1.0, other * SLOT_MS) in inner.learned
    d.learn_one(100.0, (other + 1) * SLOT_MS)  # not scored first
    assert d._bit(other + 1)


def test_a_value_40_minutes_late_does_not_read_the_newest_slot_for_two_days_before_it():
    """Two days before a value 40 minutes late is the ring's newest slot's place: read
    there, the newest slot's surprise would stand for one two days before, and the late
    value would pass for a job seen yesterday and the day before."""
    late = 2 * DAY_SLOTS + 100
    newest = late + 8
    assert (late - 2 * DAY_SLOTS) % RING == newest % RING
    surprising = {late - DAY_SLOTS, late, newest}
    assert _scripted(surprising, [*range(newest + 1), late])[-1] == 1.0


def test_a_jump_past_the_whole_ring_forgets_every_slot():
    d = DailyRecurrence(Scripted({5}))
    d.learn_one(1.0, 5 * SLOT_MS)
    d.learn_one(1.0, (5 + 2 * RING - 1) * SLOT_MS)  # the oldest slot now is 5's place
    assert not any(d._bit(5 + 2 * RING - 1 - back) for back in range(RING))


def test_a_step_scored_at_the_mark_marks_its_slot_and_needs_no_cap():
    """A raw score at least the mark is a surprise the ring keeps; only one above it is
    capped (and flagged as scheduled work)."""
    job = {24, DAY_SLOTS + 24, 2 * DAY_SLOTS + 24}
    d = DailyRecurrence(Scripted(job, score=MARK))
    for slot in range(2 * DAY_SLOTS + 25):
        d.score_one(1.0, slot * SLOT_MS)
        assert not d.scheduled
        d.learn_one(1.0, slot * SLOT_MS)
    assert all(d._bit(slot) for slot in job)


def test_a_value_late_by_the_whole_ring_marks_nothing_and_one_within_it_counts():
    """The ring's place of a slot two days and 40 minutes back is the newest slot's: a
    surprise that late would mark the newest slot, so it is dropped; one slot less late
    is within the ring and marks its own slot."""
    d = DailyRecurrence(ByValue())
    latest = RING + 10
    for slot in range(latest + 1):
        d.learn_one(1.0, slot * SLOT_MS)
    d.learn_one(100.0, (latest - RING) * SLOT_MS)
    assert not d._bit(latest)
    d.learn_one(100.0, (latest - RING + 1) * SLOT_MS)
    assert d._bit(latest - RING + 1)


def test_the_default_stops_alerting_on_a_hosts_nightly_job():
    """Host gauges of the synthetic corpus (a value every 5 minutes, a nightly job of 10
    to 45 minutes, an hourly one in half of them), six without an anomaly: past their
    third day, 5 alerts with the daily jobs, 14 with them counted as evidence by the
    chance check, 59 without them (a run)."""
    choices = {"default": {}, "counted": {"discount_jobs": False}, "none": {"daily_jobs": False}}
    counted = dict.fromkeys(choices, 0)
    for seed in range(6):
        times, values, _ = synthetic.GENERATORS["scheduled"](np.random.default_rng(seed), 0)
        rows = [(synthetic._stamp(t), v) for t, v in zip(times, values, strict=True)]
        for name, kwargs in choices.items():
            run = backtest.run(rows, default_detector(**kwargs))
            counted[name] += sum(alert for i, (*_, alert) in enumerate(run) if i >= 3 * DAY_SLOTS)
    assert counted["counted"] <= 0.3 * counted["none"], counted
    assert counted["default"] <= 0.6 * counted["counted"], counted


def test_a_step_is_scheduled_work_exactly_when_it_was_capped():
    """``scheduled`` says whether the value just scored was capped as a job, and nothing
    once it is learned: the likelihood reads it between the two."""
    d = DailyRecurrence(GaussianDetector(window_size=DAY_SLOTS, grace_period=30))
    flags = {}
    for day in range(5):  # a job from day 1 on (day 0 is the detector's warm-up)
        for slot in range(DAY_SLOTS):
            at = (day * DAY_SLOTS + slot) * SLOT_MS
            job = day > 0 and slot in NIGHTLY
            x = 100.0 if job or (day, slot) == (4, 150) else _quiet(slot)
            score = d.score_one(x, at)
            flags[day, slot] = d.scheduled
            assert d.scheduled == (score == MARK and d.detector.score_one(x, at) > MARK)
            d.learn_one(x, at)
            assert not d.scheduled
    assert [flags[day, 24] for day in range(5)] == [False, False, False, True, True]
    assert not flags[4, 150]  # a load at another time of day is not a job


def test_a_recurrence_that_keeps_its_jobs_out_teaches_its_detector_nothing_of_them():
    """Five nights of a job (100 among values of about 10), the last three capped, then
    a load of 20 in the afternoon: a detector taught the capped nights has a spread wide
    with them (its last day holds one) and scores the load lower than one kept from
    them, whose last day holds none."""
    scores = {}
    for teach in (True, False):
        d, _ = _fed(dict.fromkeys(range(1, 6), NIGHTLY), 6, teach_jobs=teach)
        scores[teach] = (d.score_one(20.0, (6 * DAY_SLOTS + 150) * SLOT_MS), d.detector)
    taught, kept = scores[True][1]._moments, scores[False][1]._moments  # the last day's
    assert taught.var > 10 and kept.var < 1 and kept.mean < 11.5
    assert scores[False][0] > scores[True][0]


def test_keeping_the_jobs_out_is_in_the_state_and_an_older_state_teaches_them():
    d = DailyRecurrence(GaussianDetector(), teach_jobs=False)
    state = orjson.loads(orjson.dumps(d.to_json()))
    assert state["teach_jobs"] is False and not detection.restore(state).teach_jobs
    del state["teach_jobs"]
    assert detection.restore(state).teach_jobs
    assert "teach_jobs" not in DailyRecurrence(GaussianDetector()).to_json()
