"""The synthetic corpus of ``bench/synthetic.py``: NAB's layout and labelling rule."""

from __future__ import annotations

import csv
import datetime as dt
import json

import numpy as np

from bench import synthetic


def _rows(path):
    with path.open(newline="") as f:
        return [(r["timestamp"], float(r["value"])) for r in csv.DictReader(f)]


def test_a_corpus_is_nab_shaped_and_labelled_as_nab_labels(tmp_path):
    labels = synthetic.write(tmp_path, seed=5)
    assert labels == json.loads((tmp_path / "labels" / "combined_windows.json").read_text())
    files = sorted(p.relative_to(tmp_path / "data").as_posix() for p in tmp_path.rglob("*.csv"))
    assert files == sorted(labels)
    shapes = {rel.split("/")[0] for rel in labels}
    assert shapes == {*synthetic.GENERATORS, "quiet"}
    for rel, windows in labels.items():
        rows = _rows(tmp_path / "data" / rel)
        stamps = [t for t, _ in rows]
        assert stamps == sorted(stamps) and len(set(stamps)) == len(stamps)
        assert (windows == []) == rel.startswith("quiet/")
        inside = 0
        for start, end in windows:
            a, b = (dt.datetime.fromisoformat(x) for x in (start, end))
            span = [t for t in stamps if a <= dt.datetime.fromisoformat(t) <= b]
            inside += len(span)
        # NAB's rule: a tenth of the file's rows in windows (less where one meets an edge).
        assert inside <= 0.1 * len(rows) + 2 * len(windows)


def test_the_same_seed_writes_the_same_corpus_and_another_does_not(tmp_path):
    a, b, c = tmp_path / "a", tmp_path / "b", tmp_path / "c"
    synthetic.write(a, seed=3)
    synthetic.write(b, seed=3)
    synthetic.write(c, seed=4)
    rel = "bursty/bursty_0.csv"
    assert (a / "data" / rel).read_bytes() == (b / "data" / rel).read_bytes()
    assert (a / "data" / rel).read_bytes() != (c / "data" / rel).read_bytes()


def test_several_seeds_make_one_corpus_whose_files_name_their_seed(tmp_path):
    both = synthetic.write_seeds(tmp_path / "both", [3, 4])
    alone = synthetic.write(tmp_path / "three", seed=3)
    assert len(both) == 2 * len(alone)
    assert {synthetic.seed_of(rel) for rel in both} == {3, 4}
    for rel, windows in alone.items():
        shape, name = rel.split("/")
        twin = f"{shape}/s3_{name}"
        assert both[twin] == windows
        data = tmp_path / "both" / "data" / twin
        assert data.read_bytes() == (tmp_path / "three" / "data" / rel).read_bytes()


def test_scheduled_jobs_come_back_at_the_same_time_every_day():
    # A day is 288 values of 5 minutes: a value is most like the one a day before it
    # (the nightly job, the hourly one and the daily cycle line up), not like the one
    # 150 values before (12.5 hours: none of them do).
    for seed in range(4):
        _, values, _ = synthetic.GENERATORS["scheduled"](np.random.default_rng(seed), 0)
        v = np.array(values)
        day, half = (np.corrcoef(v[:-k], v[k:])[0, 1] for k in (288, 150))
        assert day > 0.8 > 0.1 > half


def test_the_nightly_job_runs_at_the_same_five_minutes_of_every_day():
    # The five minutes whose median over the days is highest hold the job on every day:
    # more than twice the day's median each time (3.9 to 6.6 on seeds 0-7; without the
    # jobs, the daily cycle's peak, 0.98 to 1.21).
    for seed in range(4):
        times, values, _ = synthetic.GENERATORS["scheduled"](np.random.default_rng(seed), 0)
        t, v = np.array(times), np.array(values)
        slot = (t % synthetic.DAY_MS) // (5 * synthetic.MINUTE_MS)
        first = int(np.argmax(slot == 0))
        days = (len(v) - first) // 288
        by_day = v[first : first + 288 * days].reshape(days, 288)
        top = int(np.argmax(np.median(by_day, axis=0)))
        assert days >= 10
        assert (by_day[:, top] > 2 * np.median(by_day, axis=1)).all()


def _demand(
    seed: int, anomalies: int
) -> tuple[np.ndarray, np.ndarray, list[int], np.ndarray, np.ndarray]:
    """A demand file's times, values and onsets, and each time's day of the week (0 is a
    Monday: 1970-01-01 was a Thursday) and hour of the day."""
    rng = np.random.default_rng(seed)
    times, values, onsets = synthetic.GENERATORS["demand"](rng, anomalies)
    t = np.array(times)
    return (
        t,
        np.array(values),
        onsets,
        (t // synthetic.DAY_MS + 3) % 7,
        t % synthetic.DAY_MS / 3_600_000,
    )


def test_demand_makes_each_day_of_the_week_its_own():
    # Saturday's small hours are busier than Friday's (Friday's night runs on past
    # midnight), and a weekday's 08:00-09:00 is busier than Saturday's (a rush hour
    # Saturday does not have): over 40 seeds, at least 1.86 and 2.43 times.
    for seed in range(4):
        _, v, _, day, hour = _demand(seed, 0)
        small, rush = (hour >= 0.5) & (hour < 2), (hour >= 8) & (hour < 9)
        assert v[small & (day == 5)].mean() > 1.5 * v[small & (day == 4)].mean()
        assert v[rush & (day < 5)].mean() > 1.5 * v[rush & (day == 5)].mean()


def test_a_holiday_is_a_weekday_run_as_a_sunday_from_six_in_the_morning():
    # An onset at 06:00 on a weekday is a holiday's (12 of 36 onsets on seeds 0-11), and
    # its morning has no rush: 08:00-09:00 is under half of the weekdays' mean then.
    at_six = quiet_mornings = 0
    for seed in range(12):
        t, v, onsets, day, hour = _demand(seed, 3)
        rush = (hour >= 8) & (hour < 9) & (day < 5)
        for i in onsets:
            if hour[i] == 6 and day[i] < 5:
                at_six += 1
                today = rush & (t // synthetic.DAY_MS == t[i] // synthetic.DAY_MS)
                quiet_mornings += v[today].mean() < 0.5 * v[rush].mean()
    assert quiet_mornings == at_six >= 8
