"""The SDK's call-site contract: right events, counted drops, strict errors, controls."""

from __future__ import annotations

import asyncio
import collections
import logging
import random

import pytest

from producers import InvalidEvent
from producers.events import validate
from tests.unit.sdk import NOW_MS, offline, wire


def test_a_metric_carries_the_service_the_global_tags_and_the_clock_time():
    vigil = offline(environment="prod", version="1.4.2", tags=(("team", "core"),))
    assert vigil.metric("latency_ms", 12, {"route": "/a"})
    [event] = wire(vigil)
    assert event == {
        "kind": "metric",
        "ts": NOW_MS,
        "service": "api",
        "name": "latency_ms",
        "value": 12.0,
        "tags": {"environment": "prod", "version": "1.4.2", "team": "core", "route": "/a"},
    }
    assert validate(event, now_ms=NOW_MS)["series"] == (
        "metric|api|latency_ms|environment=prod,route=/a,team=core,version=1.4.2"
    )


def test_the_callers_tags_and_attrs_are_copied_at_the_call():
    vigil = offline()
    tags, attrs = {"route": "/a"}, {"user": "u1"}
    vigil.metric("latency_ms", 1.0, tags, attrs=attrs)
    tags["route"], attrs["user"] = "/changed", "u2"
    [event] = wire(vigil)
    assert event["tags"] == {"route": "/a"} and event["attrs"] == {"user": "u1"}


@pytest.mark.parametrize(
    ("call", "reason"),
    [
        (lambda v: v.metric("m", float("nan")), "value must be finite"),
        (lambda v: v.metric("m", float("inf")), "value must be finite"),
        (lambda v: v.metric("m", "12"), "value must be a number, got str"),
        (lambda v: v.metric("m", True), "value must be a number, got bool"),
        (lambda v: v.metric("", 1.0), "metric name must be a non-empty string"),
        (lambda v: v.metric(None, 1.0), "metric name must be a non-empty string"),
        (lambda v: v.metric("m", 1.0, ["route"]), "tags must be a mapping"),
        (lambda v: v.log("loud", "x"), "log level 'loud' is not one of"),
        (lambda v: v.metric("m", 1.0, ts=1_700_000_000), "ts must be integer epoch milli"),
        (
            lambda v: v.step_completed("etl", "r1", "load", duration_ms=-5),
            "duration_ms must not be negative",
        ),
        (lambda v: v.execution_started("etl", None), "execution_id is required"),
    ],
)
def test_a_wrong_call_is_dropped_and_counted_or_raised_in_strict_mode(call, reason, caplog):
    vigil = offline()
    with caplog.at_level(logging.WARNING, logger="producers"):
        assert call(vigil) is False
        assert call(vigil) is False
    assert vigil.stats()["invalid"] == 2
    logged = [r.getMessage() for r in caplog.records]
    assert len(logged) == 1 and reason in logged[0], "one log line per cause"
    assert wire(vigil) == []
    with pytest.raises(InvalidEvent, match=reason.replace("(", r"\(")):
        call(offline(strict=True))


@pytest.mark.parametrize(
    ("tags", "reason"),
    [
        ({"route": 5}, "must map a short name to a string"),
        ({5: "x"}, "tag names must be strings"),
        ({"a|b": "x"}, "must not contain"),
        ({f"t{i}": "x" for i in range(17)}, "at most 16"),
    ],
)
def test_bad_tags_are_dropped_by_the_sender_or_raised_in_strict_mode(tags, reason, caplog):
    vigil = offline()
    assert vigil.metric("m", 1.0, tags)  # checked once per tag set, off the call path
    with caplog.at_level(logging.WARNING, logger="producers"):
        assert wire(vigil) == []
    assert vigil.stats()["invalid"] == 1 and reason in caplog.text
    with pytest.raises(InvalidEvent, match=reason):
        offline(strict=True).metric("m", 1.0, tags)


def test_global_tags_count_towards_the_tag_limit():
    vigil = offline(environment="prod", host="web-1")
    vigil.metric("m", 1.0, {f"t{i}": "x" for i in range(14)})
    vigil.metric("m", 1.0, {f"t{i}": "x" for i in range(15)})
    assert len(wire(vigil)) == 1 and vigil.stats()["invalid"] == 1


def test_a_full_queue_drops_and_counts_without_raising():
    vigil = offline(queue_max_events=10)
    results = [vigil.metric("m", float(i)) for i in range(15)]
    assert results == [True] * 10 + [False] * 5
    assert vigil.stats()["dropped"] == 5 and vigil.stats()["queued"] == 10
    assert [e["value"] for e in wire(vigil)] == [float(i) for i in range(10)]


def test_disable_makes_every_call_a_counted_no_op_until_enable():
    vigil = offline()
    vigil.disable()
    assert not vigil.metric("m", 1.0)
    assert not vigil.log("info", "x")
    with vigil.execution("etl") as run, run.step("a"):
        pass
    assert vigil.stats()["disabled"] >= 6 and wire(vigil) == []
    vigil.enable()
    assert vigil.metric("m", 1.0) and len(wire(vigil)) == 1


def test_a_client_without_bootstrap_is_disabled_and_says_why(caplog):
    with caplog.at_level(logging.ERROR, logger="producers"):
        vigil = offline(kafka_bootstrap="")
    assert "VIGIL_KAFKA_BOOTSTRAP" in caplog.text
    assert not vigil.metric("m", 1.0)
    assert "no Kafka bootstrap" in vigil.stats()["last_error"]


def test_sampling_keeps_a_fraction_of_one_kind_only():
    vigil = offline(sampling=(("log", 0.25),), rng=random.Random(7).random)
    for i in range(2000):
        vigil.log("info", f"line {i}")
        vigil.metric("m", float(i))
    events = wire(vigil)
    logs = sum(e["kind"] == "log" for e in events)
    assert 400 < logs < 600
    assert sum(e["kind"] == "metric" for e in events) == 2000
    assert vigil.stats()["sampled_out"] == 2000 - logs
    vigil.set_sampling("log", 0.0)
    vigil.log("info", "never")
    assert wire(vigil) == []


def test_workflow_sampling_keeps_whole_executions_and_agrees_across_processes():
    clients = [offline(sampling=(("workflow", 0.3),)) for _ in range(2)]
    for vigil in clients:
        for r in range(300):
            with vigil.execution("etl", f"run-{r}", total_steps=1) as run, run.step("a"):
                pass
    kept = []
    for vigil in clients:
        events = [e for e in wire(vigil) if e["kind"] != "span"]
        per_run: dict[str, list[str]] = {}
        for e in events:
            per_run.setdefault(e["execution_id"], []).append(e["kind"])
        assert all(len(k) == 4 for k in per_run.values()), "whole executions or nothing"
        kept.append(set(per_run))
    assert kept[0] == kept[1] and 50 < len(kept[0]) < 130


def test_an_error_carries_type_message_stack_and_sanitized_context():
    vigil = offline()

    def fail() -> None:
        raise KeyError("order-7")

    try:
        fail()
    except KeyError as exc:
        assert vigil.error(exc, {"order": 7, "api_token": "s3cret", "blob": b"\x00" * 10})
    [event] = wire(vigil)
    assert event["kind"] == "error" and event["name"] == "KeyError"
    assert event["message"] == "'order-7'"
    assert event["attrs"]["type"] == "builtins.KeyError"
    assert event["attrs"]["stack"][-1].endswith("in fail")
    assert event["attrs"]["context"] == {
        "order": 7,
        "api_token": "[redacted]",
        "blob": "<bytes: 10>",
    }


def test_an_exception_with_a_broken_str_is_still_recorded():
    class Weird(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    vigil = offline()
    assert vigil.error(Weird())
    assert wire(vigil)[0]["message"] == "<Weird>"


def test_long_messages_keep_4096_characters_and_say_how_much_was_cut():
    vigil = offline()
    sql_error = "syntax error near " + "x" * 5000
    assert vigil.log("error", sql_error)
    assert vigil.error(ValueError(sql_error))
    for event in wire(vigil):
        assert event["message"] == sql_error[:4096] + f"...[+{len(sql_error) - 4096}]"
        validate(event, now_ms=NOW_MS)  # within the schema's bound


def test_attrs_that_json_cannot_encode_become_descriptions():
    vigil = offline()
    assert vigil.metric("m", 1.0, attrs={"obj": object(), "raw": b"abc", "n": {1: 2}})
    [event] = wire(vigil)
    assert event["attrs"] == {"obj": "<object>", "raw": "<bytes: 3>", "n": {"1": 2}}


def test_publish_sends_a_valid_event_as_given_and_drops_an_invalid_one(caplog):
    vigil = offline()
    good = {"kind": "metric", "ts": NOW_MS, "service": "billing", "name": "m", "value": 1}
    bad = {"kind": "metrc", "ts": NOW_MS, "service": "billing", "name": "m"}
    assert vigil.publish(good)
    assert vigil.publish(bad)  # checked by the sender, off the call path
    with caplog.at_level(logging.WARNING, logger="producers"):
        assert wire(vigil) == [good]
    assert vigil.stats()["invalid"] == 1 and "unknown kind 'metrc'" in caplog.text
    with pytest.raises(InvalidEvent, match="unknown kind 'metrc'"):
        offline(strict=True).publish(bad)


def test_counter_is_a_metric_marked_as_a_count():
    vigil = offline()
    vigil.counter("orders", 3, {"shop": "eu"})
    [event] = wire(vigil)
    assert event["value"] == 3.0 and event["attrs"] == {"counter": True}


async def test_the_resource_sampler_records_cpu_and_memory_at_its_interval():
    vigil = offline(resource_interval_s=0.05)
    await vigil.start()  # the broker is unreachable: samples wait in the queue
    await asyncio.sleep(0.4)
    await vigil.close(timeout=0.1)
    events = await asyncio.to_thread(wire, vigil)
    names = collections.Counter(e["name"] for e in events)
    assert names["cpu_percent"] >= 3 and names["memory_mb"] == names["cpu_percent"]
    assert all(0 <= e["value"] <= 100 for e in events if e["name"].endswith("percent"))
    assert all(e["value"] > 1 for e in events if e["name"] == "memory_mb")


def test_metric_samples_encode_any_finite_value_and_the_tags_of_the_moment():
    vigil = offline(environment="prod")
    values = [12.5, 1e16, -0.0, 5e-324, 1.7976931348623157e308, 3, -7]
    tags = {"route": "/a"}
    for i, v in enumerate(values):
        assert vigil.metric("m", v, tags, ok=i % 2 == 0 if i < 3 else None)
    tags["route"] = "/changed"  # after the calls: the samples keep what they had
    events = wire(vigil)
    assert [e["value"] for e in events] == [float(v) for v in values]
    assert [e.get("ok") for e in events] == [True, False, True, None, None, None, None]
    for event in events:
        assert event["tags"] == {"environment": "prod", "route": "/a"}
        assert validate(event, now_ms=NOW_MS)["series"] == "metric|api|m|environment=prod,route=/a"
