"""Silences, acknowledgements and rule reloads: commands on the control topic, applied by
every worker.

The HTTP API turns a request into a command (:func:`silence_command`,
:func:`expire_command`, :func:`ack_command`) and publishes it to ``<ns>.control.v1``;
every worker reads that topic whole, from the beginning, so each one knows every silence
and acknowledgement whichever worker took the request, and a restarted worker knows
them again. :class:`Control` is the state the commands build.

- A silence (label matchers, a time range) marks the matching transitions ``silenced``:
  they are stored and published with that flag, and not delivered to webhooks.
- An acknowledgement names an alert (fingerprint) and the episode (its ``started_at``):
  the worker holding that alert applies it to the alert's state
  (:func:`streams.alerting.acknowledge`); it lasts until the alert resolves and does not
  carry over to the next episode. Workers keep the newest one per alert, to apply again
  when a partition moves.

>>> c = Control()
>>> c.apply(silence_command({"matchers": {"service": "api"}, "duration": "1h"},
...                         now_ms=0, silence_id="s1"))
>>> (c.silenced({"service": "api", "alertname": "x"}, at=1_000), c.silenced({"service": "db"}, 0))
(True, False)
"""

from __future__ import annotations

import dataclasses
from typing import Any

from streams.alerting import Silence, silenced
from streams.windows import parse_duration

MAX_TEXT = 1024
MAX_MATCHERS = 16
MAX_SILENCE_MS = 90 * 24 * 3600 * 1000
#: Acknowledgements remembered (the newest ones).
MAX_ACKS = 100_000


class CommandError(ValueError):
    """A request that cannot become a command; the message says which field and why."""


class NotFiring(CommandError):
    """An acknowledgement of an alert that is not firing (a conflict, not a bad request)."""


class Control:
    def __init__(self) -> None:
        self.silences: dict[str, Silence] = {}
        #: fingerprint -> the newest acknowledgement: started_at, by, at, comment.
        self.acks: dict[str, dict[str, Any]] = {}

    def apply(self, command: dict[str, Any]) -> None:
        """Apply one command from the control topic (unknown types are ignored)."""
        kind = command.get("type")
        if kind == "silence":
            self.silences[command["id"]] = Silence(
                matchers=tuple((k, v) for k, v in command["matchers"]),
                starts_at=command["starts_at"],
                ends_at=command["ends_at"],
                created_by=command.get("created_by", ""),
                comment=command.get("comment", ""),
            )
        elif kind == "expire":
            old = self.silences.get(command["id"])
            if old is not None and old.ends_at > command["at"]:
                ends_at = max(command["at"], old.starts_at + 1)
                self.silences[command["id"]] = dataclasses.replace(old, ends_at=ends_at)
        elif kind == "ack":
            self.acks.pop(command["fingerprint"], None)
            self.acks[command["fingerprint"]] = {
                k: command.get(k) for k in ("started_at", "by", "at", "comment")
            }
            if len(self.acks) > MAX_ACKS:
                del self.acks[next(iter(self.acks))]

    def silenced(self, labels: dict[str, str], at: int) -> bool:
        return silenced(self.silences.values(), labels, at)

    def listing(self, now_ms: int) -> list[dict[str, Any]]:
        """Silences, newest first, with whether each is in force now."""
        out = [
            {
                "id": sid,
                "matchers": dict(s.matchers),
                "starts_at": s.starts_at,
                "ends_at": s.ends_at,
                "created_by": s.created_by,
                "comment": s.comment,
                "active": s.starts_at <= now_ms < s.ends_at,
            }
            for sid, s in self.silences.items()
        ]
        return sorted(out, key=lambda s: -s["starts_at"])


def _text(body: dict[str, Any], key: str, *, required: bool = False) -> str:
    value = body.get(key, "")
    if not isinstance(value, str) or len(value) > MAX_TEXT or (required and not value.strip()):
        need = "a non-empty string" if required else "a string"
        raise CommandError(f"{key!r} must be {need} of at most {MAX_TEXT} characters")
    return value


def silence_command(body: Any, *, now_ms: int, silence_id: str) -> dict[str, Any]:
    """``{"matchers": {"service": "api"}, "duration": "2h" | "ends_at": ms, "starts_at":
    ms, "created_by": ..., "comment": ...}`` as a command."""
    if not isinstance(body, dict):
        raise CommandError("send a JSON object")
    matchers = body.get("matchers")
    if (
        not isinstance(matchers, dict)
        or not 0 < len(matchers) <= MAX_MATCHERS
        or not all(isinstance(k, str) and isinstance(v, str) for k, v in matchers.items())
    ):
        raise CommandError(
            f"'matchers' must map 1 to {MAX_MATCHERS} label names to values, "
            'e.g. {"service": "api", "alertname": "high_p95_latency"}'
        )
    starts_at = body.get("starts_at", now_ms)
    if isinstance(starts_at, bool) or not isinstance(starts_at, int):
        raise CommandError("'starts_at' must be a time in epoch milliseconds")
    if "duration" in body:
        try:
            ends_at = starts_at + parse_duration(body["duration"])
        except ValueError as exc:
            raise CommandError(f"'duration': {exc}") from None
    else:
        ends_at = body.get("ends_at")
        if isinstance(ends_at, bool) or not isinstance(ends_at, int):
            raise CommandError("give 'duration' (e.g. \"2h\") or 'ends_at' (epoch milliseconds)")
    if not starts_at < ends_at <= starts_at + MAX_SILENCE_MS:
        raise CommandError("a silence must end after it starts, and within 90 days")
    return {
        "type": "silence",
        "id": silence_id,
        "matchers": sorted(matchers.items()),
        "starts_at": starts_at,
        "ends_at": ends_at,
        "created_by": _text(body, "created_by"),
        "comment": _text(body, "comment"),
        "at": now_ms,
    }


def reload_command(*, now_ms: int) -> dict[str, Any]:
    """Every worker reads its rules file again (one that loaded its rules after ``at``
    already has them)."""
    return {"type": "reload", "at": now_ms}


def expire_command(silence_id: str, *, now_ms: int) -> dict[str, Any]:
    return {"type": "expire", "id": silence_id, "at": now_ms}


def ack_command(
    fingerprint: str, alert: dict[str, Any], body: Any, *, now_ms: int
) -> dict[str, Any]:
    """Acknowledge ``alert`` (as :meth:`Evaluation.alerts` lists it): ``{"by": "ana"}``."""
    if not isinstance(body, dict):
        raise CommandError('send a JSON object, e.g. {"by": "ana"}')
    if alert["status"] != "firing":
        status = alert["status"]
        raise NotFiring(f"only a firing alert can be acknowledged; this one is {status}")
    return {
        "type": "ack",
        "fingerprint": fingerprint,
        "started_at": alert["started_at"],
        "by": _text(body, "by", required=True),
        "comment": _text(body, "comment"),
        "at": now_ms,
    }
