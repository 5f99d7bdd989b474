"""Silences and acknowledgements: requests to commands, commands to state."""

from __future__ import annotations

import orjson
import pytest

from streams.control import (
    CommandError,
    Control,
    ack_command,
    expire_command,
    silence_command,
)
from streams.evaluation import Evaluation, fingerprint
from streams.records import WindowRecord
from streams.rules import parse

HOUR = 3_600_000


def test_a_silence_covers_matching_labels_only_within_its_time():
    c = Control()
    body = {"matchers": {"service": "api", "alertname": "slow"}, "duration": "2h", "comment": "x"}
    c.apply(orjson.loads(orjson.dumps(silence_command(body, now_ms=HOUR, silence_id="a"))))
    labels = {"service": "api", "alertname": "slow", "series": "s"}
    assert c.silenced(labels, HOUR) and c.silenced(labels, 3 * HOUR - 1)
    assert not c.silenced(labels, 3 * HOUR) and not c.silenced(labels, HOUR - 1)
    assert not c.silenced({**labels, "service": "db"}, 2 * HOUR)
    (listed,) = c.listing(2 * HOUR)
    assert listed["active"] and listed["matchers"] == {"service": "api", "alertname": "slow"}


def test_expiring_a_silence_ends_it_now():
    c = Control()
    c.apply(
        silence_command(
            {"matchers": {"service": "api"}, "duration": "1h"}, now_ms=0, silence_id="a"
        )
    )
    c.apply(expire_command("a", now_ms=10))
    assert not c.silenced({"service": "api"}, 10) and c.silenced({"service": "api"}, 5)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ([], "JSON object"),
        ({"duration": "1h"}, "'matchers'"),
        ({"matchers": {}, "duration": "1h"}, "'matchers'"),
        ({"matchers": {"a": 1}, "duration": "1h"}, "'matchers'"),
        ({"matchers": {"a": "b"}}, "give 'duration'"),
        ({"matchers": {"a": "b"}, "duration": "soon"}, "'duration'"),
        ({"matchers": {"a": "b"}, "ends_at": 5, "starts_at": 10}, "end after it starts"),
        ({"matchers": {"a": "b"}, "duration": "100d"}, "within 90 days"),
        ({"matchers": {"a": "b"}, "duration": "1h", "comment": 3}, "'comment'"),
    ],
)
def test_a_bad_silence_request_says_what_is_wrong(body, reason):
    with pytest.raises(CommandError, match=reason):
        silence_command(body, now_ms=100, silence_id="x")


def _firing_evaluation() -> Evaluation:
    rules = parse(
        '[[rule]]\nname = "busy"\nsignal = "count"\nwindow = "1m"\nop = ">"\nthreshold = 5\n',
        "r.toml",
        windows=("1m",),
    )
    e = Evaluation(rules, partition=0)
    record = WindowRecord(
        series="metric|api|q", kind="metric", service="api", name="q", start_ms=0, end_ms=60_000,
        hop_ms=60_000, label="1m", partition=0, count=9, errors=0, values=9, sum=9.0, mean=1.0,
        min=1.0, max=1.0, stddev=0.0, p50=1.0, p95=1.0, p99=1.0, sketch=None,
    )  # fmt: skip
    assert [a.state for a in e.window(record, now_ms=0)] == ["firing"]
    return e


def test_an_acknowledgement_marks_the_firing_episode_it_names():
    e = _firing_evaluation()
    (alert,) = e.alerts()
    fp = fingerprint("busy", "metric|api|q")
    command = ack_command(fp, alert, {"by": "ana", "comment": "on it"}, now_ms=70_000)
    assert not e.acknowledge(fp, started_at=1, by="ana", at=70_000)  # another episode
    assert e.acknowledge(fp, command["started_at"], command["by"], command["at"])
    (alert,) = e.alerts()
    assert (alert["acked_by"], alert["acked_at"]) == ("ana", 70_000)


def test_only_a_firing_alert_can_be_acknowledged_and_someone_must_say_so():
    e = _firing_evaluation()
    (alert,) = e.alerts()
    with pytest.raises(CommandError, match="'by'"):
        ack_command(alert["fingerprint"], alert, {"by": " "}, now_ms=0)
    with pytest.raises(CommandError, match="only a firing alert"):
        ack_command(alert["fingerprint"], {**alert, "status": "pending"}, {"by": "a"}, now_ms=0)
