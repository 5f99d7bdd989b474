import orjson

from sinks.rows import RawRows
from streams.processing import Processor
from streams.windows import parse_windows
from tests.samples import raw_table_rows

NOW = 1_700_000_000_000


def _env(*events):
    return b"\n".join(e if isinstance(e, bytes) else orjson.dumps(e) for e in events)


def _metric(ts, value=1.0, name="m"):
    return {"kind": "metric", "ts": ts, "service": "s", "name": name, "value": value}


def _processor():
    p = Processor(windows=parse_windows("1m"), grace_ms=0, source="c1/t", raw_rows=RawRows("c1/t"))
    p.load(0, None, -1)
    return p


def test_valid_events_become_raw_rows_with_their_kafka_position():
    p = _processor()
    out = p.process([(0, 5, _env(_metric(NOW), _metric(NOW + 1)))], now_ms=NOW)
    rows = raw_table_rows(out)
    assert [(r["partition"], r["offset"], r["idx"]) for r in rows] == [(0, 5, 0), (0, 5, 1)]
    assert rows[0]["ts"].timestamp() == NOW / 1000 and rows[0]["source"] == "c1/t"
    assert (out.raw[0].first, out.raw[0].last) == (5, 5)


def test_bad_lines_are_rejected_with_position_and_reason_and_good_ones_kept():
    p = _processor()
    out = p.process([(0, 1, _env(_metric(NOW), b"{oops", {"kind": "metric"}))], now_ms=NOW)
    assert len(out.raw[0].rows) == 1
    assert [(r.index, r.line) for r in out.rejected] == [(1, b"{oops"), (2, b'{"kind":"metric"}')]
    assert "not valid JSON" in out.rejected[0].reason
    assert out.rejected[1].reason == "missing field 'ts'"


def test_good_lines_among_bad_ones_keep_their_own_line_index_and_count_once():
    """An envelope whose every line is valid is read in one pass, one with a bad line
    line by line: either way each good line is a raw row at its own index, each bad one
    is rejected at its own, and the windows hold every good event once."""
    good = [*(_metric(NOW + i, float(i)) for i in range(6)), _metric(NOW + 120_000, 9.0)]
    bad = {1: b"{oops", 3: orjson.dumps({"kind": "metric"}), 4: b"x" * (64 * 1024 + 1)}
    lines = [*good]
    for index in sorted(bad):
        lines.insert(index, bad[index])
    mixed, clean = _processor(), _processor()
    out = mixed.process([(0, 7, _env(*lines))], now_ms=NOW + 60_000)
    alone = clean.process([(0, 7, _env(*good))], now_ms=NOW + 60_000)
    kept = {r["idx"]: r["value"] for r in raw_table_rows(out)}
    assert kept == {i: line["value"] for i, line in enumerate(lines) if isinstance(line, dict)}
    assert [r.index for r in out.rejected] == sorted(bad)
    assert set(kept) | {r.index for r in out.rejected} == set(range(len(lines)))
    assert [r["idx"] for r in raw_table_rows(alone)] == list(range(len(good)))
    assert [w.line() for w in out.closed] == [w.line() for w in alone.closed]
    assert [w.count for w in out.closed] == [len(good) - 1]  # the last closes the first
    assert out.counts["valid"] == alone.counts["valid"] == len(good)


def test_a_replayed_batch_changes_nothing():
    p = _processor()
    batch = [(0, i, _env(_metric(NOW + i * 30_000))) for i in range(10)]
    first = p.process(batch, now_ms=NOW)
    again = p.process(batch, now_ms=NOW)
    assert sum(len(r.rows) for r in again.raw.values()) == 0
    assert again.closed == [] and again.rejected == []
    assert again.counts["replayed_messages"] == 10
    assert sum(w.count for w in first.closed) == 8  # the last window is still open


def test_restored_state_skips_what_it_already_applied_but_raw_follows_the_store():
    p = _processor()
    p.process([(0, 0, _env(_metric(NOW))), (0, 1, _env(_metric(NOW + 1)))], now_ms=NOW)
    snapshot = p.states[0].snapshot()
    q = Processor(windows=parse_windows("1m"), grace_ms=0, source="c1/t", raw_rows=RawRows("c1/t"))
    q.load(0, snapshot, stored_offset=0)  # the store holds offset 0 only
    out = q.process([(0, 0, _env(_metric(NOW))), (0, 1, _env(_metric(NOW + 1)))], now_ms=NOW)
    assert (out.raw[0].first, len(out.raw[0].rows)) == (1, 1)
    assert out.counts["valid"] == 0  # the window state had both already


def test_late_events_are_flagged_in_raw_rows():
    p = _processor()
    out = p.process([(0, 0, _env(_metric(NOW + 120_000), _metric(NOW)))], now_ms=NOW)
    rows = raw_table_rows(out)
    assert [r.get("late", False) for r in rows] == [False, True]  # the column defaults to false
    assert out.counts["late"] == 1


def test_a_checkpoint_covers_every_partition_changed_since_the_last_one():
    p = Processor(windows=parse_windows("1m"), grace_ms=0, source="c1/t", raw_rows=RawRows("c1/t"))
    for partition in (0, 1):
        p.load(partition, None, -1)
    first = p.process([(0, 0, _env(_metric(NOW)))], now_ms=NOW, checkpoint=False)
    assert not first.checkpoint and first.states == {}
    second = p.process([(1, 0, _env(_metric(NOW)))], now_ms=NOW, checkpoint=True)
    assert second.checkpoint and set(second.states) == {0, 1}
    assert second.states[0][0] == 0 and p.dirty == set()
    idle = p.tick(now_ms=NOW, checkpoint=True)  # nothing changed: an empty checkpoint
    assert idle.checkpoint and idle.states == {}


def test_a_checkpoint_on_demand_resumes_the_state_where_processing_stopped():
    """What a revoke stores: a partition given back resumes at the last processed offset,
    not at the last periodic checkpoint (whose later messages would be missing)."""
    p = _processor()
    periodic = p.process([(0, 0, _env(_metric(NOW)))], now_ms=NOW, checkpoint=True)
    p.process([(0, i, _env(_metric(NOW + i))) for i in (1, 2)], now_ms=NOW, checkpoint=False)
    on_revoke = p.checkpoint()
    assert periodic.states[0][0] == 0 and on_revoke.states[0][0] == 2
    assert on_revoke.checkpoint and on_revoke.raw == {} and p.dirty == set()
    q = Processor(windows=parse_windows("1m"), grace_ms=0, source="c1/t", raw_rows=RawRows("c1/t"))
    q.load(0, on_revoke.states[0][1], stored_offset=2)
    out = q.process([(0, 3, _env(_metric(NOW + 3)))], now_ms=NOW)
    assert out.counts["state_gaps"] == 0 and out.counts["valid"] == 1
    assert q.checkpoint().states == {}  # and nothing since: an empty one
    stale = Processor(
        windows=parse_windows("1m"), grace_ms=0, source="c1/t", raw_rows=RawRows("c1/t")
    )
    stale.load(0, periodic.states[0][1], stored_offset=2)
    assert stale.process([(0, 3, _env(_metric(NOW + 3)))], now_ms=NOW).counts["state_gaps"] == 1


def test_a_partition_with_a_backlog_is_slow_not_idle():
    """Event time follows the wall clock only where nothing waits in Kafka."""
    p = Processor(
        windows=parse_windows("1m"),
        grace_ms=0,
        source="c1/t",
        raw_rows=RawRows("c1/t"),
        idle_ms=5_000,
    )
    for partition in (0, 1):
        p.load(partition, None, -1)
    for partition in (0, 1):
        p.process([(partition, 0, _env(_metric(NOW)))], now_ms=NOW)
    later = NOW + 10 * 60_000
    p.tick(now_ms=later, backlogged={0, 1})  # starts the idle clock of both
    out = p.tick(now_ms=later + 6_000, backlogged={0})
    assert {w.partition for w in out.closed} == {1}  # 0 waits for its backlog
    again = p.tick(now_ms=later + 12_000)  # the backlog was read, nothing came: idle
    assert {w.partition for w in again.closed} == {0}


def test_every_hostile_line_is_rejected_with_a_reason_and_nothing_raises():
    """Non-UTF-8 bytes inside a string and nesting past the decoders' depth used to
    raise out of the decoder (UnicodeDecodeError, RecursionError)."""
    import collections

    from tests.hostile import CATEGORIES, NOW_MS, hostile

    lines = list(hostile(1200))
    p = _processor()
    out = p.process([(0, i, line) for i, (line, _) in enumerate(lines)], now_ms=NOW_MS)
    assert out.counts["valid"] == 0 and out.counts.get("decode_errors", 0) == 0
    assert [r.offset for r in out.rejected] == list(range(len(lines)))
    assert all(r.line == lines[r.offset][0] for r in out.rejected)
    reasons = collections.defaultdict(set)
    for r in out.rejected:
        reasons[lines[r.offset][1]].add(r.reason.split(":")[0].split(" ")[0])
    assert set(reasons) == set(CATEGORIES)
    assert any("UTF-8" in r.reason for r in out.rejected)
    assert any("nested deeper" in r.reason for r in out.rejected)


def test_messages_skipped_under_the_window_state_are_counted_as_state_gaps():
    """A message that does not follow the one last applied means the ones between never
    reached the windows (a commit past the state): counted and logged, not hidden."""
    p = _processor()
    p.process([(0, 0, _env(_metric(NOW)))], now_ms=NOW)
    out = p.process([(0, 1, _env(_metric(NOW + 1)))], now_ms=NOW)
    assert out.counts["state_gaps"] == 0
    out = p.process([(0, 4, _env(_metric(NOW + 2)))], now_ms=NOW)
    assert out.counts["state_gaps"] == 1 and out.counts["valid"] == 1


def test_detector_scores_come_with_the_windows_they_score_and_again_on_replay():
    from streams.rules import parse

    rules = parse(
        '[[detector]]\nname = "odd"\nmatch = { kind = "metric" }\nsignal = "mean"\nwindow = "1m"\n',
        "r.toml",
        windows=("1m",),
    )

    def run(snapshot=None):
        p = Processor(
            windows=parse_windows("1m"),
            grace_ms=0,
            source="c1/t",
            raw_rows=RawRows("c1/t"),
            rules=rules,
        )
        p.load(0, snapshot, -1)
        return p

    batch = [(0, i, _env(_metric(NOW + i * 60_000, value=float(i % 3)))) for i in range(150)]
    p = run()
    first = p.process(batch[:100], now_ms=NOW)
    snapshot = p.states[0].snapshot()
    rest = p.process(batch[100:], now_ms=NOW)
    scored = [(s.series, s.detector, s.label, s.end_ms) for s in first.scores + rest.scores]
    assert scored == [(w.series, "odd", "1m", w.end_ms) for w in first.closed + rest.closed]
    assert all(s.score == 0.0 for s in first.scores)  # the detector's grace: 100 windows
    assert any(s.score > 0 for s in rest.scores)
    replayed = run(snapshot).process(batch[100:], now_ms=NOW)  # after a crash: same scores
    assert replayed.scores == rest.scores


def test_a_checkpoint_and_a_takeover_run_no_cyclic_collection():
    """The state's JSON form is as many dicts and lists as the state has objects; at
    100,000 series the collector's passes over them cost more than making them."""
    import gc

    p = _processor()
    series = [_metric(NOW + i, name=f"m{i}") for i in range(30_000)]
    p.process([(0, 0, _env(*series))], now_ms=NOW, checkpoint=False)
    collections: list[int] = []

    def count(phase, info):
        if phase == "start":
            collections.append(info["generation"])

    thresholds = gc.get_threshold()
    gc.set_threshold(1_000)  # the freelists leave about 100 young objects either way
    gc.callbacks.append(count)
    try:
        orjson.loads(p.states[0].snapshot())  # a control: unpaused, this much collects
        control = len(collections)
        q = Processor(windows=parse_windows("1m"), grace_ms=0, source="c1/t")
        gc.collect()
        collections.clear()
        snapshot = p.states[0].snapshot()
        q.load(0, snapshot, stored_offset=-1)
        paused = len(collections)
    finally:
        gc.callbacks.remove(count)
        gc.set_threshold(*thresholds)
    # One collection at most: the one that sees the restored state once the collector
    # resumes (its count of new objects went on while it was paused).
    assert control > 100 and paused <= 1
    assert gc.isenabled()
    assert q.states[0].snapshot() == snapshot


def test_a_checkpoint_written_in_chunks_is_the_json_of_the_whole_state(monkeypatch):
    """The checkpoint encodes its long lists a few rows at a time (streams.chunked); the
    bytes must be those of the state's plain JSON form: every open pane and window (shared
    ones once), every alert slot with its detector, in the same order."""
    from streams import chunked
    from streams.rules import parse

    rules = parse(
        '[[detector]]\nname = "odd"\nmatch = { kind = "metric" }\nsignal = "mean"\nwindow = "1m"\n',
        "r.toml",
        windows=("1m", "5m", "5m/1m"),
    )
    p = Processor(windows=parse_windows("1m,5m,5m/1m"), grace_ms=0, source="c1/t", rules=rules)
    p.load(0, None, -1)
    for minute in range(8):  # series with one pane in a window (shared) and with several
        at = NOW + minute * 60_000
        batch = [_metric(at + i, value=float(i), name=f"m{i}") for i in range(40)]
        p.process([(0, minute, _env(*batch))], now_ms=NOW, checkpoint=False)
    state = p.states[0]
    plain = orjson.dumps(state.document())  # its lists made whole
    data = orjson.loads(plain)
    assert data["windows"]["shared"] and len(data["windows"]["partials"]) > 100
    assert len(data["alerts"]["slots"]) == 40 and data["alerts"]["slots"][0][-1] is not None
    monkeypatch.setattr(chunked, "CHUNK", 7)  # many chunks, one cut short at each list's end
    assert state.snapshot() == plain


def test_a_checkpoint_is_the_state_compressed_and_a_plain_one_stored_before_still_loads():
    """What the store keeps of a partition is its state's JSON compressed as it is made;
    a worker reads it back, and reads a checkpoint stored before they were compressed
    (plain JSON), to the same state either way."""
    p = _processor()
    batch = [_metric(NOW + i * 1_000, value=float(i % 17), name=f"m{i % 300}") for i in range(3000)]
    p.process([(0, 0, _env(*batch))], now_ms=NOW, checkpoint=False)
    plain = p.states[0].snapshot()
    packed = p.checkpoint().states[0][1]
    assert len(packed) * 4 < len(plain)
    restored = []
    for saved in (packed, plain):
        q = Processor(windows=parse_windows("1m"), grace_ms=0, source="c1/t")
        q.load(0, saved, stored_offset=0)
        restored.append(q.states[0].snapshot())
    assert restored == [plain, plain]
