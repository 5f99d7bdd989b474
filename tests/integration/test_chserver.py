"""``sinks.chserver``: clickhouse-connect's HTTP client against a chDB directory served
by another process, as against a ClickHouse server."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

import clickhouse_connect
import pytest
from clickhouse_connect.driver.exceptions import DatabaseError

from sinks.queries import ReadOnly
from tests.conftest import SharedStore

pytestmark = pytest.mark.integration


def _client(server: SharedStore, **kwargs):
    return clickhouse_connect.get_client(host="127.0.0.1", port=server.port, **kwargs)


def test_inserts_queries_and_errors_go_through_as_with_a_server(shared_store):
    ch = _client(shared_store)  # compresses inserts (lz4) and streams them chunked
    ch.command("CREATE DATABASE IF NOT EXISTS t")
    ch.command(
        "CREATE TABLE t.kv (k UInt32, v String, b String) ENGINE = MergeTree ORDER BY k "
        "SETTINGS non_replicated_deduplication_window = 100"
    )
    rows = [[i, f"value {i}", bytes([0x8A, i % 256])] for i in range(1000)]
    for _ in range(2):  # the same token twice: stored once, as on a server
        ch.insert(
            "t.kv", rows, column_names=["k", "v", "b"],
            settings={"insert_deduplication_token": "batch-1"},
        )  # fmt: skip
    ch.raw_insert("t.kv", None, b'{"k":5000,"v":"json","b":""}\n', fmt="JSONEachRow")
    assert ch.command("SELECT count() FROM t.kv") == 1001
    found = ch.query(
        "SELECT k, v, b FROM t.kv WHERE k BETWEEN {lo:UInt32} AND {hi:UInt32} ORDER BY k",
        parameters={"lo": 10, "hi": 12},
        column_formats={"b": "bytes"},
    ).result_rows
    assert found == [(i, f"value {i}", bytes([0x8A, i])) for i in (10, 11, 12)]
    with pytest.raises(DatabaseError, match="Code: 60"):
        ch.query("SELECT * FROM t.nowhere")
    # A setting of one request does not stay for the next (one connection serves all).
    with pytest.raises(DatabaseError, match="Code: 396"):
        ch.query(
            "SELECT k FROM t.kv", settings={"max_result_rows": 10, "result_overflow_mode": "throw"}
        )
    assert len(ch.query("SELECT k FROM t.kv").result_rows) == 1001
    for statement in ("SET max_result_rows = 1", "USE t"):  # would outlive the request
        with pytest.raises(DatabaseError, match="Code: 48"):
            ch.command(statement)
    assert len(ch.query("SELECT k FROM kv", settings={"database": "t"}).result_rows) == 1001


def test_readonly_requests_read_and_cannot_write(shared_store):
    ch = _client(shared_store)
    ch.command("CREATE TABLE default.ro (k UInt32) ENGINE = MergeTree ORDER BY k")
    ch.command("INSERT INTO default.ro SELECT number FROM numbers(5)")
    for statement in ("INSERT INTO default.ro SELECT 9", "DROP TABLE default.ro"):
        with pytest.raises(DatabaseError, match="Code: 164"):
            ch.command(statement, settings={"readonly": 1})
    with pytest.raises(DatabaseError, match="Code: 164"):
        ch.insert("default.ro", [[7]], column_names=["k"], settings={"readonly": 1})
    reader = ReadOnly(ch, "default")  # Vigil's history queries: readonly=1 on each SELECT
    assert reader.execute("count", "SELECT count() AS n FROM default.ro", {}) == [{"n": 5}]


def test_vigil_opens_its_store_there_and_sees_one_schema(shared_store):
    with shared_store.client() as ch:  # migrations applied through HTTP
        tables = ch.query(
            "SELECT name FROM system.tables WHERE database = 'vigil' ORDER BY name"
        ).result_rows
    with shared_store.client() as again:  # a second process's view: already up to date
        assert (
            again.query(
                "SELECT name FROM system.tables WHERE database = 'vigil' ORDER BY name"
            ).result_rows
            == tables
        )
    assert {"events", "windows", "alerts", "worker_state"} <= {t for (t,) in tables}


def test_a_password_is_required_once_set(tmp_path, monkeypatch):
    monkeypatch.setenv("VIGIL_CHSERVER_PASSWORD", "s3cret")
    with SharedStore(tmp_path / "locked", log_path=tmp_path / "locked.log") as server:
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{server.dsn}/?query=SELECT%201", timeout=10)
        assert refused.value.code == 401
        with pytest.raises(DatabaseError, match="516"):
            _client(server, password="wrong")
        assert _client(server, password="s3cret").command("SELECT 41 + 1") == 42
        assert "s3cret" not in server.log_path.read_text()


def test_an_address_past_loopback_needs_a_password(tmp_path):
    """Refused before it binds anything."""
    command = [sys.executable, "-m", "vigil.cli", "chserver", "--host", "0.0.0.0"]
    env = {k: v for k, v in os.environ.items() if k != "VIGIL_CHSERVER_PASSWORD"}
    done = subprocess.run(
        [*command, "--path", str(tmp_path / "c"), "--port", "0"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "refusing to serve 0.0.0.0 without VIGIL_CHSERVER_PASSWORD" in done.stderr


def test_without_a_path_it_serves_the_chdb_of_vigil_data_dir(tmp_path):
    """As its help says: ``$VIGIL_DATA_DIR/chdb`` (it once served ``.vigil/chdb`` of the
    working directory whatever the variable said)."""
    data, cwd, port_file = tmp_path / "data", tmp_path / "cwd", tmp_path / "port"
    cwd.mkdir()
    env = {**os.environ, "VIGIL_DATA_DIR": str(data), "VIGIL_LOG_FORMAT": "text"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [os.getcwd(), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "vigil.cli", "chserver", "--port", "0"]
    proc = subprocess.Popen(
        [*command, "--port-file", str(port_file)],
        cwd=cwd, env=env, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not port_file.exists() or not port_file.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
            time.sleep(0.1)
        url = f"http://127.0.0.1:{port_file.read_text()}/?query=SELECT%2042"
        with urllib.request.urlopen(url, timeout=10) as reply:
            assert reply.read() == b"42\n"
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert f"chDB at {data.resolve() / 'chdb'} served" in err
    assert (data / "chdb").is_dir() and not (cwd / ".vigil").exists()
