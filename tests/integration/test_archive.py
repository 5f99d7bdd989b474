"""``vigil archive`` on chDB: old day partitions go to Parquet and come back unchanged,
without counting anything twice in the rollups."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from sinks import archive
from tests.conftest import open_store
from tests.history_data import HOUR, generate, store_history

pytestmark = pytest.mark.integration

COUNTED = ("events", "executions", "spans", "logs", "feature_calls", "windows")


def snapshot(client):
    out = {}
    for table in COUNTED:
        out[table] = client.query(
            f"SELECT toDate(_partition_value.1) AS day, count(), sum(cityHash64(*)) "
            f"FROM vigil.{table} GROUP BY day ORDER BY day"
        ).result_rows
    out["series_daily"] = client.query(
        "SELECT day, sum(count), sum(errors) FROM vigil.series_daily GROUP BY day ORDER BY day"
    ).result_rows
    out["workflow_daily"] = client.query(
        "SELECT day, sum(runs) FROM vigil.workflow_daily GROUP BY day ORDER BY day"
    ).result_rows
    return out


def test_old_partitions_go_to_parquet_and_come_back_whole(tmp_path):
    now_ms = int(time.time() // 60 * 60_000)
    old = generate(now_ms=now_ms - 5 * 24 * HOUR, seed=3)
    new = generate(now_ms=now_ms, seed=4)
    data_dir = tmp_path / "data"
    store_history(old, data_dir, source="old/t")
    store_history(new, data_dir, source="new/t")
    cutoff = (datetime.fromtimestamp(now_ms / 1000, UTC) - timedelta(days=2)).date()
    old_days = {datetime.fromtimestamp(e["ts"] / 1000, UTC).date() for e in old.events}

    with open_store(data_dir) as client:
        before = snapshot(client)
        assert {d for d, *_ in before["events"]} >= old_days
        done = archive.export(client, "vigil", cutoff, tmp_path / "archive")
        assert {(e.table, e.partition) for e in done} >= {
            ("events", d.strftime("%Y%m%d")) for d in old_days
        }
        assert sum(e.rows for e in done if e.table == "events") == len(old.events)
        after = snapshot(client)
        for table in COUNTED:
            assert all(day >= cutoff for day, *_ in after[table]), table
            assert after[table] == [r for r in before[table] if r[0] >= cutoff], table
        # rollups keep the archived days
        assert after["series_daily"] == before["series_daily"]
        assert after["workflow_daily"] == before["workflow_daily"]
        assert archive.export(client, "vigil", cutoff, tmp_path / "archive") == []

    files = sorted(p.name for p in (tmp_path / "archive" / "events").iterdir())
    assert files == sorted(f"{d:%Y%m%d}.parquet" for d in old_days)

    # restored through the command line, as a person would
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "vigil.cli",
            "archive",
            "--restore",
            "--dir",
            str(tmp_path / "archive"),
        ],
        env={"VIGIL_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert f"restored events/{min(old_days):%Y%m%d}" in out.stdout
    with open_store(data_dir) as client:
        assert snapshot(client) == before  # same rows, rollups not counted twice


def test_a_file_that_does_not_match_its_manifest_is_refused(tmp_path):
    now_ms = int(time.time() // 60 * 60_000)
    data_dir = tmp_path / "data"
    store_history(generate(now_ms=now_ms - 4 * 24 * HOUR, seed=5), data_dir)
    cutoff = (datetime.fromtimestamp(now_ms / 1000, UTC) - timedelta(days=2)).date()
    with open_store(data_dir) as client:
        done = archive.export(client, "vigil", cutoff, tmp_path / "archive")
        damaged = tmp_path / "archive" / done[0].file
        damaged.write_bytes(damaged.read_bytes()[:-10])
        with pytest.raises(archive.ArchiveError, match="does not match its checksum"):
            archive.restore(client, "vigil", tmp_path / "archive")
