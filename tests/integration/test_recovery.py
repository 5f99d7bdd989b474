"""Replay safety and scale: a SIGKILLed worker, and two workers sharing four partitions,
give the same windows as one uninterrupted worker."""

from __future__ import annotations

import collections
import dataclasses
import os
import re
import signal
import time
from pathlib import Path

import pytest

from producers.client import Client
from producers.envelopes import split
from tests.conftest import applied, handovers, held_store, open_store
from tests.samples import simulated
from tests.topics import append_log, read_log, wait_committed

pytestmark = pytest.mark.integration

N = 40_000
WINDOWS = {"VIGIL_WINDOWS": "1m,5m/1m", "VIGIL_GRACE_SECONDS": "5"}
# Only windows that the events themselves close are compared: the last ones close by the
# wall clock, at moments that differ from run to run.
WINDOW_QUERY = """
    SELECT series, window, toUnixTimestamp64Milli(window_start), count, errors, values,
           round(sum, 6), min, max, p50, p95, p99, sketch_zeros, sketch_pos, sketch_neg
    FROM (SELECT * FROM vigil.windows FINAL) AS w
    INNER JOIN (
        SELECT partition, max(ts) - INTERVAL 5 SECOND AS watermark
        FROM vigil.events GROUP BY partition
    ) AS m ON m.partition = w.partition
    WHERE w.window_end <= m.watermark
"""


def _events() -> list[dict]:
    return simulated(N, seed=23, minutes=30)


async def _publish(settings, events) -> int:
    """Publish ``events``; returns how many envelopes (Kafka messages) carried them."""
    async with Client(settings) as pub:
        for event in events:
            assert pub.publish(event)
        assert await pub.flush(60)
        stats = pub.stats()
    assert stats["sent"] == len(events)
    return stats["envelopes"]


def _windows(data_dir: Path) -> tuple[list[tuple], tuple[int, int]]:
    with open_store(data_dir) as ch:
        rows = sorted(ch.query(WINDOW_QUERY).result_rows)
        raw = ch.query("SELECT count(), uniqExact(partition, offset, idx) FROM vigil.events")
        return rows, raw.result_rows[0]


def assert_same_windows(rows: list[tuple], expected: list[tuple], stores: dict, *workers) -> None:
    """``rows == expected`` (the decision: duplicates and order count), else a message
    short enough to read in CI's output (the lists are hundreds of rows): the windows
    missing, extra and different by (series, window, start), the raw rows flagged late
    in each of ``stores`` (name -> data dir; a window closed early by an idle partition
    counts its later events as late), and what the ``workers`` logged about idling and
    partitions changing hands."""
    if rows == expected:
        return
    have, want = _by_window(rows), _by_window(expected)
    differ = [(want[k], have[k]) for k in sorted(want.keys() & have.keys()) if want[k] != have[k]]
    late = {}
    for name, data_dir in stores.items():
        with open_store(data_dir) as ch:
            late[name] = ch.query(
                "SELECT partition, countIf(late), count() FROM vigil.events GROUP BY partition "
                "ORDER BY partition"
            ).result_rows
    raise AssertionError(
        f"{len(rows)} windows against {len(expected)}; "
        f"missing {sorted(want.keys() - have.keys())[:5]}; "
        f"extra {sorted(have.keys() - want.keys())[:5]}; "
        f"{len(differ)} differ, first {differ[:3]}; "
        f"late raw rows (partition, late, all): {late}\n" + "\n".join(handovers(*workers)[-40:])
    )


def _by_window(rows: list[tuple]) -> dict[tuple, list[tuple]]:
    """``rows`` by their (series, window, start), each key's rows in order."""
    out = collections.defaultdict(list)
    for r in rows:
        out[r[:3]].append(r)
    return out


def _unstored(data_dir: Path, log: list, *workers) -> str:
    """What is missing from the store's raw events, to read when the count is short: the
    envelopes of ``log`` not all of whose events are stored, as offset ranges per
    partition, and what the ``workers`` logged about taking partitions over and giving
    them up (where the raw rows were said to be stored to)."""
    with open_store(data_dir) as ch:
        stored = collections.Counter(
            (p, o) for p, o in ch.query("SELECT partition, offset FROM vigil.events").result_rows
        )
    short = collections.defaultdict(list)
    for r in log:
        if stored[(r.partition, r.offset)] != len(split(r.value)):
            short[r.partition].append(r.offset)
    ranges = {p: _ranges(offsets) for p, offsets in sorted(short.items())}
    return (
        f"every raw event stored exactly once: envelopes not stored in full, per partition: "
        f"{ranges}\n" + "\n".join(handovers(*workers)[-60:])
    )


def _ranges(offsets: list[int]) -> list[str]:
    """``[1, 2, 3, 7]`` as ``['1-3', '7-7']``."""
    out: list[list[int]] = []
    for o in sorted(offsets):
        if out and o == out[-1][1] + 1:
            out[-1][1] = o
        else:
            out.append([o, o])
    return [f"{a}-{b}" for a, b in out]


async def _reference(kafka_settings, start_worker, namespace: str, tmp_path, **env):
    """The simulated events published once, and one uninterrupted worker over them: its
    windows, the Kafka log it read (the other runs read a copy: the same envelopes in
    the same order), and its data dir."""
    settings = dataclasses.replace(kafka_settings, namespace=namespace)
    envelopes = await _publish(settings, _events())
    data = tmp_path / f"{namespace}-data"
    worker = start_worker(VIGIL_NAMESPACE=namespace, VIGIL_DATA_DIR=str(data), **{**WINDOWS, **env})
    worker.wait_until(lambda s: applied(s) >= envelopes, timeout=120)
    assert worker.stop() == 0
    rows, raw = _windows(data)
    assert raw == (N, N)
    assert len(rows) > 200
    return rows, await read_log(settings, envelopes), data


@pytest.mark.parametrize("checkpoint_seconds", ["0", "0.3"])
async def test_a_worker_killed_mid_stream_and_restarted_gives_the_same_windows(
    kafka_settings, start_worker, namespace, tmp_path, checkpoint_seconds
):
    """With a checkpoint after every batch, and every 0.3 s (the messages in between are
    held unacknowledged and replayed after the kill)."""
    expected, log, ref = await _reference(
        kafka_settings, start_worker, f"{namespace}-ref", tmp_path
    )

    settings = dataclasses.replace(kafka_settings, namespace=f"{namespace}-kill")
    envelopes = await append_log(settings, log)
    data = tmp_path / "kill-data"
    env = {
        "VIGIL_NAMESPACE": settings.namespace,
        "VIGIL_DATA_DIR": str(data),
        "VIGIL_CHECKPOINT_SECONDS": checkpoint_seconds,
        # Smaller batches than the reference run: windows must not depend on batching,
        # and the slower pace leaves room to kill before the end.
        "VIGIL_BATCH_MAX_MESSAGES": "4",
        **WINDOWS,
    }
    first = start_worker(**env)
    # After a checkpoint, before the end of the stream.
    killed_at = first.wait_until(lambda s: applied(s) > 0, timeout=120)
    assert killed_at.get("messages", 0) < envelopes, "the kill must come mid-stream"
    os.kill(first.proc.pid, signal.SIGKILL)  # mid-stream: no commit, no goodbye
    first.proc.wait()
    second = start_worker(**env)
    final = second.wait_until(lambda s: applied(s) >= envelopes, timeout=180)
    assert second.stop() == 0
    rows, raw = _windows(data)
    assert raw == (N, N), _unstored(data, log, first, second)
    assert 0 < final["valid"] < N, "the second worker resumed, it did not start over"
    # The restarted worker joins while the killed one is still in the group: when its
    # session times out, the partitions the new worker already holds are revoked and given
    # back to it in the same rebalance. Their state is checkpointed at the revoke, so it
    # resumes where the processing stopped (before that checkpoint, about one CI run in
    # seven resumed the last periodic checkpoint while the consumer went on past it, and
    # the messages between were missing from the windows).
    gaps = second.state_gaps()
    assert gaps == [] and final.get("state_gaps", 0) == 0, (gaps, handovers(first, second))
    assert_same_windows(rows, expected, {"reference": ref, "run": data}, first, second)
    # Offsets were committed as batches were stored: a third start has next to nothing
    # to replay (without commits it would replay every message).
    third = start_worker(**env)
    third.wait_until(lambda s: len(s.get("assigned", [])) == 4, timeout=60)
    # One more envelope per partition (copies of the last ones): once the third worker
    # has applied them, it has read everything before them, replays included.
    last = {r.partition: r for r in log}
    await append_log(settings, list(last.values()))
    done = third.wait_until(lambda s: applied(s) >= envelopes + len(last), timeout=60)
    replayed = done.get("replayed_messages", 0)
    assert third.stop() == 0
    assert replayed < envelopes // 4, (replayed, envelopes)


async def test_partitions_taken_away_mid_stream_and_given_back_give_the_same_windows(
    kafka_settings, start_worker, namespace, tmp_path
):
    """A rebalance mid-stream: a second worker joins (its store held by another process,
    so it consumes nothing) and takes half the partitions; the second half of the events
    arrives meanwhile; it leaves. The first worker drops their state at the revoke,
    reloads it from its checkpoints when they come back, replays what was processed
    since, and goes on: its windows equal an uninterrupted run's."""
    # No partition goes idle while the events wait: windows close by event time only.
    slow = {"VIGIL_IDLE_SECONDS": "3600"}
    expected, log, ref = await _reference(
        kafka_settings, start_worker, f"{namespace}-ref", tmp_path, **slow
    )
    per_partition = collections.Counter(r.partition for r in log)
    early = [r for r in log if r.offset < per_partition[r.partition] // 2]
    later = [r for r in log if r.offset >= per_partition[r.partition] // 2]

    settings = dataclasses.replace(kafka_settings, namespace=f"{namespace}-moved")
    envelopes = await append_log(settings, early)
    data = tmp_path / "moved-data"
    env = {
        "VIGIL_NAMESPACE": settings.namespace,
        "VIGIL_CHECKPOINT_SECONDS": "0.3",
        "VIGIL_BATCH_MAX_MESSAGES": "4",
        **WINDOWS,
        **slow,
    }
    first = start_worker(VIGIL_DATA_DIR=str(data), **env)
    first.wait_until(lambda s: applied(s) > 0, timeout=120)
    with held_store(tmp_path / "held"):
        second = start_worker(VIGIL_DATA_DIR=str(tmp_path / "held"), **env)
        first.wait_until(lambda s: len(s.get("assigned", [])) < 4, timeout=60)
        envelopes += await append_log(settings, later)

        def kept_up(stats: dict) -> bool:
            """The first worker has applied the whole log of each partition it kept."""
            held, done = stats.get("assigned", []), stats.get("processed", {})
            return bool(held) and all(done.get(str(p), -1) + 1 >= per_partition[p] for p in held)

        # The later events of the partitions it kept arrived while the others were away.
        first.wait_until(kept_up, timeout=60)
        assert second.stop() == 0
    first.wait_until(lambda s: len(s.get("assigned", [])) == 4, timeout=60)
    await wait_committed(settings, envelopes, timeout=180, state=first.stats)
    assert first.stop() == 0
    reloaded = re.findall(r"partition \d+ taken over: state at offset (\d+)", first.log())
    assert reloaded, "partitions came back and their state was reloaded from a checkpoint"
    assert first.state_gaps() == [], handovers(first)
    rows, raw = _windows(data)
    assert raw == (N, N), "every raw event stored exactly once"
    assert_same_windows(rows, expected, {"reference": ref, "run": data}, first, second)


async def test_two_workers_on_four_partitions_give_the_same_totals_as_one(
    kafka_settings, start_worker, namespace, tmp_path
):
    expected, log, ref = await _reference(
        kafka_settings, start_worker, f"{namespace}-one", tmp_path
    )

    settings = dataclasses.replace(kafka_settings, namespace=f"{namespace}-two")
    dirs = [tmp_path / "two-a", tmp_path / "two-b"]  # embedded chDB: one store per process
    workers = [
        start_worker(VIGIL_NAMESPACE=settings.namespace, VIGIL_DATA_DIR=str(d), **WINDOWS)
        for d in dirs
    ]
    # Both in the group before any event: no partition changes hands mid-stream.
    for w in workers:
        w.wait_until(lambda s: len(s.get("assigned", [])) > 0, timeout=60)
    envelopes = await append_log(settings, log)
    deadline = time.monotonic() + 180
    while sum(applied(w.stats() or {}) for w in workers) < envelopes:
        assert time.monotonic() < deadline, [w.stats() for w in workers]
        time.sleep(0.3)
    shares = [w.stats()["offsets"] for w in workers]
    for w in workers:
        assert w.stop() == 0
    assert all(shares) and not set(shares[0]) & set(shares[1]), shares
    rows, raws = [], []
    for d in dirs:
        part_rows, raw = _windows(d)
        rows += part_rows
        raws.append(raw[0])
    assert sum(raws) == N
    stores = {"reference": ref, **{f"worker {i}": d for i, d in enumerate(dirs)}}
    assert_same_windows(sorted(rows), expected, stores, *workers)
