import math

import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner

from producers.events import (
    KINDS,
    InvalidEvent,
    decode,
    partition_for,
    routing_key,
    series_key,
    validate,
)
from sinks.rows import RawRows
from tests.malformed import malformed
from vigil.simulation import Simulation

NOW = 1_700_000_000_000
BASE = {"kind": "metric", "ts": NOW, "service": "api", "name": "latency_ms", "value": 3.0}


def test_every_simulated_event_of_every_kind_is_valid():
    events = list(Simulation(seed=3, start_ms=NOW).advance(10 * 60_000))
    assert {e["kind"] for e in events} == KINDS
    for event in events:
        out = validate(event, now_ms=NOW + 3_600_000)
        assert out["series"] == series_key(out)


def test_normalized_event_has_every_field():
    out = validate(BASE, now_ms=NOW)
    assert out["execution_id"] is None and out["tags"] == {} and out["attrs"] == {}
    assert out["value"] == 3.0 and isinstance(out["value"], float)


@pytest.mark.parametrize(
    "change, reason",
    [
        ({"kind": "nope"}, "unknown kind 'nope'"),
        ({"ts": 1.5}, "field 'ts' must be integer epoch milliseconds"),
        ({"ts": True}, "field 'ts' must be integer epoch milliseconds"),
        ({"ts": 1_700_000_000}, "before 2000-01-01"),
        ({"ts": NOW + 25 * 3600 * 1000}, "more than 24 h in the future"),
        ({"value": math.inf}, "field 'value' must be finite"),
        ({"value": math.nan}, "field 'value' must be finite"),
        ({"value": True}, "field 'value' must be a number"),
        ({"service": ""}, "field 'service' must not be empty"),
        ({"name": "x" * 300}, "field 'name' is longer than 256"),
        ({"tags": {"a": 1}}, "tag 'a' must map"),
        ({"tags": {"a|b": "c"}}, "must not contain"),
        ({"attrs": [1]}, "field 'attrs' must be an object"),
        ({"level": "loud", "kind": "log", "message": "m"}, "field 'level' 'loud'"),
        ({"v": 2}, "schema version 2"),
        ({"extra": 1}, "unknown field 'extra'"),
    ],
)
def test_each_rule_rejects_with_a_reason_naming_the_field(change, reason):
    with pytest.raises(InvalidEvent) as err:
        validate({**BASE, **change}, now_ms=NOW)
    assert reason in err.value.reason


@pytest.mark.parametrize(
    "kind, missing",
    [
        ("step.end", "execution_id"),
        ("span", "trace_id"),
        ("log", "message"),
        ("execution.start", "execution_id"),
    ],
)
def test_kinds_require_their_ids(kind, missing):
    event = {
        "kind": kind,
        "ts": NOW,
        "service": "s",
        "name": "n",
        "execution_id": "e",
        "step": "x",
        "trace_id": "t",
        "span_id": "s1",
        "message": "m",
    }
    del event[missing]
    with pytest.raises(InvalidEvent, match=f"missing field '{missing}'"):
        validate(event, now_ms=NOW)


def test_series_key_orders_tags_and_includes_the_step():
    a = validate({**BASE, "tags": {"b": "2", "a": "1"}}, now_ms=NOW)
    assert a["series"] == "metric|api|latency_ms|a=1,b=2"
    step = {
        "kind": "step.end",
        "ts": NOW,
        "service": "p",
        "name": "etl",
        "execution_id": "e1",
        "step": "load",
    }
    assert series_key(step) == "step.end|p|etl|step=load"


def test_the_worker_keys_each_series_by_all_its_parts_whatever_came_before():
    """The worker's decoder remembers the key of each (kind, service, name, step, tags):
    an event that differs from one seen before in any part alone gets its own key."""
    error = {"kind": "error", "ts": NOW, "service": "p", "name": "etl", "tags": {"host": "h1"}}
    tagged = {**BASE, "tags": {"host": "h1", "az": "a"}}
    variants = [
        tagged,
        {**tagged, "tags": {"host": "h2", "az": "a"}},
        {**tagged, "tags": {"host": "h1", "zone": "a"}},
        {**tagged, "tags": {"host": "h1"}},
        {**tagged, "service": "web"},
        {**tagged, "name": "errors"},
        {**error, "step": "load"},
        {**error, "step": "save"},
        error,
        {**error, "kind": "log", "message": "m"},
        {**error, "kind": "metric", "value": 1.0},
    ]
    for event in variants * 2:  # the second time round, from what was kept
        _, series = decode(orjson.dumps(event), now_ms=NOW)
        assert series == series_key(validate(event, now_ms=NOW)), event


def test_all_events_of_a_workflow_share_a_routing_key_and_partition():
    events = [
        e
        for e in Simulation(seed=5, start_ms=NOW).advance(300_000)
        if e["name"] == "etl" and e["kind"] != "log"
    ]
    assert len({routing_key(e) for e in events}) == 1
    assert len({series_key(e) for e in events}) > 3


def test_partition_matches_kafkas_default_partitioner():
    partitions = list(range(4))
    for key in ("a", "metric|api|latency_ms", "workflow|ml|train", "ü"):
        assert partition_for(key, 4) == DefaultPartitioner()(key.encode(), partitions, partitions)


def test_every_malformed_fixture_line_is_rejected_by_the_processor_with_its_reason():
    from streams.processing import Processor
    from streams.windows import parse_windows

    bad = malformed(40)
    p = Processor(windows=parse_windows("1m"), grace_ms=0, source="c/t", raw_rows=RawRows("c/t"))
    p.load(0, None, -1)
    out = p.process([(0, i, line) for i, (line, _) in enumerate(bad)], now_ms=NOW)
    assert out.raw == {0: out.raw[0]} and out.raw[0].rows == []
    assert [r.line for r in out.rejected] == [line for line, _ in bad]
    for rejected, (_, reason) in zip(out.rejected, bad, strict=True):
        assert reason in rejected.reason


def test_an_envelope_line_holding_two_events_is_rejected_and_its_other_lines_kept():
    """An envelope is one event a line: a line of two JSON objects is refused with its
    reason (the decoder of a whole envelope reads it as two), the lines around it are
    kept, each with its own index."""
    from streams.processing import Processor
    from streams.windows import parse_windows

    good = [orjson.dumps({**BASE, "value": float(i)}) for i in range(3)]
    two = good[0] + good[1]
    p = Processor(windows=parse_windows("1m"), grace_ms=0, source="c/t", raw_rows=RawRows("c/t"))
    p.load(0, None, -1)
    out = p.process([(0, 7, b"\n".join([good[2], two, good[1]]))], now_ms=NOW)
    assert [(r.offset, r.index, r.line) for r in out.rejected] == [(7, 1, two)]
    assert "not valid JSON" in out.rejected[0].reason
    kept = [(ev.value, offset, index) for ev, _, offset, index, _ in out.raw[0].rows]
    assert kept == [(2.0, 7, 0), (1.0, 7, 2)]


def test_the_fast_path_agrees_with_the_full_rules_on_good_and_bad_events():
    from producers.events import _validate

    good = list(Simulation(seed=3, start_ms=NOW - 600_000).advance(600_000))
    bad = [orjson.loads(line) for line, _ in malformed(200) if _json(line)]
    odd = [
        {**BASE, "v": True},
        {**BASE, "value": 2**60},
        {**BASE, "value": 3},
        {**BASE, "tags": {"a": "1", "b": "2"}},
        {**BASE, "tags": {"b": "2", "a": "1"}},
        {**BASE, "level": "nope"},
        {**BASE, "kind": "log", "message": ""},
    ]
    assert len(good) > 1000 and len(bad) > 50
    fast_hits = 0
    for event in good + bad + odd:
        try:
            full = _validate(event, now_ms=NOW)
        except InvalidEvent as exc:
            with pytest.raises(InvalidEvent) as err:
                validate(event, now_ms=NOW)
            assert err.value.reason == exc.reason
            continue
        assert validate(event, now_ms=NOW) == full, event
        fast_hits += _fast_path_takes(event)
    assert fast_hits >= len(good), "every simulated event takes the fast path"


def _fast_path_takes(event) -> bool:
    import msgspec

    from producers.events import Event, _checked

    try:
        return _checked(msgspec.convert(event, Event), NOW) is not None
    except msgspec.ValidationError:
        return False


def _json(line):
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def test_the_workers_decoder_agrees_with_validate_on_every_line():
    from producers.events import Event, decode

    good = [orjson.dumps(e) for e in Simulation(seed=4, start_ms=NOW - 600_000).advance(600_000)]
    bad = [line for line, _ in malformed(300)]
    odd = [
        orjson.dumps(e)
        for e in (
            {**BASE, "v": True},
            {**BASE, "value": 2**60},
            {**BASE, "value": 0},
            {**BASE, "tags": {"b": "2", "a": "1"}},
            {**BASE, "tags": {"a|b": "1"}},
            {**BASE, "kind": "log", "message": ""},
            {**BASE, "kind": "step.end", "execution_id": "e", "step": ""},
            {**BASE, "ts": NOW + 25 * 3600 * 1000},
        )
    ]
    for line in good + bad + odd:
        try:
            expected = validate(orjson.loads(line), now_ms=NOW)
        except (InvalidEvent, orjson.JSONDecodeError) as exc:
            with pytest.raises(InvalidEvent) as err:
                decode(line, now_ms=NOW)
            if isinstance(exc, InvalidEvent):
                assert err.value.reason == exc.reason
            continue
        event, series = decode(line, now_ms=NOW)
        assert series == expected["series"]
        for field in Event.__struct_fields__:
            if field != "v":
                got, want = getattr(event, field), expected[field]
                if field in ("tags", "attrs"):  # absent and empty are the same here
                    got, want = got or None, want or None
                assert got == want, (field, line)
