"""Settings read from the environment, one frozen dataclass per package.

Every field that can be set from the environment declares its variable with
:func:`env_field`; :func:`from_env` is the only place that reads them, and
:func:`env_names` lists them (a test checks docker-compose.yml against it).

>>> s = from_env(ProducerSettings, {"VIGIL_EVENTS_PARTITIONS": "8"})
>>> s.events_partitions, s.embedded_kafka
(8, True)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


class SettingsError(ValueError):
    """An environment variable holds a value Vigil cannot use."""


def env_field(env: str, default: Any, parse: Callable[[str], Any] = str) -> Any:
    """A dataclass field that :func:`from_env` fills from variable ``env``."""
    return dataclasses.field(default=default, metadata={"env": env, "parse": parse})


def parse_bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true/false, got {text!r}")


def from_env(cls: type[T], environ: Mapping[str, str]) -> T:
    """Build ``cls`` from ``environ``; empty variables count as unset."""
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        name = f.metadata.get("env")
        raw = environ.get(name, "") if name else ""
        if not raw:
            continue
        try:
            kwargs[f.name] = f.metadata["parse"](raw)
        except ValueError as exc:
            raise SettingsError(f"{name}={raw!r} is not valid: {exc}") from None
    return cls(**kwargs)


def env_names(cls: type) -> set[str]:
    """The environment variables ``cls`` reads."""
    return {f.metadata["env"] for f in dataclasses.fields(cls) if "env" in f.metadata}


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


@dataclass(frozen=True)
class ProducerSettings:
    """How producers and workers reach Kafka and name the topics."""

    #: ``host:port[,host:port]`` of a Kafka cluster; empty starts the embedded broker.
    kafka_bootstrap: str = env_field("VIGIL_KAFKA_BOOTSTRAP", "")
    #: Prefix of every topic, consumer group and table: isolates deployments and tests.
    namespace: str = env_field("VIGIL_NAMESPACE", "vigil")
    events_partitions: int = env_field("VIGIL_EVENTS_PARTITIONS", 4, _positive_int)
    #: An envelope (one Kafka message) carries at most this many events ...
    envelope_max_events: int = env_field("VIGIL_ENVELOPE_MAX_EVENTS", 500, _positive_int)
    #: ... and at most this many bytes.
    envelope_max_bytes: int = env_field("VIGIL_ENVELOPE_MAX_BYTES", 512 * 1024, _positive_int)
    #: How long a partly filled envelope waits for more events before it is sent.
    linger_ms: int = env_field("VIGIL_LINGER_MS", 50, int)
    #: Events buffered in the producer before new ones are dropped (and counted).
    queue_max_events: int = env_field("VIGIL_QUEUE_MAX_EVENTS", 100_000, _positive_int)
    compression: str = env_field("VIGIL_KAFKA_COMPRESSION", "none")

    @property
    def embedded_kafka(self) -> bool:
        return not self.kafka_bootstrap
