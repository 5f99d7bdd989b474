"""Producers that are not the SDK: librdkafka (confluent-kafka) publishing Vigil's event JSON
keyed as the README says, unkeyed, and keyed by something else. Three copies of the same
simulated events, one per way (the copy is in the service name), reach one worker.

Each copy must end the same: raw rows exactly once on their series' partition, windows
equal to a recount of the raw rows both ways, and the same windows, detector scores and
alert transitions as the copy keyed right. The events re-routed per partition, counted by
the worker, equal what librdkafka's delivery reports say landed away from home.
"""

from __future__ import annotations

import collections
import math
import time
from pathlib import Path

import pytest

from producers.events import routing_key
from producers.topics import Topics, ensure_topics
from tests import librdkafka
from tests.conftest import open_store
from tests.recount import assert_recounted
from tests.samples import FLAPPING_RULES, detector_rule, simulated
from tests.topics import read_records

pytestmark = pytest.mark.integration

N = 6_000
#: How each copy is published: the librdkafka settings and the key of an event.
COPIES = {
    # The README's advice: the routing key, and Kafka's default (murmur2) partitioner.
    "keyed": (librdkafka.KEYED, routing_key),
    # No key: librdkafka's sticky batches spread a series over every partition.
    "unkeyed": ({}, lambda event: None),
    # A key of the service's own choosing, hashed by librdkafka's default (CRC32).
    "miskeyed": ({}, lambda event: event["service"]),
}
BAD = [b"{not json", b'{"kind": "metric"}', b'{"kind": "nope", "ts": 1}']
#: Covers a burst of 10 event-time minutes in any order (a hop reorders events).
GRACE_S = 3600
RULES = (
    FLAPPING_RULES
    + detector_rule("latency", metric="latency_ms", severity="warning")
    + detector_rule("cpu", metric="cpu_percent", severity="info", signal="max")
)


def copy_of(event: dict, copy: str, i: int) -> dict:
    out = {**event, "service": f"{copy}.{event['service']}"}
    out["attrs"] = {**event.get("attrs", {}), "i": i}
    if "execution_id" in out:
        out["execution_id"] = f"{copy}.{out['execution_id']}"
    return out


def original(series: str) -> tuple[str, str]:
    """``(copy, the series with the copy's mark taken out of its service)``."""
    kind, service, rest = series.split("|", 2)
    copy, _, service = service.partition(".")
    return copy, f"{kind}|{service}|{rest}"


def by_copy(rows: list[tuple], figures: int) -> dict[str, dict[tuple, tuple]]:
    """Rows whose first column is a series, per copy: the series unmarked and the other
    columns but the last ``figures`` -> those figures."""
    out: dict[str, dict[tuple, tuple]] = collections.defaultdict(dict)
    for series, *rest in rows:
        copy, plain = original(series)
        out[copy][(plain, *rest[:-figures])] = tuple(rest[-figures:])
    return out


def same(a: tuple, b: tuple) -> bool:
    """Equal figures; floats to 1e-9 (a sum in another order differs in its last bits)."""
    return all(
        x == y
        or (isinstance(x, float) and isinstance(y, float) and math.isclose(x, y, rel_tol=1e-9))
        for x, y in zip(a, b, strict=True)
    )


async def test_windows_rules_and_detectors_are_right_whatever_key_or_partition_a_producer_uses(
    kafka_settings, start_worker, worker_env, tmp_path
):
    partitions = kafka_settings.events_partitions
    topics = Topics.for_namespace(kafka_settings.namespace)
    await ensure_topics(kafka_settings.kafka_bootstrap, topics, partitions)
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    # No partition goes idle: event time comes from the log alone (late flags recomputable).
    worker = start_worker(
        VIGIL_WINDOWS="1m,5m/1m",
        VIGIL_GRACE_SECONDS=str(GRACE_S),
        VIGIL_IDLE_SECONDS="3600",
        VIGIL_RULES=str(rules),
    )
    events = simulated(N, seed=21, minutes=10)
    copies = {copy: [copy_of(e, copy, i) for i, e in enumerate(events)] for copy in COPIES}
    hops = collections.Counter()
    for copy, (config, key) in COPIES.items():
        bad = BAD if copy == "unkeyed" else ()
        landed = librdkafka.publish(
            kafka_settings, copies[copy], key=key, config=config, extra_lines=bad
        )
        hops[copy] = librdkafka.away(copies[copy], landed, partitions)
    assert hops["keyed"] == {}, "keyed as the README says: no hop"
    assert hops["unkeyed"].total() > N / 2 and hops["miskeyed"].total() > N / 2, hops
    away = hops["unkeyed"] + hops["miskeyed"]

    total = N * len(COPIES)
    worker.wait_until(lambda s: s.get("valid", 0) >= total, timeout=180)
    # Then one event a partition, two hours on: every window closes, none early.
    librdkafka.publish_clocks(kafka_settings, int(time.time() * 1000) + 2 * 3600_000)
    stats = worker.wait_until(lambda s: s.get("valid", 0) >= total + partitions, timeout=60)
    assert stats["valid"] == total + partitions and stats["rejected"] == len(BAD)
    rerouted = {int(p): n for p, n in stats["rerouted_from"].items()}
    assert rerouted == dict(away), "the worker's count of hops, against the delivery reports"
    metrics = worker.metrics()["vigil_events_rerouted_total"]
    assert {int(dict(k)["partition"]): v for k, v in metrics.items()} == dict(away)
    assert worker.stop() == 0

    with open_store(Path(worker_env["VIGIL_DATA_DIR"])) as ch:
        raw = ch.query(
            "SELECT service, JSONExtractInt(attrs, 'i'), partition, late FROM vigil.events "
            "WHERE service != 'clock'"
        ).result_rows
        # Every event once (nothing missing, nothing extra), on its series' partition.
        assert collections.Counter(
            (s.split(".")[0], i) for s, i, _, _ in raw
        ) == collections.Counter((copy, i) for copy in COPIES for i in range(N))
        homes = {
            (copy, i): librdkafka.home(e, partitions)
            for copy in COPIES
            for i, e in enumerate(copies[copy])
        }
        assert [r for r in raw if r[2] != homes[(r[0].split(".")[0], r[1])]] == []
        assert [r for r in raw if r[3]] == [], "the grace covers the burst: nothing late"
        due = assert_recounted(ch, grace_s=GRACE_S, windows=((60, 60), (300, 60)))
        assert min(due) > 100, due
        windows = by_copy(
            ch.query(
                "SELECT series, width_s, hop_s, toUnixTimestamp64Milli(window_start), count, "
                "errors, sum, min, max FROM vigil.windows FINAL WHERE service != 'clock'"
            ).result_rows,
            figures=5,
        )
        scores = by_copy(
            ch.query(
                "SELECT series, detector, window, toUnixTimestamp64Milli(window_end), score "
                "FROM vigil.anomaly_scores FINAL"
            ).result_rows,
            figures=1,
        )
        alerts = by_copy(
            ch.query(
                "SELECT series, rule, state, toUnixTimestamp64Milli(started_at), value "
                "FROM vigil.alerts FINAL"
            ).result_rows,
            figures=1,
        )
    # Enough of each to compare: seed 21 from a whole minute makes 769 windows, 28 scores
    # and 22 alert transitions (a start that was not whole once made only 10 transitions).
    floors = (("windows", windows, 700), ("scores", scores, 20), ("alerts", alerts, 15))
    for name, found, floor in floors:
        assert set(found) == set(COPIES), (name, set(found))
        assert len(found["keyed"]) >= floor, (name, len(found["keyed"]))
        for copy in ("unkeyed", "miskeyed"):
            keyed, other = found["keyed"], found[copy]
            missing, extra = keyed.keys() - other.keys(), other.keys() - keyed.keys()
            assert not missing and not extra, (name, copy, sorted(missing)[:3], sorted(extra)[:3])
            differ = [(k, keyed[k], other[k]) for k in keyed if not same(keyed[k], other[k])]
            assert differ == [], (name, copy, len(differ), differ[:3])
    dead = await read_records(kafka_settings.kafka_bootstrap, topics.deadletter, len(BAD))
    assert sorted(r.value for r in dead) == sorted(BAD)
