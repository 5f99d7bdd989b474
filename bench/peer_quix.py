"""Quix Streams, a Python peer, on a topic of JSON events (one a message, keyed by
series), run by ``bench.pipeline --peers`` in a process of its own:

    python -m bench.peer_quix BOOTSTRAP TOPIC N raw      # its loop, doing nothing
    python -m bench.peer_quix BOOTSTRAP TOPIC N window   # 60 s tumbling count and mean

Each per key, in event time (the events' ``ts``), with Quix's defaults otherwise (RocksDB
state) and no changelog topics (Vigil's windows have no such topic either: a checkpoint
in its store). Consumes ``N`` events, stops, and prints one JSON line: the events, the
seconds from the first to the last, events/s, and the seconds until the first arrived.
Needs only ``quixstreams`` (``pip install -e '.[peers]'``), not Vigil.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from typing import Any


def run(bootstrap: str, topic_name: str, n: int, mode: str) -> dict[str, Any]:
    from quixstreams import Application
    from quixstreams.dataframe.windows import Count, Mean

    app = Application(
        broker_address=bootstrap,
        consumer_group=f"quix-{mode}-{time.time_ns()}",
        auto_offset_reset="earliest",
        state_dir=tempfile.mkdtemp(prefix="vigil-bench-quix-"),
        use_changelog_topics=False,
    )
    topic = app.topic(
        topic_name,
        value_deserializer="json",
        timestamp_extractor=lambda value, headers, ts, kind: value["ts"],
    )
    # The embedded broker reports no topic configurations; Quix asks for this one.
    topic.broker_config.extra_config["retention.ms"] = "-1"
    seen: dict[str, Any] = {"n": 0, "first": None, "last": None}

    def count(value: Any) -> None:
        seen["n"] += 1
        if seen["first"] is None:
            seen["first"] = time.perf_counter()
        if seen["n"] >= n:
            seen["last"] = time.perf_counter()
            app.stop()

    sdf = app.dataframe(topic).update(count)
    if mode == "window":
        windows = sdf.tumbling_window(duration_ms=60_000)
        sdf = windows.agg(count=Count(), mean=Mean("value")).final()
    started = time.perf_counter()
    app.run()
    seconds = seen["last"] - seen["first"]
    return {
        "mode": mode,
        "events": seen["n"],
        "seconds": seconds,
        "events_per_s": seen["n"] / seconds,
        "ready_seconds": seen["first"] - started,
    }


def main() -> None:
    if len(sys.argv) != 5 or sys.argv[4] not in ("raw", "window"):
        raise SystemExit("usage: python -m bench.peer_quix BOOTSTRAP TOPIC N raw|window")
    bootstrap, topic, n, mode = sys.argv[1:5]
    print(json.dumps(run(bootstrap, topic, int(n), mode)))


if __name__ == "__main__":
    main()
