"""A message read again (``streams.rereading``) is acknowledged to Faust's own consumer:
the group's commit goes past it, and not past one that is not acknowledged yet."""

from __future__ import annotations

import faust
from aiokafka.structs import ConsumerRecord
from faust.types import TP

from streams.rereading import acknowledge


def _record(offset: int) -> ConsumerRecord[bytes, bytes]:
    return ConsumerRecord("events", 0, offset, 1_700_000_000_000, 0, None, b"{}", None, 0, 2, ())


async def test_messages_read_again_let_faust_commit_past_them_once_all_are_acknowledged():
    app = faust.App("reread-test", broker="kafka://127.0.0.1:1", store="memory://")
    topic = app.topic("events", value_type=bytes, value_serializer="raw")
    app.topics.add(topic)
    await app.topics._update_indices()  # what subscribing does: acks count on the topic
    consumer, tp = app.consumer, TP("events", 0)
    consumer._committed_offset[tp] = 3  # the group committed up to offset 2
    stream_acked = [_record(o) for o in range(8, 12)]  # handed over by the stream
    for record in stream_acked:
        acknowledge(consumer, record)
    assert consumer._new_offset(tp) is None, "offsets 3-7 not acknowledged: no commit"
    for offset in range(3, 8):  # read again
        acknowledge(consumer, _record(offset))
    assert consumer._new_offset(tp) == 12
