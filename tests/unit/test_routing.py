"""Events on the wrong partition: forwarded to their series' own, once (streams.routing).

A small in-memory log per partition stands for the events topic: forwards are appended
to their target's log (with their header) as the worker would publish them, and every
partition is processed in offset order, as Kafka delivers it.

A forwarded event reaches its partition after that partition's own events of the same
batch: the events here span 10 minutes in one burst, and the grace (1 h) covers that
reordering, as 30 s covers the second a hop takes for live traffic.
"""

from pathlib import Path

import orjson
import pytest

from producers.events import partition_for, routing_key, series_key
from sinks.rows import RawRows
from streams.processing import Processor
from streams.routing import (
    HEADER,
    BadHeader,
    Forwards,
    Homes,
    Received,
    find_header,
    read_header,
)
from streams.windows import parse_windows
from tests.samples import raw_table_rows, simulated

NOW = 1_700_000_000_000
PARTITIONS = 4
GRACE_MS = 3600_000


class Log:
    """The events topic: per partition, messages ``(value, hop header or None)``."""

    def __init__(self) -> None:
        self.parts: dict[int, list[tuple[bytes, bytes | None]]] = {p: [] for p in range(4)}
        self.read: dict[int, int] = dict.fromkeys(range(4), 0)

    def append(self, partition: int, value: bytes, hop: bytes | None = None) -> None:
        self.parts[partition].append((value, hop))

    def unread(self) -> list[tuple]:
        out = []
        for p, messages in self.parts.items():
            for offset in range(self.read[p], len(messages)):
                out.append((p, offset, *messages[offset]))
            self.read[p] = len(messages)
        return out


def processor(partitions=PARTITIONS):
    p = Processor(
        windows=parse_windows("1m"),
        grace_ms=GRACE_MS,
        source="c/t",
        partitions=partitions,
        raw_rows=RawRows("c/t"),
    )
    for partition in range(4):
        p.load(partition, None, -1)
    return p


def drain(p: Processor, log: Log, **kw) -> list:
    """Process until nothing is left to read (forwards included); every result."""
    results = []
    while batch := log.unread():
        out = p.process(batch, now_ms=NOW, **kw)
        for forward in out.forwards:
            log.append(forward.target, forward.value, forward.header)
        results.append(out)
    return results


def metric(i, name="latency_ms", service="api"):
    return {"kind": "metric", "ts": NOW + i * 1_000, "service": service, "name": name,
            "value": float(i % 17), "id": i}  # fmt: skip


def line(event):
    return orjson.dumps({k: v for k, v in event.items() if k != "id"})


def home(event):
    return partition_for(routing_key(event), PARTITIONS)


def windows(results):
    return sorted(
        (r.series, r.start_ms, r.count, r.sum, r.min, r.max) for out in results for r in out.closed
    )


def rows(results):
    return raw_table_rows(*results)


def stored_events(results):
    """The (name, ts ms) of every raw row, in order (rows hold the table's times)."""
    return sorted((r["name"], round(r["ts"].timestamp() * 1000)) for r in rows(results))


EVENTS = [metric(i, name=f"m{i % 5}") for i in range(600)]
SENT = sorted((e["name"], e["ts"]) for e in EVENTS)


def keyed_log():
    log = Log()
    for event in EVENTS:
        log.append(home(event), line(event))
    return log


def spread_log(choose):
    """Envelopes of 10 events each, on the partition ``choose(envelope number)``."""
    log = Log()
    for n in range(0, len(EVENTS), 10):
        log.append(choose(n // 10), b"\n".join(line(e) for e in EVENTS[n : n + 10]))
    return log


def close_all(p, results):
    results.append(p.tick(now_ms=NOW + 10 * 3600_000))  # every window closes
    return results


@pytest.mark.parametrize(
    "choose",
    [lambda n: n % 4, lambda n: (n * 7) % 4, lambda n: 3],
    ids=["round-robin", "shuffled", "one-partition"],
)
def test_windows_and_raw_rows_are_the_same_however_events_were_partitioned(choose):
    keyed = close_all(p := processor(), drain(p, keyed_log()))
    spread = close_all(q := processor(), drain(q, spread_log(choose)))
    assert windows(spread) == windows(keyed) and len(windows(keyed)) >= 50
    for results in (keyed, spread):
        # Every event once, on its series' partition, nothing else.
        assert stored_events(results) == SENT
        assert all(r["partition"] == home(r) for r in rows(results))
    assert sum(out.counts["rerouted"] for out in keyed) == 0
    rerouted = sum(out.counts["rerouted"] for out in spread)
    assert rerouted == sum(home(e) != choose(i // 10) for i, e in enumerate(EVENTS)) > 0


def test_rerouted_events_are_counted_per_partition_they_arrived_on():
    out = drain(processor(), spread_log(lambda n: 3))
    assert out[0].rerouted == {3: sum(home(e) != 3 for e in EVENTS)}
    assert {f.target for f in out[0].forwards} == {home(e) for e in EVENTS} - {3}
    assert all(read_header(f.header, f.count)[0] == 3 for f in out[0].forwards)


def test_without_a_partition_count_every_event_stays_where_it_arrived():
    p = Processor(
        windows=parse_windows("1m"), grace_ms=GRACE_MS, source="c/t", raw_rows=RawRows("c/t")
    )
    p.load(3, None, -1)
    out = p.process([(3, 0, line(e)) for e in EVENTS], now_ms=NOW)
    assert out.forwards == [] and len(out.raw[3].rows) == len(EVENTS)


def test_forwards_sent_again_by_a_replay_are_applied_once():
    """The origin crashed after forwarding and before its checkpoint: its replay forwards
    the same lines again, and their partition skips them."""
    log = spread_log(lambda n: 3)
    p = processor()
    first = drain(p, log, checkpoint=False)
    # A new worker takes partition 3 over from its state before any of it (the crash
    # came after its raw rows were stored), and the other partitions from where they are.
    again = processor()
    for q in range(3):
        again.load(q, p.states[q].snapshot(), p.stored[q])
    again.load(3, None, p.stored[3])
    log.read[3] = 0
    replay = drain(again, log)
    assert sum(out.counts["rerouted_repeats"] for out in replay) == first[0].counts["rerouted"]
    done = close_all(again, first[1:] + replay)
    assert stored_events(first + replay) == SENT
    keyed = processor()
    assert windows(done) == windows(close_all(keyed, drain(keyed, keyed_log())))


def test_a_forwarded_message_replayed_on_its_own_partition_is_applied_again_from_the_state():
    """The receiving partition crashed before its checkpoint: it replays the forwarded
    messages from its older state, and applies them (its windows need them)."""
    log = spread_log(lambda n: 3)
    p = processor()
    drain(p, log)
    target = next(q for q in range(3) if log.parts[q])
    fresh = processor()
    fresh.load(target, None, p.stored[target])  # raw rows stored, the state lost
    log.read[target] = 0
    again = fresh.process(log.unread(), now_ms=NOW)
    assert again.counts["valid"] == sum(home(e) == target for e in EVENTS)
    assert again.counts["rerouted_repeats"] == 0 and target not in again.raw


def test_received_positions_survive_a_checkpoint():
    p = processor()
    drain(p, spread_log(lambda n: 3))
    target = next(q for q in range(3) if p.states[q].received.last)
    q = processor()
    q.load(target, p.states[target].snapshot(), p.stored[target])
    assert q.states[target].received.last == p.states[target].received.last


def test_a_forwarded_line_is_never_forwarded_again():
    """With another partition count (the topic grew), it stays where it landed."""
    p = processor(partitions=3)
    event = next(e for e in EVENTS if partition_for(routing_key(e), 3) != 1)
    header = orjson.dumps([0, 5, 0])
    out = p.process([(1, 0, line(event), header)], now_ms=NOW)
    assert out.forwards == [] and len(out.raw[1].rows) == 1


def test_workflow_events_go_to_the_partition_of_their_workflow_whatever_the_step():
    p = processor()
    steps = [
        {"kind": "step.end", "ts": NOW, "service": "etl", "name": "nightly",
         "execution_id": "x1", "step": s, "value": 5.0, "ok": True}
        for s in ("extract", "load", "publish")
    ]  # fmt: skip
    wrong = (partition_for("workflow|etl|nightly", PARTITIONS) + 1) % PARTITIONS
    out = p.process([(wrong, 0, b"\n".join(orjson.dumps(s) for s in steps))], now_ms=NOW)
    assert [(f.target, f.count) for f in out.forwards] == [
        (partition_for("workflow|etl|nightly", PARTITIONS), 3)
    ]


def test_a_header_that_does_not_fit_its_envelope_sends_the_lines_to_the_dead_letter_topic():
    p = processor()
    out = p.process([(1, 0, line(EVENTS[0]) + b"\n" + line(EVENTS[1]), b"[0, 1, 0]")], now_ms=NOW)
    assert [r.index for r in out.rejected] == [0, 1] and not out.raw[1].rows
    assert "vigil-hop header does not give a partition and a position" in out.rejected[0].reason
    assert p.states[1].offset == 0  # and the partition goes on


def test_the_header_is_found_among_kafka_headers_in_either_shape():
    assert find_header([("other", b"x"), (HEADER, b"[1]")]) == b"[1]"
    assert find_header({HEADER: b"[2]"}) == b"[2]" and find_header(None) is None
    assert Received.restore(Received({2: (4, 1)}).snapshot()).last == {2: (4, 1)}


def test_the_readme_gives_the_routing_key_of_its_example_event():
    readme = Path(__file__).parents[2].joinpath("README.md").read_text()
    section = readme[readme.index("## Event schema v1") :]
    example = orjson.loads(section[section.index("{") : section.index("}}") + 2])
    said = section[section.index("For example `") + 13 :].split("`")[0]
    assert said == routing_key(example) == "metric|api|latency_ms|route=/checkout"


def test_a_service_publishing_off_partition_is_named_once_in_the_log(caplog):
    p = processor()
    log = spread_log(lambda n: 3)
    with caplog.at_level("WARNING", logger="streams.processing"):
        drain(p, log)
        for value, _ in list(log.parts[3]):  # the same service again, at later offsets
            log.append(3, value)
        assert drain(p, log)[0].counts["rerouted"] > 0
    told = [r.getMessage() for r in caplog.records if "off their series' partition" in r.message]
    assert len(told) == 1 and "service 'api'" in told[0] and "arrived on partition 3" in told[0]


def test_every_event_goes_to_the_partition_of_its_routing_key():
    events = simulated(3000, seed=5, minutes=10)
    assert {e["kind"] for e in events} >= {"step.end", "metric", "span", "log"}
    for partitions in (4, 7):
        homes = Homes(partitions)
        for e in events:
            want = partition_for(routing_key(e), partitions)
            assert homes.of(series_key(e), e["kind"], e["service"], e["name"]) == want, e
    step = {"kind": "step.end", "service": "etl", "name": "nightly", "step": "load"}
    assert routing_key(step) == "workflow|etl|nightly"


@pytest.mark.parametrize(
    ("value", "lines", "says"),
    [
        (b"{oops", 1, "is not JSON"),
        (b"[0, 5, -1]", 1, "does not give a partition and a position"),
        (b"[0, 5, 1.5]", 1, "does not give"),
        (b'{"p": 0}', 1, "does not give"),
        (b"[0, 5, 0, 6]", 1, "does not give"),
    ],
)
def test_a_header_that_cannot_be_read_says_why(value, lines, says):
    with pytest.raises(BadHeader, match=says):
        read_header(value, lines)


def test_forwards_close_an_envelope_at_its_event_or_byte_limit():
    by_count = Forwards(max_events=2, max_bytes=1 << 20)
    for i in range(5):
        by_count.add(origin=1, target=2, offset=i, index=0, line=b"x")
    assert [f.count for f in by_count.envelopes()] == [2, 2, 1]
    # Two 4-byte lines and the newline between are 9 bytes: exactly the limit, kept.
    by_size = Forwards(max_events=100, max_bytes=9)
    for i in range(5):
        by_size.add(origin=1, target=2, offset=i, index=0, line=b"abcd")
    sent = by_size.envelopes()
    assert [f.value for f in sent] == [b"abcd\nabcd"] * 2 + [b"abcd"]
    assert [read_header(f.header, f.count)[1] for f in sent] == [
        [(0, 0), (1, 0)], [(2, 0), (3, 0)], [(4, 0)]
    ]  # fmt: skip
    assert by_size.counts == {1: 5}
