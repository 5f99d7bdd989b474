"""The alert state machine: every transition, pending period, hysteresis, flapping,
acknowledge and silences."""

from __future__ import annotations

import pytest

from streams.alerting import (
    AlertState,
    Observation,
    Policy,
    Silence,
    acknowledge,
    silenced,
    step,
)

MIN = 60_000
ON, OFF = Observation(True, 10.0), Observation(False, 1.0)


def _run(policy, observations, start=None):
    """Feed ``(at, active)`` pairs; the states and transitions seen."""
    state, seen = start or AlertState(), []
    for at, active in observations:
        state, transition = step(state, ON if active else OFF, at, policy)
        seen.append((state.status, transition.to if transition else None))
    return state, seen


def test_without_a_pending_period_an_alert_fires_at_once_and_resolves_when_clear():
    _, seen = _run(Policy(), [(0, False), (MIN, True), (2 * MIN, True), (3 * MIN, False)])
    assert seen == [
        ("inactive", None),
        ("firing", "firing"),
        ("firing", None),
        ("resolved", "resolved"),
    ]


def test_pending_fires_only_after_the_condition_held_for_the_whole_period():
    policy = Policy(for_ms=2 * MIN)
    state, seen = _run(policy, [(0, True), (MIN, True), (2 * MIN, True)])
    assert seen == [("pending", "pending"), ("pending", None), ("firing", "firing")]
    assert state.started_at == 0


def test_pending_that_clears_goes_back_to_inactive_without_a_transition():
    _, seen = _run(Policy(for_ms=5 * MIN), [(0, True), (MIN, False), (2 * MIN, True)])
    assert seen == [("pending", "pending"), ("inactive", None), ("pending", "pending")]


def test_keep_firing_for_holds_the_alert_through_short_gaps():
    policy = Policy(keep_firing_for_ms=3 * MIN)
    _, seen = _run(
        policy,
        [
            (0, True),
            (MIN, False),
            (2 * MIN, True),
            (3 * MIN, False),
            (5 * MIN, False),
            (6 * MIN, False),
        ],
    )
    # Clear at 3 min, 5 min: held (last active at 2 min); resolved 3 min after that.
    assert [t for _, t in seen] == ["firing", None, None, None, "resolved", None]


def test_a_resolved_alert_fires_again_as_a_new_episode():
    state, seen = _run(Policy(max_flaps=10), [(0, True), (MIN, False), (2 * MIN, True)])
    assert [t for _, t in seen] == ["firing", "resolved", "firing"]
    assert state.started_at == 2 * MIN and len(state.fired_at) == 2


def test_flapping_is_damped_by_holding_the_resolution():
    policy = Policy(max_flaps=3, flap_window_ms=60 * MIN, flap_hold_ms=10 * MIN)
    observations = [(i * MIN, i % 2 == 0) for i in range(6)]  # on, off, on, off, on, off
    state, seen = _run(policy, observations)
    assert [t for _, t in seen] == ["firing", "resolved", "firing", "resolved", "firing", None]
    assert state.status == "firing"  # the third firing in an hour holds for 10 minutes
    state, transition = step(state, OFF, 13 * MIN, policy)
    assert transition is None
    state, transition = step(state, OFF, 14 * MIN, policy)  # 10 min after the last active
    assert transition is not None and transition.to == "resolved" and transition.flapping


def test_old_firings_leave_the_flap_window():
    policy = Policy(max_flaps=2, flap_window_ms=10 * MIN, flap_hold_ms=30 * MIN)
    state, _ = _run(policy, [(0, True), (MIN, False)])
    state, seen = _run(policy, [(20 * MIN, True), (21 * MIN, False)], start=state)
    assert [t for _, t in seen] == ["firing", "resolved"]  # the first firing is forgotten


def test_transitions_carry_value_start_and_previous_state():
    policy = Policy(for_ms=MIN)
    state, _ = step(AlertState(), Observation(True, 7.0), 0, policy)
    state, fire = step(state, Observation(True, 8.5), MIN, policy)
    assert (fire.previous, fire.to, fire.at, fire.started_at, fire.value) == (
        "pending",
        "firing",
        MIN,
        0,
        8.5,
    )
    _, resolve = step(state, Observation(False, 0.5), 2 * MIN, policy)
    assert (resolve.previous, resolve.started_at, resolve.value) == ("firing", 0, 0.5)


def test_state_round_trips_through_json():
    state, _ = _run(Policy(), [(0, True), (MIN, True)])
    state = acknowledge(state, "ana", 2 * MIN)
    assert AlertState.from_json(state.to_json()) == state


def test_acknowledge_marks_a_firing_alert_until_it_resolves():
    state, _ = _run(Policy(), [(0, True)])
    state = acknowledge(state, "ana", MIN)
    assert (state.acked_by, state.acked_at) == ("ana", MIN)
    state, _ = step(state, ON, 2 * MIN, Policy())
    assert state.acked_by == "ana"
    state, _ = step(state, OFF, 3 * MIN, Policy())
    assert state.acked_by is None
    with pytest.raises(ValueError, match="only a firing alert"):
        acknowledge(state, "ana", 4 * MIN)
    firing, _ = _run(Policy(), [(0, True)])
    with pytest.raises(ValueError, match="who"):
        acknowledge(firing, " ", 0)


def test_silences_match_labels_within_their_time():
    s = Silence((("service", "api"), ("severity", "page")), starts_at=0, ends_at=10 * MIN)
    labels = {"service": "api", "severity": "page", "rule": "p95"}
    assert silenced([s], labels, 5 * MIN)
    assert not silenced([s], labels, 10 * MIN)
    assert not silenced([s], {**labels, "service": "web"}, 5 * MIN)
    with pytest.raises(ValueError, match="matcher"):
        Silence((), 0, 1)
    with pytest.raises(ValueError, match="end after"):
        Silence((("a", "b"),), 5, 5)


def test_a_policy_with_negative_times_is_refused():
    with pytest.raises(ValueError, match="for_ms"):
        Policy(for_ms=-1)
    with pytest.raises(ValueError, match="max_flaps"):
        Policy(max_flaps=0)


def test_random_histories_only_make_allowed_transitions():
    import random

    allowed = {
        ("inactive", "pending"),
        ("resolved", "pending"),
        ("pending", "firing"),
        ("inactive", "firing"),
        ("resolved", "firing"),
        ("firing", "resolved"),
    }
    rng = random.Random(9)
    for _ in range(300):
        policy = Policy(
            for_ms=rng.choice([0, MIN, 3 * MIN]),
            keep_firing_for_ms=rng.choice([0, 2 * MIN]),
            max_flaps=rng.randint(1, 4),
            flap_hold_ms=rng.choice([0, 5 * MIN]),
        )
        state, firing = AlertState(), False
        for i in range(60):
            state, t = step(state, ON if rng.random() < 0.5 else OFF, i * MIN, policy)
            if t is not None:
                assert (t.previous, t.to) in allowed
                assert t.started_at <= t.at
                if t.to == "firing":
                    assert not firing
                    firing = True
                elif t.to == "resolved":
                    assert firing
                    firing = False
            assert (state.status == "firing") == firing


def test_each_state_keeps_the_last_value_seen_and_when_the_condition_was_last_active():
    """Every field of the state after each step (the value shown while pending and
    firing, the last active time that keep_firing_for counts from)."""
    policy = Policy(for_ms=2 * MIN, keep_firing_for_ms=MIN)
    steps = [
        (0, Observation(True, 5.0), AlertState("pending", 0, 0, 5.0)),
        (MIN, Observation(True, 6.0), AlertState("pending", 0, MIN, 6.0)),
        (2 * MIN, Observation(True, 7.0), AlertState("firing", 0, 2 * MIN, 7.0, (2 * MIN,))),
        (3 * MIN, Observation(True, 8.0), AlertState("firing", 0, 3 * MIN, 8.0, (2 * MIN,))),
        (3 * MIN + 1, Observation(False, 1.0), AlertState("firing", 0, 3 * MIN, 8.0, (2 * MIN,))),
        (4 * MIN, Observation(False, 2.0), AlertState("resolved", None, None, 2.0, (2 * MIN,))),
    ]
    state = AlertState()
    values = []
    for at, obs, want in steps:
        state, transition = step(state, obs, at, policy)
        assert state == want, at
        if transition:
            values.append((transition.to, transition.value, transition.started_at))
    assert values == [("pending", 5.0, 0), ("firing", 7.0, 0), ("resolved", 2.0, 0)]


def test_a_firing_exactly_the_flap_window_ago_is_forgotten_even_while_inactive():
    policy = Policy(flap_window_ms=10 * MIN)
    old = AlertState("resolved", fired_at=(0, 5 * MIN))
    state, transition = step(old, OFF, 10 * MIN, policy)
    assert transition is None and state == AlertState("resolved", fired_at=(5 * MIN,))
    assert step(state, OFF, 11 * MIN, policy)[0] is state  # nothing to forget: the same


def test_without_keep_firing_for_an_alert_resolves_at_its_first_clear_observation():
    state, _ = step(AlertState(), ON, 0, Policy())
    state, transition = step(state, OFF, 0, Policy())
    assert state.status == "resolved" and transition.to == "resolved"


def test_a_state_saved_before_flap_tracking_loads_with_no_firings():
    saved = AlertState("firing", 0, MIN, 3.0).to_json()
    del saved["fired_at"]
    assert AlertState.from_json(saved) == AlertState("firing", 0, MIN, 3.0)
