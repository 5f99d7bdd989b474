from pathlib import Path

import pytest

from producers.settings import ProducerSettings, SettingsError, env_names, from_env
from sinks.settings import StoreSettings
from vigil.config import Config


def test_defaults_mean_embedded_parts():
    c = Config.from_env({})
    assert c.kafka.embedded_kafka and c.store.embedded
    assert c.store.dsn.startswith("chdb://") and c.store.dsn.endswith("/.vigil/chdb")


def test_real_kafka_and_clickhouse_turn_embedded_parts_off():
    c = Config.from_env(
        {"VIGIL_KAFKA_BOOTSTRAP": "k:9092", "VIGIL_CLICKHOUSE_DSN": "http://u:p@ch:8123"}
    )
    assert not c.kafka.embedded_kafka and not c.store.embedded


def test_a_bad_value_names_the_variable():
    with pytest.raises(SettingsError, match="VIGIL_EVENTS_PARTITIONS='zero'"):
        from_env(ProducerSettings, {"VIGIL_EVENTS_PARTITIONS": "zero"})
    with pytest.raises(SettingsError, match="positive"):
        from_env(ProducerSettings, {"VIGIL_EVENTS_PARTITIONS": "0"})


def test_env_names_lists_what_is_read():
    assert {"VIGIL_CLICKHOUSE_DSN", "VIGIL_DATA_DIR"} <= env_names(StoreSettings)
    s = from_env(StoreSettings, {"VIGIL_DATA_DIR": "/tmp/x"})
    assert s.data_dir == Path("/tmp/x")


def test_the_worker_refuses_one_port_for_its_api_and_its_sql(tmp_path):
    import subprocess
    import sys

    def worker(**env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "vigil.cli", "worker"],
            env={"PATH": "/usr/bin:/bin", "VIGIL_DATA_DIR": str(tmp_path), **env},
            capture_output=True,
            text=True,
            timeout=60,
        )

    done = worker(VIGIL_WEB_PORT="18123", VIGIL_SQL_PORT="18123")
    assert done.returncode == 2
    assert "VIGIL_WEB_PORT and VIGIL_SQL_PORT are both 18123" in done.stderr
    from vigil.worker import _port_clash

    def clash(**env: str) -> str | None:
        return _port_clash(Config.from_env({"VIGIL_WEB_PORT": "18123", **env}))

    assert clash(VIGIL_SQL_PORT="18123") is not None
    assert clash(VIGIL_SQL_PORT="18124") is None
    assert clash(VIGIL_SQL_PORT="off") is None
    # A ClickHouse server answers SQL itself: the worker serves none, so no clash.
    assert clash(VIGIL_SQL_PORT="18123", VIGIL_CLICKHOUSE_DSN="http://u:p@ch:8123") is None
