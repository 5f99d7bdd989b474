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
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")


class SettingsError(ValueError):
    """An environment variable holds a value Vigil cannot use."""


def env_field(
    env: str, default: Any, parse: Callable[[str], Any] = str, *, secret: bool = False
) -> Any:
    """A dataclass field that :func:`from_env` fills from variable ``env``. A ``secret``
    one is left out of the settings' repr and of error messages."""
    return dataclasses.field(
        default=default, repr=not secret, metadata={"env": env, "parse": parse, "secret": secret}
    )


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
            if f.metadata.get("secret"):
                raise SettingsError(f"{name} (a secret, not shown) is not valid") from None
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


def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    """``a=1,b=2`` as ``(("a", "1"), ("b", "2"))``."""
    pairs = []
    for item in text.split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"expected name=value pairs separated by commas, got {item!r}")
        pairs.append((key.strip(), value.strip()))
    return tuple(pairs)


def _rates(text: str) -> tuple[tuple[str, float], ...]:
    rates = []
    for key, value in _pairs(text):
        rate = float(value)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"sampling rate of {key!r} must be between 0 and 1, got {value}")
        rates.append((key, rate))
    return tuple(rates)


def _privacy_mode(text: str) -> str:
    mode = text.strip().lower()
    if mode not in PRIVACY_MODES:
        raise ValueError(f"expected one of {', '.join(PRIVACY_MODES)}")
    return mode


def _compression(text: str) -> str:
    codec = text.strip().lower()
    if codec not in {"none", "gzip", "snappy", "lz4", "zstd"}:
        raise ValueError("expected none, gzip, snappy, lz4 or zstd")
    return codec


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        value = text.strip().upper()
        if value not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return value

    return parse


KAFKA_PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")

#: ``off``: ids as given; ``users``: user ids hashed; ``all``: user and session ids hashed.
PRIVACY_MODES = ("off", "users", "all")


@dataclass(frozen=True)
class KafkaSettings:
    """How every Kafka client (SDK, worker, Faust, admin) reaches Kafka, and the topics'
    names: what the worker needs."""

    #: ``host:port[,host:port]`` of a Kafka cluster; empty starts the embedded broker.
    kafka_bootstrap: str = env_field("VIGIL_KAFKA_BOOTSTRAP", "")
    #: Prefix of every topic, consumer group and table: isolates deployments and tests.
    namespace: str = env_field("VIGIL_NAMESPACE", "vigil")
    events_partitions: int = env_field("VIGIL_EVENTS_PARTITIONS", 4, _positive_int)
    #: How every Kafka client (SDK, worker, Faust, admin) connects: PLAINTEXT, SSL,
    #: SASL_PLAINTEXT or SASL_SSL; SASL with PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512.
    kafka_security_protocol: str = env_field(
        "VIGIL_KAFKA_SECURITY_PROTOCOL", "PLAINTEXT", _choice(*KAFKA_PROTOCOLS)
    )
    kafka_sasl_mechanism: str = env_field(
        "VIGIL_KAFKA_SASL_MECHANISM", "PLAIN", _choice(*SASL_MECHANISMS)
    )
    kafka_sasl_username: str = env_field("VIGIL_KAFKA_SASL_USERNAME", "")
    kafka_sasl_password: str = env_field("VIGIL_KAFKA_SASL_PASSWORD", "", secret=True)
    #: TLS: the CA that signed the brokers' certificates (else the system's), and the
    #: client's own certificate and key when the brokers ask for one.
    kafka_ssl_cafile: str = env_field("VIGIL_KAFKA_SSL_CAFILE", "")
    kafka_ssl_certfile: str = env_field("VIGIL_KAFKA_SSL_CERTFILE", "")
    kafka_ssl_keyfile: str = env_field("VIGIL_KAFKA_SSL_KEYFILE", "")

    @property
    def embedded_kafka(self) -> bool:
        return not self.kafka_bootstrap

    def kafka_options(self) -> dict[str, Any]:
        """Connection options for every aiokafka client (producer, consumer, admin)."""
        protocol = self.kafka_security_protocol
        out: dict[str, Any] = {"security_protocol": protocol}
        if "SSL" in protocol:
            out["ssl_context"] = self.ssl_context()
        if protocol.startswith("SASL"):
            out["sasl_mechanism"] = self.kafka_sasl_mechanism
            out["sasl_plain_username"] = self.kafka_sasl_username
            out["sasl_plain_password"] = self.kafka_sasl_password
        return out

    def ssl_context(self) -> ssl.SSLContext:
        from aiokafka.helpers import create_ssl_context

        context: ssl.SSLContext = create_ssl_context(
            cafile=self.kafka_ssl_cafile or None,
            certfile=self.kafka_ssl_certfile or None,
            keyfile=self.kafka_ssl_keyfile or None,
        )
        return context


@dataclass(frozen=True)
class ProducerSettings(KafkaSettings):
    """The SDK's settings: the connection, then how it batches and what it adds."""

    #: An envelope (one Kafka message) carries at most this many events ...
    envelope_max_events: int = env_field("VIGIL_ENVELOPE_MAX_EVENTS", 1000, _positive_int)
    #: ... and at most this many bytes.
    envelope_max_bytes: int = env_field("VIGIL_ENVELOPE_MAX_BYTES", 512 * 1024, _positive_int)
    #: How long a partly filled envelope waits for more events before it is sent.
    linger_ms: int = env_field("VIGIL_LINGER_MS", 50, int)
    #: Events buffered in the producer before new ones are dropped (and counted).
    queue_max_events: int = env_field("VIGIL_QUEUE_MAX_EVENTS", 100_000, _positive_int)
    #: none, gzip, snappy, lz4 or zstd (the last three need their Python library).
    compression: str = env_field("VIGIL_KAFKA_COMPRESSION", "none", _compression)
    #: Bound on each Kafka request and on each send; a slower broker counts as down.
    send_timeout_ms: int = env_field("VIGIL_SEND_TIMEOUT_MS", 10_000, _positive_int)
    # -- what the producer SDK adds to every event (see producers.client) --------------
    #: The ``service`` of events that do not name one.
    service: str = env_field("VIGIL_SERVICE", "app")
    #: Global tags, added to the tags (and so the series) of every event the SDK builds.
    environment: str = env_field("VIGIL_ENVIRONMENT", "")
    version: str = env_field("VIGIL_SERVICE_VERSION", "")
    host: str = env_field("VIGIL_HOST", "")
    tags: tuple[tuple[str, str], ...] = env_field("VIGIL_TAGS", (), _pairs)
    #: ``VIGIL_ENABLED=false`` turns every SDK call into a counted no-op.
    enabled: bool = env_field("VIGIL_ENABLED", True, parse_bool)
    #: Per-kind sampling rates, ``log=0.1,span=0.5``; ``workflow`` covers the workflow
    #: kinds and samples whole executions (by execution id), ``span`` whole traces.
    sampling: tuple[tuple[str, float], ...] = env_field("VIGIL_SAMPLING", (), _rates)
    #: Seconds between resource samples (CPU, memory, GPU); 0 turns the sampler off.
    resource_interval_s: float = env_field("VIGIL_RESOURCE_INTERVAL_S", 10.0, float)
    #: Publish the runtime (Python, platform, host, git revision, package versions) once
    #: at start, as one log line (``producers.runtime``).
    capture_runtime: bool = env_field("VIGIL_CAPTURE_RUNTIME", True, parse_bool)
    #: An automatic session (``producers.usage``) ends after this long without a use.
    session_idle_s: float = env_field("VIGIL_SESSION_IDLE_S", 1800.0, float)
    privacy_mode: str = env_field("VIGIL_PRIVACY_MODE", "users", _privacy_mode)
    #: Key of the user/session id hash. Without one, a random key per process is used:
    #: ids stay private but cannot be joined across processes.
    privacy_secret: str = env_field("VIGIL_PRIVACY_SECRET", "", secret=True)
    #: Strict mode raises InvalidEvent at the call site instead of counting and dropping.
    strict: bool = env_field("VIGIL_STRICT", False, parse_bool)

    def global_tags(self) -> dict[str, str]:
        """The tags every SDK event carries: environment, version, host, then VIGIL_TAGS."""
        tags = {"environment": self.environment, "version": self.version, "host": self.host}
        out = {k: v for k, v in tags.items() if v}
        out.update(self.tags)
        return out
