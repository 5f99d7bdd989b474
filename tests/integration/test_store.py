import collections

import orjson
import pytest

from sinks import migrations
from sinks.settings import StoreSettings
from sinks.store import open_client

pytestmark = pytest.mark.integration


def test_migrations_apply_once_and_a_second_run_changes_nothing(tmp_path):
    client = open_client(StoreSettings(data_dir=tmp_path), migrate=False)
    try:
        first = migrations.apply(client, database="vigil", retention_days=90)
        schema = client.query(
            "SELECT name, create_table_query FROM system.tables "
            "WHERE database = 'vigil' ORDER BY name"
        ).result_rows
        second = migrations.apply(client, database="vigil", retention_days=90)
        assert first == [m.version for m in migrations.load()] and second == []
        assert (
            client.query(
                "SELECT name, create_table_query FROM system.tables "
                "WHERE database = 'vigil' ORDER BY name"
            ).result_rows
            == schema
        )
        assert {"events", "windows", "schema_migrations"} <= {row[0] for row in schema}
    finally:
        client.close()


def test_a_database_name_that_is_not_an_identifier_is_refused(tmp_path):
    client = open_client(StoreSettings(data_dir=tmp_path), migrate=False)
    try:
        with pytest.raises(migrations.MigrationError, match="not a plain identifier"):
            migrations.apply(client, database="x; DROP TABLE y", retention_days=1)
    finally:
        client.close()


def test_a_second_process_on_the_same_chdb_path_gets_a_clear_error(tmp_path):
    import subprocess
    import sys

    client = open_client(StoreSettings(data_dir=tmp_path))
    try:
        code = (
            "from pathlib import Path\n"
            "from sinks.settings import StoreSettings\n"
            "from sinks.store import open_client, StoreError\n"
            f"try:\n    open_client(StoreSettings(data_dir=Path({str(tmp_path)!r})))\n"
            "except StoreError as e:\n    print('refused:', e)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
        assert "refused:" in out.stdout and "one process" in out.stdout
    finally:
        client.close()


def test_a_replayed_offset_range_is_stored_once_in_every_table_and_rollup(tmp_path):
    """The writer stores a batch, then stores it again (an insert whose acknowledgement was
    lost is retried): raw rows, the views' tables and the rollups hold it once."""
    import asyncio
    import time

    from sinks.writer import ClickHouseSink
    from tests.history_data import generate, processed

    h = generate(now_ms=int(time.time() // 60 * 60_000))
    results = processed(h)
    tables = (
        "events", "executions", "spans", "logs", "feature_calls", "windows", "alerts",
        "anomaly_scores",
    )  # fmt: skip

    stored_alerts = []

    async def write(times: int) -> None:
        sink = ClickHouseSink(StoreSettings(data_dir=tmp_path))
        await sink.start()
        try:
            for _ in range(times):
                for result in results:
                    await sink.write(result)
            stored_alerts.append(await sink.stored_alerts("c/t"))
            assert await sink.stored_alerts("another/log") == {}
        finally:
            await sink.close()

    def counts(client):
        out = {t: client.query(f"SELECT count() FROM vigil.{t}").result_rows[0][0] for t in tables}
        out["series_daily"] = client.query(
            "SELECT sum(count), sum(errors) FROM vigil.series_daily"
        ).result_rows[0]
        out["workflow_daily"] = client.query(
            "SELECT sum(runs), sum(steps), sum(recoveries) FROM vigil.workflow_daily"
        ).result_rows[0]
        return out

    asyncio.run(write(1))
    client = open_client(StoreSettings(data_dir=tmp_path))
    try:
        once = counts(client)
    finally:
        client.close()
    asyncio.run(write(2))
    client = open_client(StoreSettings(data_dir=tmp_path))
    try:
        assert counts(client) == once
    finally:
        client.close()
    assert once["events"] == len(h.events) and once["series_daily"][0] == len(h.events)
    assert once["executions"] == len(h.of("execution.end")) and once["spans"] == 4
    assert once["alerts"] == len(h.alerts) > 0
    highest = collections.defaultdict(int)
    for a in h.alerts:
        highest[a.partition] = max(highest[a.partition], a.seq)
    assert stored_alerts == [dict(highest)] * 2  # what a worker taking over skips
    assert once["anomaly_scores"] == len(h.scores) > 0


def test_a_batch_of_several_partitions_is_one_insert_stored_once_and_never_mistaken(tmp_path):
    """The raw rows of every partition in a batch go in one insert: two batches over the
    same partitions (each partition's earlier offsets, then its later ones), each written
    twice (a retry), leave every event stored exactly once."""
    import asyncio
    import time

    from sinks.writer import ClickHouseSink
    from streams.records import BatchResult, RawBatch
    from tests.history_data import generate, processed

    h = generate(now_ms=int(time.time() // 60 * 60_000))
    halves: list[BatchResult] = [BatchResult(source="c/t"), BatchResult(source="c/t")]
    expected = set()
    for result in processed(h):
        for p, raw in result.raw.items():
            rows = [(r[2], r) for r in raw.rows]  # (offset, row): a RawRow's third item
            middle = (raw.first + raw.last) // 2
            for half, later in zip(halves, (False, True), strict=True):
                mine = [(o, r) for o, r in rows if (o > middle) == later]
                if mine:
                    batch = RawBatch(p, mine[0][0], mine[-1][0], [r for _, r in mine])
                    half.raw[p] = batch
            expected |= {(p, offset, index) for _, _, offset, index, _ in raw.rows}
    assert all(len(half.raw) > 1 for half in halves)  # several partitions in each insert

    async def write() -> dict:
        sink = ClickHouseSink(StoreSettings(data_dir=tmp_path))
        await sink.start()
        try:
            for half in [*halves, *halves]:
                await sink.write(half)
            return dict(sink.counts)
        finally:
            await sink.close()

    counts = asyncio.run(write())
    assert counts["inserts"] == 4  # one a batch, not one a partition
    client = open_client(StoreSettings(data_dir=tmp_path))
    try:
        stored = client.query("SELECT partition, offset, idx FROM vigil.events").result_rows
    finally:
        client.close()
    assert len(stored) == len(set(stored))  # nothing twice
    assert set(stored) == expected  # nothing missing, nothing extra


def test_every_raw_event_is_stored_with_every_field_as_it_was_sent(tmp_path):
    """Raw rows go in as the columns of an Arrow stream: every event of a varied history,
    and events whose text needs escaping, with nested attributes, extreme numbers and
    absent fields, come back from the table field for field, compared both ways (nothing
    missing, nothing extra)."""
    import time

    from producers.events import series_key
    from tests.history_data import generate, store_history

    h = generate(now_ms=int(time.time() // 60 * 60_000))
    at = h.now_ms - 60_000
    h.events += [
        {"kind": "log", "ts": at, "service": "s", "name": "n", "level": "error",
         "message": 'two\nlines, "quoted" \\ é 中文 🙂\t'},
        {"kind": "metric", "ts": at + 1, "service": "s", "name": "m", "value": 1e-7,
         "tags": {"q": 'a"b', "é": "\n"}},
        {"kind": "metric", "ts": at + 2, "service": "s", "name": "m", "value": -0.0, "tags": {}},
        {"kind": "metric", "ts": at + 3, "service": "s", "name": "m",
         "value": 1.7976931348623157e308},
        {"kind": "error", "ts": at + 4, "service": "s", "name": "e", "message": "",
         "attrs": {"f": 0.1, "big": 2**63 - 1, "neg": -(2**63), "none": None,
                   "list": [1, "x", None, True, {"tiny": 1.5e-300}], "text": "é\\u0000"}},
        {"kind": "log", "ts": at + 5, "service": "s", "name": "n", "message": "m", "attrs": {}},
        {"kind": "execution.end", "ts": at + 6, "service": "s", "name": "w",
         "execution_id": "e1", "ok": False, "value": 12.5, "status": "failed"},
        {"kind": "span", "ts": at + 7, "service": "s", "name": "sp", "trace_id": "t" * 32,
         "span_id": "s" * 16, "parent_id": "p" * 16, "value": 3, "ok": True},
    ]  # fmt: skip
    store_history(h, tmp_path)
    text = (
        "status", "execution_id", "step", "trace_id", "span_id", "parent_id", "level", "message",
    )  # fmt: skip

    def canonical(value) -> str:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()

    def sent(e: dict) -> tuple:
        value = e.get("value")
        return (
            e["kind"], e["service"], e["name"], e["ts"],
            None if value is None else float(value), e.get("ok"),
            *(e.get(k) or "" for k in text),
            canonical(e.get("tags") or {}), canonical(e.get("attrs")),
            series_key({**e, "tags": e.get("tags") or {}}),
        )  # fmt: skip

    client = open_client(StoreSettings(data_dir=tmp_path))
    try:
        stored = client.query(
            "SELECT kind, service, name, toUnixTimestamp64Milli(ts), value, ok, "
            f"{', '.join(text)}, tags, attrs, series FROM vigil.events"
        ).result_rows
    finally:
        client.close()
    got = [
        (*row[:-3], canonical(row[-3]), canonical(orjson.loads(row[-2]) if row[-2] else None),
         row[-1])
        for row in stored
    ]  # fmt: skip
    expected = [sent(e) for e in h.events]
    assert len(got) == len(expected) > 100
    assert sorted(map(repr, got)) == sorted(map(repr, expected))


def test_views_created_by_a_migration_are_backfilled_from_rows_already_stored(
    tmp_path, monkeypatch
):
    import time

    shipped = migrations.load()
    client = open_client(StoreSettings(data_dir=tmp_path), migrate=False)
    try:
        monkeypatch.setattr(migrations, "load", lambda: [m for m in shipped if m.version <= 5])
        migrations.apply(client, database="vigil", retention_days=90)
        ts = time.time()
        line = orjson.dumps(
            {
                "kind": "execution.end",
                "ts": ts,
                "service": "s",
                "name": "wf",
                "execution_id": "e1",
                "ok": False,
                "status": "failed",
                "value": 12.5,
                "attrs": {"steps_done": 1, "recoveries": 2},
                "series": "execution.end|s|wf",
                "source": "a",
                "partition": 0,
                "offset": 1,
                "idx": 0,
            }
        )
        client.raw_insert("vigil.events", None, line, fmt="JSONEachRow")
        monkeypatch.setattr(migrations, "load", lambda: shipped)
        assert migrations.apply(client, database="vigil", retention_days=90) == [
            m.version for m in shipped if m.version > 5
        ]
        assert client.query(
            "SELECT execution_id, ok, duration_ms, steps_done, recoveries FROM vigil.executions"
        ).result_rows == [("e1", False, 12.5, 1, 2)]
        assert client.query(
            "SELECT sum(runs), sum(failures), avgMerge(avg_ms) FROM vigil.workflow_daily"
        ).result_rows == [(1, 1, 12.5)]
    finally:
        client.close()
