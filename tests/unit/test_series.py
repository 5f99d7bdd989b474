"""The series key: written by the SDK's events, read back by the worker's rules (with
kind, service and name known) and by history queries (from the key alone)."""

from __future__ import annotations

import pytest

from producers.events import series_key
from producers.series import NotASeriesKey, SeriesKey


def test_the_worker_reads_step_and_tags_back_from_a_series_key():
    key = SeriesKey.of("step.end|etl|daily|step=load", "step.end", "etl", "daily")
    assert (key.step, dict(key.tags)) == ("load", {})
    key = SeriesKey.of("metric|api|lat|env=prod,zone=a", "metric", "api", "lat")
    assert (key.step, dict(key.tags)) == (None, {"env": "prod", "zone": "a"})


def test_a_service_or_name_with_a_bar_is_read_right_when_they_are_known():
    event = {"kind": "metric", "service": "a|b", "name": "c|d", "tags": {"x": "1"}}
    key = SeriesKey.of(series_key(event), "metric", "a|b", "c|d")
    assert key == SeriesKey("metric", "a|b", "c|d", None, (("x", "1"),))


@pytest.mark.parametrize(
    "event",
    [
        {"kind": "metric", "service": "api", "name": "latency_ms"},
        {"kind": "metric", "service": "api", "name": "latency_ms", "tags": {"b": "2", "a": "1"}},
        {"kind": "step.end", "service": "p", "name": "etl", "step": "load"},
        {"kind": "step.end", "service": "p", "name": "etl", "step": "load", "tags": {"z": "9"}},
        {"kind": "metric", "service": "api", "name": "x", "tags": {"route": "/a|b"}},
    ],
)
def test_what_the_sdk_writes_parses_back_to_the_same_parts_and_key(event):
    written = series_key(event)
    key = SeriesKey.parse(written)
    assert str(key) == written
    tags = tuple(sorted((event.get("tags") or {}).items()))
    expected = SeriesKey(event["kind"], event["service"], event["name"], event.get("step"), tags)
    assert key == expected


@pytest.mark.parametrize("text", ["", "metric", "metric|api", "metric||x", "|api|x"])
def test_what_is_not_a_key_is_refused(text):
    with pytest.raises(NotASeriesKey, match="is not a series key"):
        SeriesKey.parse(text)
