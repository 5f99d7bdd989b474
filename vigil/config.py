"""The one place that reads the environment: every package's settings, built together."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from producers.settings import ProducerSettings, env_names, from_env
from sinks.scheduled import ScheduleSettings
from sinks.settings import ChServerSettings, HistoryClientSettings, StoreSettings
from streams.settings import WorkerSettings
from vigil.otlp import OtlpSettings


@dataclass(frozen=True)
class Config:
    kafka: ProducerSettings
    worker: WorkerSettings
    store: StoreSettings
    schedule: ScheduleSettings

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Config:
        return cls(
            kafka=from_env(ProducerSettings, environ),
            worker=from_env(WorkerSettings, environ),
            store=from_env(StoreSettings, environ),
            schedule=from_env(ScheduleSettings, environ),
        )


def known_variables() -> set[str]:
    """Every VIGIL_* variable that some settings class reads."""
    classes = (
        ProducerSettings,
        WorkerSettings,
        StoreSettings,
        ChServerSettings,
        HistoryClientSettings,
        OtlpSettings,
        ScheduleSettings,
    )
    return set().union(*(env_names(c) for c in classes))
