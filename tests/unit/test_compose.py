from pathlib import Path

import yaml

from vigil.config import known_variables

ROOT = Path(__file__).resolve().parents[2]


def _vigil_vars(node, found):
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str) and key.startswith("VIGIL_"):
                found.add(key)
            _vigil_vars(value, found)
    elif isinstance(node, list):
        for item in node:
            _vigil_vars(item, found)
    return found


def test_every_vigil_variable_in_compose_is_read_by_the_settings():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    used = _vigil_vars(compose, set())
    assert "VIGIL_KAFKA_BOOTSTRAP" in used and "VIGIL_CLICKHOUSE_DSN" in used
    assert used - known_variables() == set()


def test_compose_points_workers_at_real_kafka_and_clickhouse():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert {"kafka", "clickhouse", "worker", "producer"} <= set(compose["services"])
    env = compose["services"]["worker"]["environment"]
    assert env["VIGIL_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert env["VIGIL_CLICKHOUSE_DSN"].startswith("http://")
