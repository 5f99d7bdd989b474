"""Vigil's producer SDK: instrument services and workflow engines.

>>> import producers
>>> sorted(n for n in producers.__all__ if n[0].isupper())
['Alert', 'Client', 'InvalidEvent', 'ProducerSettings', 'SyncClient']
"""

from producers.alerts import Alert, subscribe_alerts
from producers.client import Client, SyncClient
from producers.decorators import (
    install,
    installed,
    monitor_performance,
    track_errors,
    track_usage,
    track_workflow,
)
from producers.events import InvalidEvent
from producers.settings import ProducerSettings
from producers.tracing import current_span, inject
from producers.usage import session
from producers.workflows import current_execution

__all__ = [
    "Alert",
    "Client",
    "InvalidEvent",
    "ProducerSettings",
    "SyncClient",
    "current_execution",
    "current_span",
    "inject",
    "install",
    "installed",
    "monitor_performance",
    "session",
    "subscribe_alerts",
    "track_errors",
    "track_usage",
    "track_workflow",
]
