"""The worker's pure core in one process, without Kafka or ClickHouse.

1. Decoding: ``producers.events.decode`` (msgspec Struct plus the remaining rules) on the
   same JSON lines as the baseline, ``orjson.loads`` followed by the full rules in Python
   (``_validate``); microseconds per event and their ratio.
2. The processor (decode, windows ``1m,5m,5m/1m`` with sketches, live tracking, raw rows)
   over envelopes of 1,000 events, for 1,000 and for 100,000 series: microseconds per
   event (the median of three runs, the collector at the worker's thresholds) and the
   growth of the process RSS in the first; then each stage of it alone on the same
   envelopes (medians of three runs), in microseconds per event of the whole stream:

   - ``decode``: envelopes split into lines and their lines decoded by msgspec into
     ``Event`` objects in one call (``producers.events.decode_lines``, as the
     processor's ``decode_all``; types and sizes checked in C);
   - ``validate``: the rules msgspec cannot say, and the series key (``_checked``);
   - ``windows``: each envelope's events added to their panes (``Windows.add_events``),
     and the panes closed and folded into the windows, as records;
   - ``live``: the workflow events applied to the live executions (``Executions.add``);
   - ``raw rows``: each event kept for its row of the raw ``events`` table, and the
     batch's rows made into the insert's Arrow columns (``sinks.rows.RawRows``);
   - ``rest``: the processor's total less the stages: the loop, offsets, each event's
     partition, evaluation of closed windows, and what the stages cost together beyond alone;
   - ``collector``: Python's cyclic garbage collector, which the stages are measured
     without (a batch decoded at once keeps 20,000 young objects alive, and the
     collector's passes over them would be charged to whichever stage made them): the
     processor's time with the collector on at the worker's thresholds
     (``streams.collector.THRESHOLDS``, as the processor total is measured), less its
     time with it off; ``collector_python_defaults`` is the same at Python's own
     thresholds, what the worker's save.
3. The default detector (``streams.detection.default_detector``): rows per second, the
   size of one model's JSON state after those rows (whole, and stored as a worker
   stores it: ``streams.modelbase.thin``), and the memory one model holds
   after 10, 40, 300 and 2,000 values (``MODEL_AGES``: from a new series to a mature one).
4. A checkpoint of the processor with the default rules (a detector model per latency
   series) after the same events at 100,000 series: the state's JSON and what the store
   keeps of it (compressed as it is encoded, ``PartitionState.packed``), their sizes,
   the seconds of CPU each took to make and to read back (medians of three runs in
   turn), and their ratios.

With ``--sources-too``, part 2 runs again in a process of its own from the sources
(``VIGIL_PURE_PYTHON=1``: nothing of ``setup.py``'s compiled core), and each of its
figures is printed beside the compiled one (``..._sources``) with their ratio
(``..._compiled_vs_sources``): a before and after of the compiled core in one run.

    python -m bench.worker_core --events 300000 [--sources-too]
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import gc
import itertools
import json
import random
import statistics
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import orjson

import streams
from bench.pipeline import make_events
from bench.report import emit, progress
from producers.envelopes import split
from producers.events import WORKFLOW_KINDS, _checked, _validate, decode, decode_lines
from sinks.rows import RawRows
from streams import chunked, collector, modelbase
from streams.detection import default_detector
from streams.executions import Executions
from streams.processing import Processor
from streams.records import RawBatch
from streams.settings import WorkerSettings
from streams.windows import Windows, parse_windows


def _rss_mb() -> float:
    status = Path("/proc/self/status")
    if not status.exists():
        return 0.0
    return int(status.read_text().split("VmRSS:")[1].split()[0]) / 1024


def decoding(lines: list[bytes], now_ms: int) -> dict[str, float]:
    started = time.perf_counter()
    for line in lines:
        _validate(orjson.loads(line), now_ms=now_ms)
    baseline = (time.perf_counter() - started) / len(lines) * 1e6
    started = time.perf_counter()
    for line in lines:
        decode(line, now_ms=now_ms)
    fast = (time.perf_counter() - started) / len(lines) * 1e6
    return {
        "decode_us_per_event": round(fast, 3),
        "baseline_orjson_validate_us_per_event": round(baseline, 3),
        "decode_vs_baseline": round(fast / baseline, 3),
    }


WINDOWS = "1m,5m,5m/1m"
#: Runs of the processor with and without the collector, and of the stages: medians.
ROUNDS = 3
#: Python's own collector thresholds, as this process started with them.
PYTHON_THRESHOLDS = gc.get_threshold()
#: Envelopes handed to the processor at once (a worker's batch).
BATCH = 20


def _messages(n: int, series: int) -> list[tuple[int, int, bytes]]:
    """``n`` bench events over ``series`` series as messages of one partition, 1,000
    events an envelope."""
    lines = [orjson.dumps(e) for e in make_events(n, series)]
    return [(0, i // 1000, b"\n".join(lines[i : i + 1000])) for i in range(0, n, 1000)]


def processing(n: int, series: int, now_ms: int) -> dict[str, float]:
    messages = _messages(n, series)
    gc.collect()
    before = _rss_mb()
    with _thresholds(collector.THRESHOLDS):
        with_collector = [_processor(messages, n, series, now_ms)]
    growth = _rss_mb() - before
    python_defaults: list[float] = []
    without_collector: list[float] = []
    stage_runs: list[dict[str, float]] = []
    for round_ in range(ROUNDS):  # alternately, so that the machine's drift hits each
        if round_:
            with _thresholds(collector.THRESHOLDS):
                with_collector.append(_processor(messages, n, series, now_ms))
        gc.collect()
        with _thresholds(PYTHON_THRESHOLDS):
            python_defaults.append(_processor(messages, n, series, now_ms))
        gc.collect()
        gc.disable()  # the work of each stage, without the collector's passes over the state
        try:
            without_collector.append(_processor(messages, n, series, now_ms))
            stage_runs.append(_stages(messages, n, now_ms))
        finally:
            gc.enable()
    total = statistics.median(with_collector)
    stages = {k: statistics.median(run[k] for run in stage_runs) for k in stage_runs[0]}
    without = statistics.median(without_collector)
    out = {
        f"processor_us_per_event_{series}_series": round(total, 2),
        f"processor_rss_growth_mb_{series}_series": round(growth, 1),
    }
    for stage, us in stages.items():
        out[f"stage_{stage}_us_per_event_{series}_series"] = round(us, 2)
    rest = without - sum(stages.values())
    out[f"stage_rest_us_per_event_{series}_series"] = round(rest, 2)
    out[f"stage_collector_us_per_event_{series}_series"] = round(total - without, 2)
    out[f"collector_python_defaults_us_per_event_{series}_series"] = round(
        statistics.median(python_defaults) - without, 2
    )
    return out


@contextlib.contextmanager
def _thresholds(thresholds: tuple[int, int, int]) -> Iterator[None]:
    """The collector's thresholds set to ``thresholds`` for the block (a worker sets
    :data:`streams.collector.THRESHOLDS` once at start)."""
    before = gc.get_threshold()
    gc.set_threshold(*thresholds)
    try:
        yield
    finally:
        gc.set_threshold(*before)


def _processor(messages: list[tuple[int, int, bytes]], n: int, series: int, now_ms: int) -> float:
    """µs per event of a fresh :class:`Processor` over ``messages``, ``BATCH`` at a time,
    knowing the partition count as a worker does, so each event's partition is looked up
    (one partition: every event is this one's, as from a producer that keys by series;
    without it the processor takes a path no worker takes)."""
    _, seconds = _fed(messages, n, f"processor, {series:,} series", now_ms, raw_rows=RawRows("b/t"))
    return seconds / n * 1e6


def _fed(
    messages: list[tuple[int, int, bytes]], n: int, label: str, now_ms: int, **options: Any
) -> tuple[Processor, float]:
    """A fresh processor of one partition (``options`` as for :class:`Processor`) after
    ``messages``, ``BATCH`` at a time, and the seconds it took."""
    processor = Processor(
        windows=parse_windows(WINDOWS), grace_ms=30_000, source="b/t", partitions=1, **options
    )
    processor.load(0, None, -1)
    started = time.perf_counter()
    for j in range(0, len(messages), BATCH):
        processor.process(messages[j : j + BATCH], now_ms=now_ms, checkpoint=False)
        progress(label, min((j + BATCH) * 1000, n), n, started)
    return processor, time.perf_counter() - started


def _stages(messages: list[tuple[int, int, bytes]], n: int, now_ms: int) -> dict[str, float]:
    """Each stage of :meth:`Processor.process` alone, batch by batch as the processor
    sees them: µs per event of the whole stream (a stage that sees only some events, as
    live tracking, is still divided by all of them, so the stages add up to the
    processor's work)."""
    clock = time.perf_counter
    seconds = dict.fromkeys(("decode", "validate", "windows", "live", "raw_rows"), 0.0)
    windows = Windows(parse_windows(WINDOWS), grace_ms=30_000, partition=0)
    executions, rows = Executions(), RawRows("b/t")
    started = clock()
    for j in range(0, len(messages), BATCH):
        batch = messages[j : j + BATCH]
        t = clock()
        events = [decode_lines(split(value)) for _, _, value in batch]
        t0 = clock()
        keys = [[_checked(ev, now_ms) for ev in envelope] for envelope in events]
        t1 = clock()
        if any(None in envelope for envelope in keys):
            raise RuntimeError("the benchmark's events must all pass the fast rules")
        for envelope, series in zip(events, keys, strict=True):  # an envelope at once
            windows.add_events(envelope, series)
        windows.close_ready()
        t2 = clock()
        workflow = [
            msgspec.structs.asdict(ev)
            for envelope in events
            for ev in envelope
            if ev.kind in WORKFLOW_KINDS
        ]
        for record in workflow:
            executions.add(record)
        t3 = clock()
        raw = RawBatch(0, batch[0][1], batch[-1][1])
        for (_, offset, _), envelope, series in zip(batch, events, keys, strict=True):
            late = itertools.repeat(False)
            raw.rows.extend(
                zip(envelope, series, itertools.repeat(offset), range(len(envelope)), late)
            )
        rows.payload([raw])
        t4 = clock()
        seconds["decode"] += t0 - t
        seconds["validate"] += t1 - t0
        seconds["windows"] += t2 - t1
        seconds["live"] += t3 - t2
        seconds["raw_rows"] += t4 - t3
        progress("stages", min(j + BATCH, len(messages)) * 1000, n, started)
    return {stage: s / n * 1e6 for stage, s in seconds.items()}


#: The values a model has learned when its memory is measured: a new series (at 100,000
#: series a worker's models are mostly this young), one whose log view has just learned
#: its first values, one of a few hours, and a mature one.
MODEL_AGES = (10, 40, 300, 2_000)


def detecting(rows: int) -> dict[str, float]:
    rng = random.Random(1)
    values = [rng.gauss(0, 1) for _ in range(rows)]
    detector = default_detector()
    started = time.perf_counter()
    for i, x in enumerate(values):
        detector.score_one(x, i * 60_000)
        detector.learn_one(x, i * 60_000)
    elapsed = time.perf_counter() - started
    state = detector.to_json()
    return {
        "detector_rows_per_s": round(rows / elapsed),
        "detector_state_bytes": len(orjson.dumps(state)),
        "detector_state_bytes_stored": len(orjson.dumps(modelbase.thin(state))),
        **{f"detector_memory_bytes_after_{n}_values": model_memory(n) for n in MODEL_AGES},
    }


def model_memory(values: int, models: int = 200) -> int:
    """Bytes of memory one default model holds after ``values`` values (what a worker
    keeps per series a detector watches), from ``tracemalloc`` over ``models`` models."""
    rng = random.Random(2)
    series = [[rng.lognormvariate(3, 1) for _ in range(values)] for _ in range(models)]
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    kept = []
    for xs in series:
        detector = default_detector()
        for i, x in enumerate(xs):
            detector.score_one(x, i * 60_000)
            detector.learn_one(x, i * 60_000)
        kept.append(detector)
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return round(held / models)


def checkpointing(n: int, series: int, now_ms: int) -> dict[str, float]:
    rules = WorkerSettings(windows=parse_windows(WINDOWS), rules="default").load_rules()
    label = f"state for a checkpoint, {series:,} series"
    processor, _ = _fed(_messages(n, series), n, label, now_ms, rules=rules)
    state = processor.states[0]
    runs: dict[tuple[str, str], list[float]] = collections.defaultdict(list)
    sizes: dict[str, int] = {}
    forms = {"json": state.snapshot, "stored": state.packed}
    for round_ in range(ROUNDS):  # in turn, each first every other round
        for form in sorted(forms, reverse=bool(round_ % 2)):
            used = time.process_time()
            data = forms[form]()
            runs[form, "cpu_s"].append(time.process_time() - used)
            with collector.paused():  # as a worker reads a checkpoint
                used = time.process_time()
                chunked.loads(data)
                runs[form, "read_cpu_s"].append(time.process_time() - used)
            sizes[form] = len(data)
            del data
    figures = {(form, "mb"): size / 1e6 for form, size in sizes.items()}
    figures.update((key, statistics.median(times)) for key, times in runs.items())
    out: dict[str, float] = {}
    for (form, measure), figure in figures.items():
        out[f"checkpoint_{form}_{measure}_{series}_series"] = round(figure, 2)
    for measure in ("mb", "cpu_s", "read_cpu_s"):  # of the figures before rounding
        ratio = figures["stored", measure] / max(figures["json", measure], 1e-9)
        out[f"checkpoint_stored_vs_json_{measure}_{series}_series"] = round(ratio, 3)
    return out


#: Part 2's series counts.
SERIES = (1_000, 100_000)


def from_sources(events: int) -> dict[str, float]:
    """Part 2's figures from the sources, in a process of its own (its progress shown)."""
    from bench.compiled import child

    arguments = ["--events", str(events), "--processing"]
    return child("bench.worker_core", arguments, sources=True, quiet=False)  # type: ignore[no-any-return]


def beside(compiled: dict[str, float], sources: dict[str, float]) -> dict[str, float]:
    """Each figure of the sources beside the compiled one's, with their ratio.

    >>> beside({"stage_windows_us": 2.0}, {"stage_windows_us": 4.0})
    {'stage_windows_us_sources': 4.0, 'stage_windows_us_compiled_vs_sources': 0.5}
    """
    out = {}
    for key, figure in sources.items():
        out[f"{key}_sources"] = figure
        if figure:
            out[f"{key}_compiled_vs_sources"] = round(compiled[key] / figure, 3)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--sources-too", action="store_true", help="part 2 from the sources too")
    parser.add_argument("--processing", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    now_ms = int(time.time() * 1000)
    if args.processing:  # part 2 alone, as JSON (--sources-too's child)
        found: dict[str, float] = {}
        for series in SERIES:
            found.update(processing(args.events, series, now_ms))
        print(json.dumps(found))
        return
    sample = [orjson.dumps(e) for e in make_events(min(args.events, 100_000), 1_000)]
    result: dict[str, float] = {"events": args.events, **decoding(sample, now_ms)}
    result["compiled modules"] = len(streams.COMPILED)  # 0: the sources ran
    compiled: dict[str, float] = {}
    for series in SERIES:
        compiled.update(processing(args.events, series, now_ms))
    result.update(compiled)
    if args.sources_too:
        result.update(beside(compiled, from_sources(args.events)))
    result.update(detecting(50_000))
    result.update(checkpointing(args.events, 100_000, now_ms))
    emit(result)


if __name__ == "__main__":
    main()
