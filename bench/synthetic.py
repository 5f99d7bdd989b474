"""A seeded, labelled corpus of the shapes real services produce, in NAB's layout.

``write(root, seed)`` writes ``root/data/<category>/<name>.csv`` (``timestamp,value``) and
``root/labels/combined_windows.json``, so ``nab_score.py --nab root`` scores detections on
it exactly as on NAB. Each anomaly gets NAB's window: 10% of the file's rows shared among
its anomalies, centred on the onset. Files of ``quiet`` have no anomaly: any alert there
is a false one.

The shapes (one category each; several files with drawn parameters):

- ``bursty``: counts every 5 minutes with daily rhythm and frequent heavy-tailed bursts
  that are normal (mentions, sign-ups); anomalies: a burst far beyond the usual, a
  sustained surge, a collapse.
- ``hourly``: business metrics (price, conversion) every hour, lognormal around a
  wandering level, missing hours and whole missing days; anomalies: spikes, dips, shifts.
- ``traffic``: road sensors every ~5 minutes (jittered, with gaps): speed dipping at rush
  hours, occupancy peaking; anomalies: a dip off the rush hours, a stuck sensor, a night
  jam.
- ``sparse``: integer counts per minute of rare events (errors); anomalies: bursts, a
  rate change.
- ``drift``: autocorrelated gauges with a slow drift; anomalies: level shifts, variance
  changes, a stuck value.
- ``seasonal``: daily and weekly cycles (hourly or 10-minute samples); anomalies: a
  flattened day, a peak at an odd hour, a doubled amplitude.
- ``latency``: lognormal service latency per minute with ordinary GC-like spikes;
  anomalies: a regression (shift), a storm of spikes, a variance change.
- ``subtle``: ``hourly`` with smaller anomalies (spikes of 1.5-2x, dips to 0.5-0.7,
  shifts of 1.3-1.5x or 0.65-0.75x, where ``hourly`` has 2.5-5x, 0.1-0.35, 1.7-2.5x or
  0.35-0.6x): a metric that moves by a third is an incident in a business, and hourly
  series are where the default once missed most windows on series it never saw.
- ``scheduled``: a host's gauge (CPU, disk I/O) every 5 minutes with scheduled work: a
  nightly job at a fixed time of day (10-45 minutes at 2-4 times the usual level) and,
  in half the files, an hourly one at a fixed minute (one step); anomalies: the job's
  load at a time it is not scheduled, a job that runs for hours, a level shift. The
  jobs are normal: a detector that alerts on them alerts every night.
- ``demand``: rides, orders or meals every 15 or 30 minutes, each day of the week its
  own: weekday rush hours; weekends without the morning rush; nights running on past
  midnight more as the week goes on, most on Friday's and Saturday's, so a Saturday's
  small hours are busy where the day before's were among the quietest. Anomalies: a
  holiday (a weekday run as a Sunday from 06:00), an event (hours of 1.6-2.5 times the
  usual), an outage (hours of 0.1-0.5 times).
- ``quiet``: the same generators with no anomaly.

    python -m bench.synthetic OUT_DIR [--seed 2]
"""

from __future__ import annotations

import argparse
import functools
import itertools
import json
import math
from collections.abc import Callable
from pathlib import Path

import numpy as np

MINUTE_MS = 60_000
DAY_MS = 86_400_000
#: 2024-01-01 00:00 UTC, a Monday.
START_MS = 1_704_067_200_000

Series = tuple[list[int], list[float], list[int]]  # times (ms), values, anomaly onsets


def _daily(times: np.ndarray, peak_hour: float, weekly: float = 0.0) -> np.ndarray:
    """A smooth daily profile in [-1, 1], peaking at ``peak_hour``; two days a week scaled
    by ``1 - weekly``."""
    hours = (times % DAY_MS) / 3_600_000
    shape = np.cos(2 * math.pi * (hours - peak_hour) / 24)
    return np.where(_quiet_days(times), shape * (1 - weekly) - weekly, shape)


def _quiet_days(times: np.ndarray) -> np.ndarray:
    """Two days a week off: days 5 and 6 since the epoch, which are a Tuesday and a
    Wednesday (any two days make the same weekly cycle)."""
    return (times // DAY_MS) % 7 >= 5


def _grid(rng: np.random.Generator, n: int, step_ms: int, jitter: float = 0.0) -> np.ndarray:
    steps = np.full(n, step_ms, dtype=np.float64)
    if jitter:
        steps *= rng.uniform(1 - jitter, 1 + jitter, n)
    return START_MS + np.cumsum(steps).astype(np.int64)


def _onsets(rng: np.random.Generator, n: int, k: int) -> list[int]:
    """``k`` anomaly onsets past the first 20% of rows, apart from each other."""
    while True:
        picks = sorted(int(i) for i in rng.integers(int(0.2 * n), int(0.93 * n), k))
        if all(b - a > 0.12 * n for a, b in itertools.pairwise(picks)):
            return picks


def _bursty(rng: np.random.Generator, anomalies: int) -> Series:
    n = int(rng.integers(8_000, 16_000))
    times = _grid(rng, n, 5 * MINUTE_MS)
    level = math.exp(rng.uniform(math.log(3), math.log(300)))
    rate = level * (1 + rng.uniform(0.2, 0.7) * _daily(times, rng.uniform(10, 20), 0.2))
    boost = np.zeros(n)
    for start in np.flatnonzero(rng.random(n) < 1 / rng.uniform(150, 400)):
        height = rng.pareto(1.6) * rng.uniform(0.5, 1.5)  # normal bursts: heavy-tailed
        span = np.arange(start, min(n, start + 40))
        boost[span] += height * np.exp(-(span - start) / rng.uniform(2, 8))
    onsets = _onsets(rng, n, anomalies)
    for i in onsets:
        kind = rng.choice(["burst", "surge", "collapse"])
        if kind == "burst":
            span = np.arange(i, min(n, i + 60))
            boost[span] += rng.uniform(15, 40) * np.exp(-(span - i) / rng.uniform(8, 20))
        elif kind == "surge":
            boost[i : i + int(rng.integers(150, 500))] += rng.uniform(2, 4)
        else:
            rate[i : i + int(rng.integers(100, 400))] *= rng.uniform(0.02, 0.15)
    mean = rate * (1 + boost)
    values = rng.poisson(rng.gamma(4.0, mean / 4.0)).astype(float)
    return times.tolist(), values.tolist(), onsets


#: The sizes of ``hourly``'s anomalies (factors on the value): a spike, a dip, and a
#: level shift up or down; ``subtle`` has the same shape with smaller ones.
ANOMALY_SIZES = {
    "hourly": {"spike": (2.5, 5), "dip": (0.1, 0.35), "up": (1.7, 2.5), "down": (0.35, 0.6)},
    "subtle": {"spike": (1.5, 2), "dip": (0.5, 0.7), "up": (1.3, 1.5), "down": (0.65, 0.75)},
}


def _hourly(rng: np.random.Generator, anomalies: int, sizes: str = "hourly") -> Series:
    size = ANOMALY_SIZES[sizes]
    n = int(rng.integers(1_200, 1_800))
    times = _grid(rng, n, 3_600_000)
    log_level = np.cumsum(rng.normal(0, 0.01, n)) + rng.uniform(-2, 3)
    daily = rng.uniform(0, 0.3) * _daily(times, rng.uniform(0, 24))
    noise = rng.normal(0, rng.uniform(0.05, 0.25), n)
    onsets = _onsets(rng, n, anomalies)
    for i in onsets:
        kind = rng.choice(["spike", "dip", "shift"])
        if kind == "spike":
            noise[i : i + int(rng.integers(1, 4))] += math.log(rng.uniform(*size["spike"]))
        elif kind == "dip":
            noise[i : i + int(rng.integers(2, 12))] += math.log(rng.uniform(*size["dip"]))
        else:
            up, down = rng.uniform(*size["up"]), rng.uniform(*size["down"])
            noise[i:] += math.log(rng.choice([up, down]))
    values = np.round(np.exp(log_level + daily + noise), 3)
    keep = rng.random(n) > rng.uniform(0, 0.05)
    if rng.random() < 0.5:  # a missing stretch of one to three days
        gap = int(rng.integers(int(0.3 * n), int(0.8 * n)))
        keep[gap : gap + int(rng.integers(24, 72))] = False
    keep[onsets] = True
    return _kept(times, values, onsets, keep)


def _kept(times: np.ndarray, values: np.ndarray, onsets: list[int], keep: np.ndarray) -> Series:
    index = np.cumsum(keep) - 1
    return times[keep].tolist(), values[keep].tolist(), [int(index[i]) for i in onsets]


def _traffic(rng: np.random.Generator, anomalies: int) -> Series:
    n = int(rng.integers(2_000, 2_800))
    times = _grid(rng, n, 5 * MINUTE_MS, jitter=0.25)
    hours = (times % DAY_MS) / 3_600_000
    peaks = np.exp(-((hours - 8) ** 2) / 1.5) + np.exp(-((hours - 17.5) ** 2) / 2)
    rush = ~_quiet_days(times) * peaks
    speed = rng.random() < 0.5
    onsets = _onsets(rng, n, anomalies)
    if speed:
        values = 65 - rng.uniform(15, 35) * rush + rng.normal(0, rng.uniform(1.5, 4), n)
    else:
        values = 4 + rng.uniform(15, 30) * rush + rng.gamma(2, rng.uniform(0.5, 1.5), n)
    for i in onsets:
        kind = rng.choice(["incident", "stuck", "noisy"])
        span = slice(i, i + int(rng.integers(6, 30)))
        if kind == "incident":
            values[span] = (
                rng.uniform(8, 20, len(values[span]))
                if speed
                else rng.uniform(35, 60, len(values[span]))
            )
        elif kind == "stuck":
            values[i : i + int(rng.integers(80, 200))] = values[i]
        else:
            extra = rng.normal(0, 4 * values.std(), int(rng.integers(30, 90)))
            values[i : i + len(extra)] += extra[: len(values[i : i + len(extra)])]
    values = np.clip(np.round(values), 0, None)
    keep = rng.random(n) > 0.02
    keep[onsets] = True
    return _kept(times, values, onsets, keep)


def _sparse(rng: np.random.Generator, anomalies: int) -> Series:
    n = int(rng.integers(5_000, 10_000))
    times = _grid(rng, n, MINUTE_MS)
    rate = rng.uniform(0.05, 2) * (1 + 0.5 * _daily(times, rng.uniform(9, 18)))
    onsets = _onsets(rng, n, anomalies)
    for i in onsets:
        span = slice(i, i + int(rng.integers(15, 120)))
        rate[span] *= rng.uniform(6, 15) if rng.random() < 0.7 else rng.uniform(2.5, 4)
    return times.tolist(), rng.poisson(rate).astype(float).tolist(), onsets


def _ar1(rng: np.random.Generator, n: int, phi: float, sd: float) -> np.ndarray:
    shocks = rng.normal(0, sd * math.sqrt(1 - phi * phi), n)
    out = np.empty(n)
    out[0] = shocks[0]
    for i in range(1, n):
        out[i] = phi * out[i - 1] + shocks[i]
    return out


def _drift(rng: np.random.Generator, anomalies: int) -> Series:
    n = int(rng.integers(4_000, 8_000))
    times = _grid(rng, n, int(rng.choice([1, 5])) * MINUTE_MS)
    sd = rng.uniform(1, 5)
    noise = _ar1(rng, n, rng.uniform(0.5, 0.95), sd)
    values = rng.uniform(20, 200) + np.linspace(0, rng.uniform(-3, 3) * sd, n) + noise
    onsets = _onsets(rng, n, anomalies)
    for i in onsets:
        kind = rng.choice(["shift", "variance", "stuck"])
        if kind == "shift":
            values[i:] += rng.choice([-1, 1]) * rng.uniform(4, 8) * sd
        elif kind == "variance":
            end = i + int(rng.integers(200, 600))
            values[i:end] += rng.normal(0, rng.uniform(3, 5) * sd, len(values[i:end]))
        else:
            values[i : i + int(rng.integers(150, 400))] = round(values[i], 1)
    return times.tolist(), np.round(values, 2).tolist(), onsets


def _seasonal(rng: np.random.Generator, anomalies: int) -> Series:
    step = int(rng.choice([10, 60])) * MINUTE_MS
    n = int(rng.integers(3_000, 5_000)) if step < 3_600_000 else int(rng.integers(1_500, 3_000))
    times = _grid(rng, n, step)
    base, amplitude = rng.uniform(50, 500), rng.uniform(0.3, 0.8)
    profile = _daily(times, rng.uniform(10, 20), rng.uniform(0, 0.6))
    values = base * (1 + amplitude * profile)
    onsets = _onsets(rng, n, anomalies)
    per_day = DAY_MS // step
    for i in onsets:
        kind = rng.choice(["flat", "odd_peak", "amplitude"])
        day = slice(i, i + int(per_day))
        if kind == "flat":
            values[day] = base
        elif kind == "odd_peak":
            values[i : i + int(per_day // 8)] = base * (1 + amplitude) * 1.05
        else:
            values[day] = base * (1 + 2.2 * amplitude * profile[day])
    values *= 1 + rng.normal(0, rng.uniform(0.02, 0.1), n)
    return times.tolist(), np.round(values, 2).tolist(), onsets


def _latency(rng: np.random.Generator, anomalies: int) -> Series:
    n = int(rng.integers(5_000, 10_000))
    times = _grid(rng, n, MINUTE_MS)
    sigma = rng.uniform(0.1, 0.4)
    log_values = rng.normal(math.log(rng.uniform(5, 500)), sigma, n)
    log_values += 0.15 * _daily(times, rng.uniform(10, 18))
    spikes = rng.random(n) < 1 / rng.uniform(100, 400)  # GC pauses, cold caches: normal
    log_values[spikes] += np.log(rng.uniform(2, 5, spikes.sum()))
    onsets = _onsets(rng, n, anomalies)
    for i in onsets:
        kind = rng.choice(["regression", "storm", "variance"])
        end = i + int(rng.integers(120, 400))
        if kind == "regression":
            log_values[i:] += math.log(rng.uniform(1.4, 2.2))
        elif kind == "storm":
            storm = rng.random(len(log_values[i:end])) < 0.3
            log_values[i:end] += storm * math.log(rng.uniform(4, 10))
        else:
            log_values[i:end] += rng.normal(0, 3 * sigma, len(log_values[i:end]))
    return times.tolist(), np.round(np.exp(log_values), 3).tolist(), onsets


def _scheduled(rng: np.random.Generator, anomalies: int) -> Series:
    n = int(rng.integers(3_000, 6_000))
    step = 5 * MINUTE_MS
    times = _grid(rng, n, step)
    base, sd = rng.uniform(5, 40), rng.uniform(0.5, 3)
    values = base + _ar1(rng, n, rng.uniform(0.3, 0.8), sd)
    values += rng.uniform(0, 0.3) * base * _daily(times, rng.uniform(10, 18))
    slot = (times % DAY_MS) // step  # which 5 minutes of the day
    per_day, per_hour = DAY_MS // step, 3_600_000 // step
    start, steps = int(rng.integers(0, per_day)), int(rng.integers(2, 10))
    height = rng.uniform(2, 4) * base + 10 * sd
    nightly = (slot - start) % per_day < steps
    values[nightly] += height * rng.uniform(0.8, 1.2, int(nightly.sum()))
    if rng.random() < 0.5:
        hourly = slot % per_hour == int(rng.integers(0, per_hour))
        values[hourly] += rng.uniform(0.5, 1.5) * height * rng.uniform(0.8, 1.2, int(hourly.sum()))
    onsets = _onsets(rng, n, anomalies)
    for i in onsets:
        kind = rng.choice(["unscheduled", "long", "shift"])
        if kind == "unscheduled":
            values[i : i + steps] += 1.1 * height
        elif kind == "long":
            values[i : i + int(rng.integers(24, 72))] += height
        else:
            values[i:] += rng.choice([-1, 1]) * rng.uniform(4, 8) * sd
    return times.tolist(), np.clip(np.round(values, 2), 0, None).tolist(), onsets


def _bump(hours: np.ndarray, at: float, width: float) -> np.ndarray:
    """A peak at hour ``at`` of the day, ``width`` hours wide, wrapping round midnight."""
    off = (hours - at + 12) % 24 - 12
    return np.exp(-(off**2) / (2 * width * width))


def _weekday(times: np.ndarray) -> np.ndarray:
    """The day of the week of each time: 0 is a Monday (1970-01-01 was a Thursday)."""
    return (times // DAY_MS + 3) % 7


def _week(times: np.ndarray, late: float) -> np.ndarray:
    """Demand through a week (rides, orders, meals), each day of the week its own:
    weekdays have a morning rush and a higher evening; Saturday and Sunday have neither
    rush but a late midday. The nights run on past midnight more as the week goes on, most
    on Friday's and Saturday's: their small hours are ``late`` higher at 01:00 (those of
    Monday not at all, Tuesday's to Friday's a tenth to a third as much), so a Saturday's
    small hours are busy where the day before's were among the quietest of the day."""
    hours = (times % DAY_MS) / 3_600_000
    day = _weekday(times)
    weekend = day >= 5
    weekday = (
        0.15
        + 0.8 * _bump(hours, 8.5, 1.2)
        + 0.5 * _bump(hours, 13, 2)
        + 0.9 * _bump(hours, 19, 2.5)
    )
    rest = 0.15 + 0.7 * _bump(hours, 13, 3) + 0.6 * _bump(hours, 20, 3)
    night = np.array([0.0, 0.1, 0.15, 0.2, 0.35, 1.0, 1.0])[day] * (hours < 12)
    return np.where(weekend, rest, weekday) + late * night * _bump(hours, 1, 1.5)


def _demand(rng: np.random.Generator, anomalies: int) -> Series:
    step = int(rng.choice([15, 30])) * MINUTE_MS
    n = int(rng.integers(3_000, 6_000))
    times = _grid(rng, n, step)
    late = rng.uniform(0.2, 0.9)
    profile = _week(times, late)
    level = math.exp(rng.uniform(math.log(20), math.log(2_000)))
    trend = np.linspace(1, rng.uniform(0.8, 1.25), n)
    per_hour = int(3_600_000 // step)
    day, weekday = times // DAY_MS, _weekday(times)
    morning = (times % DAY_MS >= 6 * 3_600_000) & (weekday < 5)
    mornings = np.flatnonzero(morning & ~np.roll(morning, 1))  # each weekday's 06:00
    onsets = _onsets(rng, n, anomalies)
    for k, i in enumerate(onsets):
        kind = rng.choice(["holiday", "event", "outage"])
        if kind == "holiday":  # the nearest weekday run as a Sunday from 06:00 to midnight
            i = onsets[k] = int(mornings[np.argmin(abs(mornings - i))])
            span = day == day[i]
            span[:i] = False
            profile[span] = _week(times[span] + (6 - weekday[i]) * DAY_MS, late)
        elif kind == "event":  # a concert, a match: hours of more than the usual
            profile[i : i + per_hour * int(rng.integers(2, 7))] *= rng.uniform(1.6, 2.5)
        else:  # a storm, an outage: hours of far less
            profile[i : i + per_hour * int(rng.integers(2, 9))] *= rng.uniform(0.1, 0.5)
    mean = level * trend * profile * np.exp(rng.normal(0, rng.uniform(0.04, 0.12), n))
    return times.tolist(), rng.poisson(mean).astype(float).tolist(), onsets


GENERATORS: dict[str, Callable[[np.random.Generator, int], Series]] = {
    "bursty": _bursty,
    "hourly": _hourly,
    "traffic": _traffic,
    "sparse": _sparse,
    "drift": _drift,
    "seasonal": _seasonal,
    "latency": _latency,
    "subtle": functools.partial(_hourly, sizes="subtle"),
    "scheduled": _scheduled,
    "demand": _demand,  # last: the files of the shapes before it stay as they were
}
FILES_PER_SHAPE = 6


def _stamp(ms: int) -> str:
    return np.datetime64(ms, "ms").astype("datetime64[s]").item().strftime("%Y-%m-%d %H:%M:%S")


def _windows(times: list[int], onsets: list[int]) -> list[list[str]]:
    """NAB's labelling: 10% of the rows shared among the anomalies, centred on each."""
    if not onsets:
        return []
    half = int(0.10 * len(times) / len(onsets)) // 2
    last = len(times) - 1
    edges = [(times[max(0, i - half)], times[min(last, i + half)]) for i in onsets]
    return [[_stamp(a) + ".000000", _stamp(b) + ".000000"] for a, b in edges]


def write(root: Path, seed: int) -> dict[str, list[list[str]]]:
    """The corpus of ``seed`` under ``root``; returns its labels (path -> windows)."""
    return write_seeds(root, [seed], prefix=False)


def write_seeds(root: Path, seeds: list[int], *, prefix: bool = True) -> dict[str, list[list[str]]]:
    """The corpora of ``seeds`` side by side under ``root``, as one corpus: each file's
    name starts with ``s<seed>_`` (:func:`seed_of` reads it back) unless ``prefix`` is off,
    so a shape's folder holds that shape from every seed."""
    labels: dict[str, list[list[str]]] = {}
    for seed in seeds:
        rng = np.random.default_rng(seed)
        tag = f"s{seed}_" if prefix else ""
        for shape, make in GENERATORS.items():
            for k in range(FILES_PER_SHAPE):
                anomalies = int(rng.integers(1, 4))
                rel = f"{shape}/{tag}{shape}_{k}.csv"
                labels.update(_file(root, rel, *make(rng, anomalies)))
            labels.update(_file(root, f"quiet/{tag}{shape}_quiet.csv", *make(rng, 0)))
    (root / "labels").mkdir(parents=True, exist_ok=True)
    (root / "labels" / "combined_windows.json").write_text(json.dumps(labels, indent=1))
    return labels


def seed_of(rel: str) -> int:
    """The seed of a file written by :func:`write_seeds`."""
    name = rel.rsplit("/", 1)[-1]
    if not name.startswith("s") or "_" not in name:
        raise ValueError(f"{rel!r} was not written by write_seeds (no s<seed>_ prefix)")
    return int(name[1:].split("_", 1)[0])


def _file(
    root: Path, rel: str, times: list[int], values: list[float], onsets: list[int]
) -> dict[str, list[list[str]]]:
    path = root / "data" / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{_stamp(t)},{v:g}" for t, v in zip(times, values, strict=True)]
    path.write_text("timestamp,value\n" + "\n".join(lines) + "\n")
    return {rel: _windows(times, onsets)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--seed", type=int, default=2)
    args = parser.parse_args()
    labels = write(Path(args.out), args.seed)
    windows = sum(len(w) for w in labels.values())
    print(f"{len(labels)} files, {windows} anomaly windows under {args.out}")


if __name__ == "__main__":
    main()
