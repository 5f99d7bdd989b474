"""Every limit of event schema v1 at its edge, in both places that check it: the SDK's
``validate`` (a dict) and the worker's ``decode`` (the bytes). At the limit an event is
kept; one past it, refused with a reason. (Found by mutation testing: a limit moved by one
passed the suite.)"""

from __future__ import annotations

import orjson
import pytest

from producers.events import MAX_FUTURE_MS, MIN_TS_MS, InvalidEvent, decode, validate

NOW = 1_700_000_000_000


def event(**fields):
    return {"kind": "metric", "ts": NOW, "service": "api", "name": "m", "value": 1.0, **fields}


def verdicts(ev):
    """``(validate's, decode's)``: the series, or the reason for refusing."""
    out = []
    for check in (lambda: validate(dict(ev), now_ms=NOW)["series"],
                  lambda: decode(orjson.dumps(ev), now_ms=NOW)[1]):  # fmt: skip
        try:
            out.append(check())
        except InvalidEvent as exc:
            out.append(f"refused: {exc.reason}")
    return out


@pytest.mark.parametrize(
    ("field", "limit"), [("service", 128), ("name", 256), ("message", 8192), ("step", 256)]
)
def test_a_text_field_may_be_as_long_as_its_limit_and_no_longer(field, limit):
    at, over = event(**{field: "x" * limit}), event(**{field: "x" * (limit + 1)})
    assert not any(v.startswith("refused") for v in verdicts(at)), verdicts(at)
    assert all(v.startswith("refused") for v in verdicts(over)), verdicts(over)


@pytest.mark.parametrize(
    ("tags", "kept"),
    [
        ({"k" * 64: "v"}, True),
        ({"k" * 65: "v"}, False),
        ({"k": "v" * 256}, True),
        ({"k": "v" * 257}, False),
        ({"a=b": "v"}, False),
        ({"a,b": "v"}, False),
        ({"a|b": "v"}, False),
    ],
)
def test_tag_keys_and_values_have_limits_and_no_separators_in_keys(tags, kept):
    found = verdicts(event(tags=tags))
    assert [not v.startswith("refused") for v in found] == [kept, kept], found


@pytest.mark.parametrize(
    ("ts", "kept"),
    [
        (MIN_TS_MS, True),
        (MIN_TS_MS - 1, False),
        (NOW + MAX_FUTURE_MS, True),
        (NOW + MAX_FUTURE_MS + 1, False),
    ],
)
def test_event_times_are_kept_from_2000_to_a_day_ahead_inclusive(ts, kept):
    found = verdicts(event(ts=ts))
    assert [not v.startswith("refused") for v in found] == [kept, kept], found


def test_a_step_and_tags_are_part_of_the_series_in_both_checks():
    step = {"kind": "step.end", "ts": NOW, "service": "etl", "name": "nightly",
            "execution_id": "x", "step": "load", "tags": {"b": "2", "a": "1"}}  # fmt: skip
    assert verdicts(step) == ["step.end|etl|nightly|step=load|a=1,b=2"] * 2
    assert verdicts(event(service=""))[1].startswith("refused")


@pytest.mark.parametrize(
    ("tags", "kept"),
    [
        ({"k" * 64: "v" * 256}, True),
        ({"k" * 65: "v"}, False),
        ({"k": "v" * 257}, False),
        ({"a=b": "v"}, False),
        ({"a,b": "v"}, False),
        ({"k": 1}, False),
    ],
)
def test_the_sdks_tag_check_has_the_same_limits(tags, kept):
    """``check_tags`` (the SDK's global and per-call tags) before anything is sent."""
    from producers.events import check_tags

    if kept:
        assert check_tags(tags) == tags
    else:
        with pytest.raises(InvalidEvent):
            check_tags(tags)


def test_a_series_key_known_to_the_worker_is_its_own_whatever_came_before():
    """The worker keeps each checked series' key: a bad tag set is refused every time,
    and two series that differ in a tag, a step or a name never share a key."""
    bad = orjson.dumps(event(tags={"a|b": "v"}))
    for _ in range(2):
        with pytest.raises(InvalidEvent):
            decode(bad, now_ms=NOW)
    seen = {}
    cases = [({"h": "1"}, "m"), ({"h": "2"}, "m"), ({"h": "1"}, "n"), ({"h": "1", "z": "0"}, "m")]
    for tags, name in cases * 2:
        line = orjson.dumps(event(tags=tags, name=name))
        seen.setdefault(line, set()).add(decode(line, now_ms=NOW)[1])
    assert [len(keys) for keys in seen.values()] == [1, 1, 1, 1]
    assert len(set().union(*seen.values())) == 4
    step = {"kind": "step.end", "ts": NOW, "service": "s", "name": "w", "execution_id": "x",
            "tags": {"h": "1"}}  # fmt: skip
    keys = {decode(orjson.dumps({**step, "step": s}), now_ms=NOW)[1] for s in ("a", "b")}
    assert keys == {"step.end|s|w|step=a|h=1", "step.end|s|w|step=b|h=1"}
