"""Settings of a stream worker."""

from __future__ import annotations

from dataclasses import dataclass

from producers.settings import env_field


@dataclass(frozen=True)
class WorkerSettings:
    window_seconds: int = env_field("VIGIL_WINDOW_SECONDS", 60, int)
    grace_seconds: int = env_field("VIGIL_GRACE_SECONDS", 30, int)
    #: A batch is at most this many envelopes (Kafka messages) ...
    batch_max_messages: int = env_field("VIGIL_BATCH_MAX_MESSAGES", 20, int)
    #: ... or what arrived within this many seconds.
    batch_seconds: float = env_field("VIGIL_BATCH_SECONDS", 0.5, float)
    web_host: str = env_field("VIGIL_WEB_HOST", "127.0.0.1")
    web_port: int = env_field("VIGIL_WEB_PORT", 6066, int)
    log_level: str = env_field("VIGIL_LOG_LEVEL", "warning")
