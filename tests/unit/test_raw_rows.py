"""Raw rows as the store keeps them: sealed into Arrow columns while a batch waits for its
insert, and one Arrow stream of one record batch per insert."""

import orjson
import pyarrow as pa

from sinks.rows import RawRows, read_payload
from streams import processing
from streams.processing import Processor
from streams.windows import parse_windows
from tests.samples import simulated

SOURCE = "c/t"


def _results():
    """Simulated events of every kind through the processor, on four partitions (a
    batch's rows are sealed every ``processing.SEAL_ROWS``: 10,000, none here)."""
    events = simulated(2_000, seed=5, minutes=10)
    p = Processor(windows=parse_windows("1m"), grace_ms=0, source=SOURCE, raw_rows=RawRows(SOURCE))
    for partition in range(4):
        p.load(partition, None, -1)
    messages = [
        (k % 4, k // 4, b"\n".join(orjson.dumps(e) for e in events[i : i + 50]))
        for k, i in enumerate(range(0, len(events), 50))
    ]
    return [p.process(messages[i : i + 8], now_ms=events[-1]["ts"]) for i in range(0, 40, 8)]


def test_a_sealed_batch_counts_the_same_rows_and_stores_the_same_bytes():
    rows = RawRows(SOURCE)
    for result in _results():
        batches = list(result.raw.values())
        counts = [len(b) for b in batches]
        plain = rows.payload(batches)
        for b in batches[::2]:  # some sealed, some not: the writer takes both
            rows.seal(b)
        assert all(b.rows == [] and b.sealed for b in batches[::2])
        assert [len(b) for b in batches] == counts and sum(counts) > 100
        assert rows.payload(batches) == plain


def test_an_insert_is_one_record_batch_of_every_partition_in_order():
    rows = RawRows(SOURCE)
    result = _results()[0]
    batches = sorted(result.raw.values(), key=lambda b: b.partition)
    assert len(batches) == 4
    expected = [
        (b.partition, offset, index, series)
        for b in batches
        for _, series, offset, index, _ in b.rows
    ]
    for b in batches:
        rows.seal(b)
    payload = rows.payload(batches)
    assert len(list(pa.ipc.open_stream(payload))) == 1  # one block: one part, one token
    got = [(r["partition"], r["offset"], r["idx"], r["series"]) for r in read_payload(payload)]
    assert got == expected


def test_rows_sealed_in_parts_as_they_come_store_the_same_bytes(monkeypatch):
    """The processor seals a partition's rows every SEAL_ROWS as it goes: the payload and
    the counts are those of rows never sealed."""
    whole = _results()
    monkeypatch.setattr(processing, "SEAL_ROWS", 30)
    parts = _results()
    assert all(len(b.sealed) == 2 for r in parts for b in r.raw.values())  # one a message
    rows = RawRows(SOURCE)
    for a, b in zip(whole, parts, strict=True):
        assert {p: len(r) for p, r in a.raw.items()} == {p: len(r) for p, r in b.raw.items()}
        assert rows.payload(a.raw.values()) == rows.payload(b.raw.values())
