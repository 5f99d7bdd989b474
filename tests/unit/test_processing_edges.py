"""The processor's less travelled paths, found by mutation testing (bench/mutation.py):
each test here kills mutants that the rest of the suite let live."""

import orjson
import pytest

from sinks.rows import RawRows
from streams import processing
from streams.processing import Processor, parts
from streams.windows import parse_windows
from tests.samples import raw_table_rows, ruleset

NOW = 1_700_000_000_000
MIN = 60_000
RULE = '[[rule]]\nname = "{}"\nmatch = {{ name = "temp" }}\n'
HOT = RULE.format("hot") + 'signal = "value"\nop = ">"\nthreshold = 90\n'
GONE = RULE.format("gone") + 'signal = "absent"\nwindow = "1m"\nfor = "1m"\n'


def _metric(ts, value=1.0, name="temp", **extra):
    return orjson.dumps(
        {"kind": "metric", "ts": ts, "service": "dc", "name": name, "value": value, **extra}
    )


def _processor(windows="1m", rules=None, partitions=(0,)):
    p = Processor(
        windows=parse_windows(windows),
        grace_ms=0,
        source="c9/t",
        rules=ruleset(rules or ""),
        raw_rows=RawRows("c9/t"),
    )
    for partition in partitions:
        p.load(partition, None, -1)
    return p


@pytest.mark.parametrize(
    ("sizes", "limit", "runs"),
    [
        ([1, 1, 1, 1], 2, [[1, 1], [1, 1]]),
        ([3, 1], 2, [[3], [1]]),  # an envelope larger than the limit is a run alone
        ([1, 2, 1], 3, [[1, 2], [1]]),  # exactly the limit stays together
        ([], 5, []),
    ],
)
def test_a_batch_is_cut_into_runs_of_at_most_so_many_events(sizes, limit, runs):
    assert parts(sizes, limit, lambda n: n - 1) == runs


def test_the_source_names_every_result():
    p = _processor()
    assert p.process([(0, 0, _metric(NOW))], now_ms=NOW).source == "c9/t"
    assert p.tick(now_ms=NOW).source == p.checkpoint().source == "c9/t"


def test_a_rejected_line_says_where_it_was_and_why():
    p = _processor(partitions=(3,))
    out = p.process([(3, 41, _metric(NOW) + b"\n" + b"{oops")], now_ms=NOW)
    [bad] = out.rejected
    assert (bad.partition, bad.offset, bad.index, bad.line) == (3, 41, 1, b"{oops")
    assert bad.reason and out.counts["rejected"] == 1 and out.counts["messages"] == 1


def test_an_event_of_exactly_the_size_limit_is_kept_and_one_byte_more_is_not():
    base = _metric(NOW, attrs={"pad": ""})
    pad = processing.MAX_EVENT_BYTES - len(base)
    exact = _metric(NOW, attrs={"pad": "x" * pad})
    over = _metric(NOW, attrs={"pad": "x" * (pad + 1)})
    assert len(exact) == processing.MAX_EVENT_BYTES
    out = _processor().process([(0, 0, exact + b"\n" + over)], now_ms=NOW)
    assert out.counts["valid"] == 1 and [r.index for r in out.rejected] == [1]
    assert "larger than" in out.rejected[0].reason


def test_a_decoder_failure_nobody_foresaw_is_a_dead_letter_counted_once_per_line(monkeypatch):
    def broken(line, now_ms):
        raise RuntimeError("decoder bug")

    monkeypatch.setattr(processing, "decode", broken)
    out = _processor(partitions=(2,)).process([(2, 7, b'{"a":1}\n{"b":2}')], now_ms=NOW)
    assert out.counts["decode_errors"] == 2
    assert [(r.partition, r.offset, r.index, r.line) for r in out.rejected] == [
        (2, 7, 0, b'{"a":1}'),
        (2, 7, 1, b'{"b":2}'),
    ]
    assert out.rejected[0].reason == "could not be read (RuntimeError: decoder bug)"


def test_late_events_are_counted_each():
    p = _processor()
    lines = [_metric(NOW + 5 * MIN), _metric(NOW), _metric(NOW + 1)]
    out = p.process([(0, 0, b"\n".join(lines))], now_ms=NOW)
    assert out.counts["late"] == 2 and out.counts["valid"] == 3


def test_a_rule_on_raw_samples_sees_every_on_time_sample_with_its_fields():
    p = _processor(rules=HOT)
    lines = [
        _metric(NOW + 5 * MIN, 95.0),  # fires
        _metric(NOW, 99.0),  # late: not a sample for the rule
        orjson.dumps({"kind": "metric", "ts": NOW + 5 * MIN + 1, "service": "dc", "name": "temp"}),
        _metric(NOW + 5 * MIN + 2, 50.0),  # resolves
    ]
    out = p.process([(0, 0, b"\n".join(lines))], now_ms=NOW + 6 * MIN)
    assert [(a.state, a.value, a.series, a.at) for a in out.alerts] == [
        ("firing", 95.0, "metric|dc|temp", NOW + 5 * MIN),
        ("resolved", 50.0, "metric|dc|temp", NOW + 5 * MIN + 2),
    ]
    assert {a.labels["service"] for a in out.alerts} == {"dc"}
    assert all(a.evaluated_at == NOW + 6 * MIN for a in out.alerts)


def test_closing_passes_the_time_and_the_watermark_to_the_rules():
    """An absence rule fires once the watermark passes a silent minute (it follows the
    wall clock on an idle partition): a tick that closes no window still makes the
    transition, and checkpoints that partition."""
    p = _processor(rules=GONE)
    p.process([(0, 0, _metric(NOW))], now_ms=NOW, checkpoint=False)
    assert len(p.tick(now_ms=NOW + 90_000).closed) == 1
    out = p.tick(now_ms=NOW + 3 * MIN)
    assert out.closed == []
    assert [(a.rule, a.state, a.evaluated_at) for a in out.alerts] == [
        ("gone", "firing", NOW + 3 * MIN)
    ]
    assert out.touched == {0} and set(out.states) == {0}


def test_changes_between_checkpoints_accumulate_until_the_next_one():
    p = _processor(partitions=(0, 1))
    p.process([(0, 0, _metric(NOW))], now_ms=NOW, checkpoint=False)
    p.process([(1, 0, _metric(NOW + 3 * MIN))], now_ms=NOW, checkpoint=False)
    assert p.dirty == {0, 1}
    out = p.tick(now_ms=NOW)  # checkpoints by default
    assert out.checkpoint and set(out.states) == {0, 1} and p.dirty == set()


def test_a_dropped_partition_is_forgotten_entirely():
    p = _processor(partitions=(0, 1))
    p.process([(1, 4, _metric(NOW))], now_ms=NOW, checkpoint=False)
    p.drop(1)
    assert p.owns(0) and not p.owns(1)
    assert 1 not in p.states and 1 not in p.stored and 1 not in p.dirty
    p.drop(1)  # and again: nothing to forget


def test_a_restored_partition_keeps_its_executions_received_positions_and_alert_numbers():
    steps = b"\n".join(
        orjson.dumps({"kind": k, "ts": NOW + i, "service": "etl", "name": "n",
                      "execution_id": "x1", **extra})
        for i, (k, extra) in enumerate([("execution.start", {}),
                                        ("execution.end", {"ok": True, "value": 5.0})])
    )  # fmt: skip
    p = _processor(rules=HOT)
    out = p.process([(0, 0, steps + b"\n" + _metric(NOW, 95.0))], now_ms=NOW)
    assert [a.seq for a in out.alerts] == [1]
    snapshot = p.states[0].snapshot()
    q = _processor(rules=HOT, partitions=())
    q.load(0, snapshot, 0)
    assert q.states[0].executions.snapshot() == p.states[0].executions.snapshot()
    assert q.states[0].offset == 0 and q.stored[0] == 0
    again = q.process([(0, 1, _metric(NOW + 1, 20.0))], now_ms=NOW)
    assert [(a.state, a.seq) for a in again.alerts] == [("resolved", 2)]
    # Windows saved under another window list cannot be kept: numbering goes on anyway.
    r = _processor(windows="5m", rules=HOT, partitions=())
    r.load(0, snapshot, 0)
    assert r.states[0].offset == -1 and r.states[0].evaluation.seq == 1


def test_a_raw_row_names_its_series_as_json_even_with_quotes():
    line = orjson.dumps(
        {"kind": "metric", "ts": NOW, "service": "dc", "name": "t", "value": 1.0,
         "tags": {"q": 'a"b'}}
    )  # fmt: skip
    out = _processor().process([(0, 0, line)], now_ms=NOW)
    [row] = raw_table_rows(out)
    assert row["series"] == 'metric|dc|t|q=a"b' and row["partition"] == 0
