"""Rules and detectors on the closed windows and samples of one partition."""

from __future__ import annotations

import random

import orjson

from streams import modelbase
from streams.detection import default_detector
from streams.evaluation import Evaluation, fingerprint
from streams.processing import Processor
from streams.records import WindowRecord
from streams.rules import parse
from streams.windows import Windows, parse_windows
from tests.samples import MIN, SERIES, feed, ruleset, threshold_rule, window

SLOW = """
[[rule]]
name = "slow"
match = { kind = "metric", name = "latency*" }
signal = "p95"
window = "1m"
op = ">"
threshold = 500
recovery = 400
min_count = 10
for = "2m"
annotations = { summary = "{service} p95 {value:.0f} over {threshold:.0f}" }
"""


def test_a_threshold_rule_goes_pending_then_fires_after_its_for_then_resolves():
    e = Evaluation(ruleset(SLOW), partition=3)
    means = [100, 600, 650, 700, 450, 300]  # 450 is above the recovery: still firing
    alerts = feed(e, [window(i + 1, mean=m) for i, m in enumerate(means)])
    assert [(a.state, a.at // MIN, a.started_at // MIN) for a in alerts] == [
        ("pending", 2, 2),
        ("firing", 4, 2),
        ("resolved", 6, 2),
    ]
    firing = alerts[1]
    assert firing.fingerprint == fingerprint("slow", SERIES) and firing.partition == 3
    assert [a.seq for a in alerts] == [1, 2, 3] and firing.id == f"{firing.fingerprint}-2"
    assert firing.annotations == {"summary": "api p95 700 over 500"}
    assert firing.labels == {"alertname": "slow", "service": "api", "series": SERIES}
    assert firing.to_dict()["value"] == 700.0


def test_a_pending_alert_that_clears_before_its_for_makes_no_more_transitions():
    e = Evaluation(ruleset(SLOW), partition=0)
    alerts = feed(e, [window(1, mean=600), window(2, mean=100), window(3, mean=100)])
    assert [a.state for a in alerts] == ["pending"]
    assert e.slots == {}  # nothing left to remember


def test_a_window_with_too_few_events_is_not_evidence():
    e = Evaluation(ruleset(SLOW), partition=0)
    assert feed(e, [window(i, mean=900, count=3) for i in range(1, 6)]) == []


def test_a_firing_series_that_goes_quiet_resolves_on_its_first_missing_window():
    e = Evaluation(ruleset(SLOW), partition=0)
    alerts = feed(e, [window(i, mean=900) for i in range(1, 4)])
    assert alerts[-1].state == "firing"
    resolved = e.advance(10 * MIN, now_ms=0)
    assert [(a.state, a.at // MIN, a.value) for a in resolved] == [("resolved", 4, None)]
    assert e.advance(20 * MIN, now_ms=0) == []


def test_series_that_never_break_a_threshold_rule_cost_no_state():
    e = Evaluation(ruleset(SLOW), partition=0)
    for i in range(200):
        feed(e, [window(1, mean=100, series=f"metric|api|latency_ms|host=h{i}")])
    assert e.slots == {}


NO_DATA = """
[[rule]]
name = "no_data"
match = { name = "cpu_percent" }
signal = "absent"
window = "1m"
for = "5m"
"""


def test_an_absence_rule_fires_after_its_for_of_silence_and_resolves_when_data_returns():
    e = Evaluation(ruleset(NO_DATA), partition=0)
    cpu = "metric|api|cpu_percent"
    assert feed(e, [window(1, series=cpu), window(2, series=cpu)]) == []
    transitions = [
        (a.state, a.at // MIN) for m in range(3, 12) for a in e.advance(m * MIN, now_ms=0)
    ]
    # Last data ended at minute 2: five silent minutes later, at minute 7, it fires.
    assert transitions == [("pending", 3), ("firing", 7)]
    back = feed(e, [window(12, series=cpu)])
    assert [(a.state, a.at // MIN) for a in back] == [("resolved", 12)]


def test_a_long_silence_is_walked_in_few_steps():
    e = Evaluation(ruleset(NO_DATA), partition=0)
    feed(e, [window(1, series="metric|api|cpu_percent")])
    alerts = e.advance(60 * 24 * 5 * MIN, now_ms=0)  # five days later, at once
    assert [a.state for a in alerts] == ["pending", "firing"]
    (slot,) = e.slots.values()
    assert slot.last_end == 60 * 24 * 5 * MIN
    assert e.advance(60 * 24 * 8 * MIN, now_ms=0) == [] and not e.slots  # forgotten


DETECTOR = """
[[detector]]
name = "odd_latency"
match = { name = "latency*" }
signal = "mean"
window = "1m"
"""


def noisy(seed: int, n: int, shift_at: int) -> list[WindowRecord]:
    rng = random.Random(seed)
    return [window(i + 1, mean=(100 if i < shift_at else 400) + rng.gauss(0, 5)) for i in range(n)]


def test_a_detector_fires_on_a_level_shift_and_not_before():
    e = Evaluation(ruleset(DETECTOR), partition=0)
    alerts = feed(e, noisy(1, 400, shift_at=300))
    firing = [a for a in alerts if a.state == "firing"]
    assert firing and all(a.at // MIN > 300 for a in firing)
    assert firing[0].at // MIN <= 305 and firing[0].score >= 0.9999


def test_one_odd_window_is_pending_and_the_second_in_a_row_fires():
    """A detector fires on its second window in a row over its threshold: one window over
    it goes to pending and back, silently; two in a row fire at the second."""
    rng = random.Random(4)
    means = [100 + rng.gauss(0, 5) for _ in range(400)]
    # The window ending at minute 351, 6.4 spreads out: the chance check caps a far
    # larger lone spike's span at one score for all its 20 windows (none is the highest).
    means[350] = 132.0
    model = default_detector()
    scores = []
    for i, m in enumerate(means):
        scores.append(model.score_one(m, (i + 1) * MIN))
        model.learn_one(m, (i + 1) * MIN)
    first, second = scores[350], scores[351]
    assert max(scores[:350]) < second < first  # the spike, then less of it
    records = [window(i + 1, mean=m) for i, m in enumerate(means)]
    between = DETECTOR + f"threshold = {(first + second) / 2!r}\n"
    alerts = feed(Evaluation(ruleset(between), 0), records)
    assert [(a.state, a.at // MIN) for a in alerts] == [("pending", 351)]
    both = DETECTOR + f"threshold = {second!r}\n"
    alerts = feed(Evaluation(ruleset(both), 0), records)
    assert [(a.state, a.at // MIN) for a in alerts][:2] == [("pending", 351), ("firing", 352)]


def test_state_restored_from_a_snapshot_makes_the_same_transitions():
    records = noisy(2, 400, shift_at=250)
    whole = Evaluation(ruleset(DETECTOR + SLOW), partition=0)
    expected = feed(whole, records)
    first = Evaluation(ruleset(DETECTOR + SLOW), partition=0)
    head = feed(first, records[:260])
    snapshot = orjson.loads(orjson.dumps(first.snapshot()))  # JSON-safe
    models = [slot[-1] for slot in snapshot["slots"] if slot[-1] is not None]
    assert models and all(m["base"] == modelbase.CURRENT for m in models)  # stored thin
    again = Evaluation.restore(snapshot, ruleset(DETECTOR + SLOW), 0)
    tail = feed(again, records[260:])
    strip = lambda alerts: [{**a.to_dict(), "evaluated_at": 0} for a in alerts]  # noqa: E731
    assert strip(head + tail) == strip(expected) and expected


def test_slots_of_a_removed_rule_are_dropped_on_restore():
    e = Evaluation(ruleset(SLOW + DETECTOR), partition=0)
    feed(e, [window(i, mean=900) for i in range(1, 5)])
    again = Evaluation.restore(e.snapshot(), ruleset(DETECTOR), 0)
    assert {k[0] for k in again.slots} == {"odd_latency"}
    assert again.counts["slots_of_removed_rules"] == 1 and again.seq == e.seq


def test_a_sample_rule_watches_each_raw_value():
    rules = ruleset('[[rule]]\nname = "hot"\nmatch = { name = "temp" }\nsignal = "value"\n'
                    'op = ">"\nthreshold = 90\n')  # fmt: skip
    e = Evaluation(rules, partition=0)
    states = [
        a.state
        for ts, v in enumerate([50, 95, 97, 60, 99])
        for a in e.sample("metric|dc|temp", "metric", "dc", "temp", ts=ts, value=v, now_ms=0)
    ]
    assert states == ["firing", "resolved", "firing"]


def test_detector_models_per_partition_are_capped_and_refusals_counted():
    e = Evaluation(ruleset(DETECTOR), partition=0, max_detected=5)
    for i in range(8):
        feed(e, [window(1, series=f"metric|api|latency_ms|host=h{i}")])
    assert len(e.slots) == 5 and e.counts["detector_series_refused"] == 3


def test_the_processor_checkpoints_alert_state_and_a_replay_repeats_the_same_alerts():
    """Through the processor: events -> windows -> rules, restarted from its checkpoint."""
    rules = ruleset(SLOW)
    base = 1_700_000_000_000 - 1_700_000_000_000 % MIN
    lines = [
        {"kind": "metric", "ts": base + m * MIN + i * 100, "service": "api",
         "name": "latency_ms", "value": 900.0 if 3 <= m < 8 else 100.0}
        for m in range(12) for i in range(20)
    ]  # fmt: skip
    messages = [
        (0, offset, b"\n".join(map(orjson.dumps, lines[offset * 20 : offset * 20 + 20])))
        for offset in range(12)
    ]

    def processor():
        p = Processor(windows=parse_windows("1m"), grace_ms=0, source="s", rules=rules)
        return p

    one = processor()
    one.load(0, None, -1)
    whole = [a for m in messages for a in one.process([m], now_ms=base).alerts]
    assert [a.state for a in whole] == ["pending", "firing", "resolved"]

    two = processor()
    two.load(0, None, -1)
    head = [a for m in messages[:6] for a in two.process([m], now_ms=base).alerts]
    checkpointed = two.process([messages[6]], now_ms=base)
    head += checkpointed.alerts
    (saved,) = [s for _, s in checkpointed.states.values()]
    three = processor()
    three.load(0, saved, -1)
    # A crash after the checkpoint: everything from offset 0 comes again, only 7.. counts.
    replay = [a for m in messages for a in three.process([m], now_ms=base).alerts]
    assert [(a.seq, a.state, a.at) for a in head + replay] == [
        (a.seq, a.state, a.at) for a in whole
    ]


def test_the_topic_json_is_exactly_what_the_sdk_decodes():
    """The stream makes producers.alerts.Alert and the SDK decodes the same bytes back
    (the fields themselves are checked against their document in test_alert_schema)."""
    from producers.alerts import Alert

    e = Evaluation(ruleset(SLOW), partition=0)
    alert = feed(e, [window(i, mean=900) for i in range(1, 4)])[-1]
    decoded = Alert.decode(alert.line())
    assert decoded.to_dict() == alert.to_dict()


def test_a_sample_rule_resolves_once_its_series_goes_quiet():
    rules = ruleset('[[rule]]\nname = "hot"\nmatch = { name = "temp" }\nsignal = "value"\n'
                    'op = ">"\nthreshold = 90\nkeep_firing_for = "10m"\n')  # fmt: skip
    e = Evaluation(rules, partition=0)

    def sample(ts: int, value: float) -> list:
        return e.sample("metric|dc|temp", "metric", "dc", "temp", ts=ts, value=value, now_ms=0)

    assert [a.state for a in sample(0, 95) + sample(MIN, 97)] == ["firing"]
    assert e.advance(5 * MIN, now_ms=0) == []  # quiet 4 minutes: still firing
    # Stale 5m after the last sample (6m), then held 10m after it was last active (11m).
    assert e.advance(10 * MIN, now_ms=0) == []
    (resolved,) = e.advance(60 * MIN, now_ms=0)
    assert (resolved.state, resolved.at) == ("resolved", 11 * MIN)
    assert e.advance(120 * MIN, now_ms=0) == [] and not e.slots
    # A replay from a snapshot taken while firing resolves at the same time.
    again = Evaluation(rules, partition=0)
    for ts, v in [(0, 95), (MIN, 97)]:
        again.sample("metric|dc|temp", "metric", "dc", "temp", ts=ts, value=v, now_ms=0)
    restored = Evaluation.restore(orjson.loads(orjson.dumps(again.snapshot())), rules, 0)
    (replayed,) = restored.advance(60 * MIN, now_ms=0)
    assert (replayed.state, replayed.at, replayed.seq) == ("resolved", 11 * MIN, resolved.seq)


def test_the_alerts_listed_are_every_pending_and_firing_slot_and_no_other():
    """alerts() reads the live slots only: after many series move through pending,
    firing and resolved, with acknowledgements and a restore on the way, it lists
    exactly the slots whose state is pending or firing (a scan of every slot)."""
    rng = random.Random(3)
    rules = ruleset(SLOW + DETECTOR)
    e = Evaluation(rules, partition=0)
    names = [f"metric|api|latency_{i}" for i in range(60)]
    seen = set()
    for minute in range(1, 90):
        for series in names:
            if rng.random() < 0.8:
                mean = rng.choice((100.0, 100.0, 620.0, 900.0))
                e.window(window(minute, mean=mean, series=series), now_ms=minute * MIN + 1)
        e.advance(minute * MIN, now_ms=minute * MIN + 1)
        if minute == 40:
            e = Evaluation.restore(orjson.loads(orjson.dumps(e.snapshot())), rules, 0)
        scanned = {
            fingerprint(name, series): slot.state.status
            for (name, series), slot in e.slots.items()
            if slot.state.status in ("pending", "firing")
        }
        listed = {a["fingerprint"]: a["status"] for a in e.alerts()}
        assert listed == scanned
        for a in e.alerts():
            if a["status"] == "firing" and rng.random() < 0.2:
                e.acknowledge(a["fingerprint"], a["started_at"], "oncall", minute * MIN)
        seen |= set(scanned.values())
    assert seen == {"pending", "firing"}


HOPPING = threshold_rule(
    "slow_5m", metric="latency*", threshold=500, severity="warning", window="5m/1m", signal="mean"
)


def test_a_rule_on_a_hopping_window_sees_those_windows_and_no_other():
    """Windows of a width no rule watches are passed over; those a rule watches are not."""
    rules = parse(HOPPING, "r.toml", windows=("1m", "5m/1m"), hops={"1m": MIN, "5m/1m": MIN})
    assert rules.windows == {"5m/1m"}
    windows = Windows(parse_windows("1m,5m/1m"), grace_ms=0, partition=0)
    e = Evaluation(rules, partition=0)
    alerts, labels = [], set()
    for minute in range(12):  # 100 a minute, then 900 from minute 6 on
        value = 900.0 if minute >= 6 else 100.0
        windows.add(SERIES, "metric", "api", "latency_ms", ts=minute * MIN, value=value, ok=None)
        for record in windows.close_ready():
            labels.add(record.label)
            alerts += e.window(record, now_ms=record.end_ms + 1)
    assert labels == {"1m", "5m/1m"}
    # [4, 9) is the first five minutes whose mean (580) is over 500: 1m windows cross at 7.
    assert [(a.state, a.at // MIN) for a in alerts] == [("firing", 9)]


def test_rules_that_select_by_step_or_tag_watch_those_series_of_a_name_and_no_other():
    """Rules found by kind, service and name first: one that names a tag value or a step
    still watches only the series that have it, beside a rule on every series of the
    name, whichever series of the name came first."""
    e = Evaluation(
        ruleset(
            threshold_rule("any", metric="latency_ms", threshold=1, severity="info")
            + threshold_rule("eu", metric="latency_ms", threshold=1, severity="info").replace(
                'name = "latency_ms" }', 'name = "latency_ms", tags = { region = "eu*" } }'
            )
            + threshold_rule("load", metric="*", threshold=1, severity="info").replace(
                'kind = "metric"', 'kind = "step.end", step = "load"'
            )
        ),
        partition=0,
    )
    series = [
        "metric|api|latency_ms|region=us",
        "metric|api|latency_ms|region=eu-west",
        "metric|api|latency_ms",
        "metric|api|latency_ms|host=h1,region=eu",
        "step.end|etl|nightly|step=save",
        "step.end|etl|nightly|step=load",
        "step.end|etl|nightly|step=load|region=eu",
    ]
    fired = {(a.rule, a.labels["series"]) for s in series for a in feed(e, [window(1, series=s)])}
    assert fired == {
        *(("any", s) for s in series[:4]),
        ("eu", "metric|api|latency_ms|region=eu-west"),
        ("eu", "metric|api|latency_ms|host=h1,region=eu"),
        ("load", "step.end|etl|nightly|step=load"),
        ("load", "step.end|etl|nightly|step=load|region=eu"),
    }


def test_after_a_reload_a_series_seen_before_is_watched_by_the_new_rules_that_match_it():
    """What rules match a series is worked out again with the reloaded rules, for
    series the old ones matched and for those they did not."""
    calm = threshold_rule("calm", metric="latency_ms", threshold=1e9, severity="info")
    e = Evaluation(ruleset(calm), partition=0)
    other = "metric|api|queue_depth"
    assert feed(e, [window(1), window(1, series=other)]) == []
    e.reload(
        ruleset(
            threshold_rule("hot", metric="latency_ms", threshold=1, severity="info")
            + threshold_rule("deep", metric="queue_*", threshold=1, severity="info")
        ),
        now_ms=0,
    )
    fired = {(a.rule, a.labels["series"]) for a in feed(e, [window(2), window(2, series=other)])}
    assert fired == {("hot", SERIES), ("deep", other)}
