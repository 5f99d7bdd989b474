"""The worker's pure core in one process, without Kafka or ClickHouse.

1. Decoding: ``producers.events.decode`` (msgspec Struct plus the remaining rules) on the
   same JSON lines as the baseline, ``orjson.loads`` followed by the full rules in Python
   (``_validate``); microseconds per event and their ratio.
2. The processor (decode, windows ``1m,5m,5m/1m`` with sketches, live tracking, raw rows)
   over envelopes of 1,000 events, for 1,000 and for 100,000 series: microseconds per
   event and the growth of the process RSS while it runs.
3. The default detector (``streams.detection.default_detector``): rows per second, and
   the size of one model's JSON state after those rows.

    python -m bench.worker_core --events 300000
"""

from __future__ import annotations

import argparse
import gc
import random
import time
from pathlib import Path

import orjson

from bench.pipeline import make_events
from bench.report import emit, progress
from producers.events import _validate, decode
from sinks.rows import RawRows
from streams.detection import default_detector
from streams.processing import Processor
from streams.windows import parse_windows


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


def processing(n: int, series: int, now_ms: int) -> dict[str, float]:
    lines = [orjson.dumps(e) for e in make_events(n, series)]
    messages = [(0, i // 1000, b"\n".join(lines[i : i + 1000])) for i in range(0, n, 1000)]
    del lines
    gc.collect()
    before = _rss_mb()
    processor = Processor(
        windows=parse_windows("1m,5m,5m/1m"), grace_ms=30_000, source="b/t", raw_rows=RawRows("b/t")
    )
    processor.load(0, None, -1)
    started = time.perf_counter()
    for j in range(0, len(messages), 20):
        processor.process(messages[j : j + 20], now_ms=now_ms, checkpoint=False)
        progress(f"processor, {series:,} series", min((j + 20) * 1000, n), n, started)
    elapsed = time.perf_counter() - started
    return {
        f"processor_us_per_event_{series}_series": round(elapsed / n * 1e6, 2),
        f"processor_rss_growth_mb_{series}_series": round(_rss_mb() - before, 1),
    }


def detecting(rows: int) -> dict[str, float]:
    rng = random.Random(1)
    values = [rng.gauss(0, 1) for _ in range(rows)]
    detector = default_detector()
    started = time.perf_counter()
    for i, x in enumerate(values):
        detector.score_one(x, i * 60_000)
        detector.learn_one(x, i * 60_000)
    elapsed = time.perf_counter() - started
    return {
        "detector_rows_per_s": round(rows / elapsed),
        "detector_state_bytes": len(orjson.dumps(detector.to_json())),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    args = parser.parse_args()
    now_ms = int(time.time() * 1000)
    sample = [orjson.dumps(e) for e in make_events(min(args.events, 100_000), 1_000)]
    result: dict[str, float] = {"events": args.events, **decoding(sample, now_ms)}
    for series in (1_000, 100_000):
        result.update(processing(args.events, series, now_ms))
    result.update(detecting(50_000))
    emit(result)


if __name__ == "__main__":
    main()
