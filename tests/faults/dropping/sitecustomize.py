"""Faust's stream made to drop messages as it does in a rebalance, in a worker process
started with this folder on ``PYTHONPATH`` (Python imports ``sitecustomize`` at start)
and ``VIGIL_FAULT_DROP_FIRST=n``: the first ``n`` messages of each events partition are
taken from the stream and never handed over nor acknowledged. In a rebalance, Faust's
stream drops what it fetched while its flow was stopped, or with the generation before,
the same way (``faust/streams.py``, "Skipping message"), and its consumer does not fetch
them again (``tests/faults/test_dropped_messages.py``)."""

from __future__ import annotations

import os

DROP_FIRST = int(os.environ.get("VIGIL_FAULT_DROP_FIRST", "0"))

if DROP_FIRST:
    from collections import Counter
    from typing import Any

    import faust.streams

    _take_events = faust.streams.Stream.take_events
    _dropped: Counter[tuple[str, int]] = Counter()

    async def take_events(self: Any, max_: int, within: Any) -> Any:
        async for batch in _take_events(self, max_, within):
            kept = []
            for event in batch:
                message = event.message
                where = (message.topic, message.partition)
                if message.topic.endswith(".events.v1") and _dropped[where] < DROP_FIRST:
                    _dropped[where] += 1
                    message.incref()  # the buffer's own acknowledgement leaves it held
                    continue
                kept.append(event)
            if kept:
                yield kept

    faust.streams.Stream.take_events = take_events  # type: ignore[method-assign]
