"""What a channel sends, and when: Alertmanager's webhook body or an Apprise message made
from the channel's templates, for groups of transitions (:class:`Grouper`).

Pure: nothing here sends anything, and time is an argument. ``streams.channels`` does the
sending, with its queue and retries.

A group is the transitions of one channel whose labels agree on the channel's
``group_by`` (by default the rule): the first one opens it, and ``group_wait`` later every
transition that joined meanwhile goes out in one message (ten series firing together are
one notification). While an alert of a group is still firing, the group is sent again
every ``repeat_interval`` (0: never), as Alertmanager reminds.

>>> g = Grouper(group_by=("alertname",), wait_ms=30_000, repeat_ms=3_600_000)
>>> for series in ("a", "b"):
...     g.add(_example(series, "firing"), now_ms=0)
>>> g.due(now_ms=10_000)
[]
>>> [[a.series for a in group] for group in g.due(now_ms=30_000)]
[['a', 'b']]
>>> g.add(_example("a", "resolved"), now_ms=60_000)
>>> [[(a.series, a.state) for a in group] for group in g.due(now_ms=90_000)]
[[('a', 'resolved')]]
>>> g.due(now_ms=30_000 + 3_600_000)  # an hour after b was sent, but a was sent since
[]
>>> [[a.series for a in group] for group in g.due(now_ms=90_000 + 3_600_000)]  # reminder
[['b']]
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from producers.alerts import Alert

#: The placeholders of a channel's ``title`` and ``body`` templates.
FIELDS = (
    "status",
    "rule",
    "severity",
    "series",
    "service",
    "value",
    "threshold",
    "summary",
    "link",
    "count",
)
DEFAULT_TITLE = "[{status}] {rule} on {series}"
DEFAULT_BODY = "{summary}\nseverity {severity}, value {value} (threshold {threshold})\n{link}"
#: Alertmanager's "no end yet".
_NO_END = "0001-01-01T00:00:00Z"


def link(alert: Alert, external_url: str) -> str:
    """The dashboard's series view of the alert (empty without ``VIGIL_EXTERNAL_URL``).

    >>> link(_example("metric|api|latency_ms", "firing"), "http://vigil:8080/")
    'http://vigil:8080/dashboard#series=metric%7Capi%7Clatency_ms'
    """
    if not external_url:
        return ""
    return f"{external_url.rstrip('/')}/dashboard#series={quote(alert.series, safe='')}"


def fields(alert: Alert, external_url: str, count: int = 1) -> dict[str, str]:
    """The template placeholders' values for ``alert``."""
    value = "n/a" if alert.value is None else f"{alert.value:g}"
    summary = alert.annotations.get("summary") or f"{alert.rule} is {alert.state}"
    return {
        "status": alert.state,
        "rule": alert.rule,
        "severity": alert.severity,
        "series": alert.series,
        "service": alert.service,
        "value": value,
        "threshold": f"{alert.threshold:g}",
        "summary": summary,
        "link": link(alert, external_url),
        "count": str(count),
    }


def check_template(text: str) -> None:
    """Raises ValueError when ``text`` names a placeholder that is not in :data:`FIELDS`."""
    try:
        text.format(**dict.fromkeys(FIELDS, ""))
    except (KeyError, IndexError) as exc:
        known = ", ".join(FIELDS)
        raise ValueError(f"unknown placeholder {exc}; expected one of {known}") from None
    except ValueError as exc:
        raise ValueError(f"not a template: {exc}") from None


def message(alerts: list[Alert], *, title: str, body: str, external_url: str) -> tuple[str, str]:
    """An Apprise title and body: the title from the first alert (``{count}`` says how
    many), the body one block per alert."""
    head = title.format(**fields(alerts[0], external_url, len(alerts)))
    blocks = [body.format(**fields(a, external_url, len(alerts))) for a in alerts]
    return head, "\n\n".join(b.strip() for b in blocks)


def _iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def alertmanager(
    alerts: list[Alert], *, receiver: str, group_by: tuple[str, ...], external_url: str
) -> dict[str, Any]:
    """Alertmanager's webhook body (version 4) for one group: what a receiver written for
    Alertmanager reads. Vigil's pending has no Alertmanager form: it is sent as firing
    with the label ``vigil_state=pending`` (channels take firing and resolved only unless
    their ``states`` say otherwise)."""
    items = []
    for a in alerts:
        labels = {**a.labels, "alertname": a.rule, "severity": a.severity}
        if a.state == "pending":
            labels["vigil_state"] = "pending"
        resolved = a.state == "resolved"
        items.append(
            {
                "status": "resolved" if resolved else "firing",
                "labels": labels,
                "annotations": dict(a.annotations),
                "startsAt": _iso(a.started_at or a.at),
                "endsAt": _iso(a.at) if resolved else _NO_END,
                "generatorURL": link(a, external_url),
                "fingerprint": a.fingerprint,
            }
        )
    common_labels = _common([i["labels"] for i in items])
    group_labels = {k: v for k, v in items[0]["labels"].items() if k in group_by}
    return {
        "version": "4",
        "groupKey": "{}:" + json.dumps(group_labels, sort_keys=True),
        "truncatedAlerts": 0,
        "status": "firing" if any(i["status"] == "firing" for i in items) else "resolved",
        "receiver": receiver,
        "groupLabels": group_labels,
        "commonLabels": common_labels,
        "commonAnnotations": _common([i["annotations"] for i in items]),
        "externalURL": external_url,
        "alerts": items,
    }


def _common(maps: list[dict[str, str]]) -> dict[str, str]:
    first, *rest = maps
    return {k: v for k, v in first.items() if all(m.get(k) == v for m in rest)}


@dataclass
class _Group:
    #: The latest transition of each alert of the group, by fingerprint.
    alerts: dict[str, Alert] = field(default_factory=dict)
    #: Transitions waiting to go out, and since when.
    waiting: list[Alert] = field(default_factory=list)
    opened_ms: int | None = None
    notified_ms: int | None = None


class Grouper:
    """Transitions into groups of ``group_by`` labels, sent ``wait_ms`` after a group's
    first waiting transition and again every ``repeat_ms`` while one of its alerts fires
    (0: no reminder)."""

    def __init__(self, *, group_by: tuple[str, ...], wait_ms: int, repeat_ms: int) -> None:
        self.group_by = group_by
        self.wait_ms = wait_ms
        self.repeat_ms = repeat_ms
        self._groups: dict[tuple[str, ...], _Group] = {}

    def key(self, alert: Alert) -> tuple[str, ...]:
        labels = {**alert.labels, "alertname": alert.rule, "severity": alert.severity}
        return tuple(labels.get(k, "") for k in self.group_by)

    @property
    def waiting(self) -> int:
        return sum(len(g.waiting) for g in self._groups.values())

    def add(self, alert: Alert, *, now_ms: int) -> None:
        group = self._groups.setdefault(self.key(alert), _Group())
        if not group.waiting:
            group.opened_ms = now_ms
        group.waiting.append(alert)
        group.alerts[alert.fingerprint] = alert

    def due(self, *, now_ms: int) -> list[list[Alert]]:
        """The groups to send now: those whose wait is over (their waiting transitions,
        the latest of each alert), then reminders of what still fires."""
        out = []
        for key, group in list(self._groups.items()):
            if group.waiting and now_ms >= (group.opened_ms or 0) + self.wait_ms:
                latest = {a.fingerprint: a for a in group.waiting}
                out.append(list(latest.values()))
                group.waiting, group.notified_ms = [], now_ms
            elif (
                self.repeat_ms > 0
                and not group.waiting
                and group.notified_ms is not None
                and now_ms >= group.notified_ms + self.repeat_ms
            ):
                firing = [a for a in group.alerts.values() if a.state == "firing"]
                if firing:
                    out.append(firing)
                    group.notified_ms = now_ms
            # What resolved is sent once: it no longer needs remembering.
            group.alerts = {f: a for f, a in group.alerts.items() if a.state != "resolved"}
            if not group.alerts and not group.waiting:
                del self._groups[key]
        return out

    def next_ms(self) -> int | None:
        """When :meth:`due` has something next (None: nothing waits or repeats)."""
        times = []
        for group in self._groups.values():
            if group.waiting:
                times.append((group.opened_ms or 0) + self.wait_ms)
            elif self.repeat_ms > 0 and group.notified_ms is not None and group.alerts:
                times.append(group.notified_ms + self.repeat_ms)
        return min(times) if times else None


def _example(series: str, state: str) -> Alert:
    """A transition for the examples above."""
    return Alert(
        id=f"r:{series}:1", fingerprint=f"r:{series}", rule="r", type="threshold",
        series=series, kind="metric", service="api", name="latency_ms", state=state,
        previous="pending", at=0, started_at=0, value=1.0, op=">", threshold=0.5,
        score=None, window="1m", severity="warning", labels={"alertname": "r"},
        annotations={}, channels=None, flapping=False, partition=0, seq=1, evaluated_at=0,
    )  # fmt: skip
