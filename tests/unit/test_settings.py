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
