"""Outcomes people care about beside speed: satisfaction, how well a model does, what an
optimization changed, and how much of an allocation is used. Each is a metric (so it has
windows, rules and detectors like any other) with the detail in its attributes:

| call | metric (tags) | value | attributes |
| --- | --- | --- | --- |
| ``satisfaction(feature, score, scale=5)`` | ``satisfaction_score`` (feature, aspect) | the score on 0-1 | score, scale, feedback, interaction_id, user |
| ``model_effectiveness(model, accuracy=...)`` | ``model_accuracy`` (model, task); ``model_confidence`` | accuracy; confidence | confidence, sample_size, improvement_rate |
| ``optimization(feature, id, category=, before=, after=)`` | ``optimization_change_pct`` (feature, category) | (after - before) / before, % | optimization_id, before, after, user_impact, unit |
| ``utilization(resource, used=, allocated=)`` | ``utilization_percent`` (resource, type) | used / allocated, % | used, allocated, unit |

A score on a 1-5 scale becomes ``(score - 1) / 4``, so scores of either scale share one
series and one threshold. Errors take ``severity``, ``impact`` and whether a recovery was
tried and worked (``Signals.error``); a metric takes its ``unit`` and ``category``.

>>> normalized(4, 5), normalized(0.9, 1)
(0.75, 0.9)
"""  # noqa: E501 - the table

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from producers.events import InvalidEvent
from producers.guard import guarded

if TYPE_CHECKING:
    from producers.signals import Signals

#: The scales a satisfaction score may be given on.
SCALES = (1, 5)


def _number(name: str, value: Any, low: float | None = None, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidEvent(f"{name} must be a finite number, got {value!r:.40}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise InvalidEvent(f"{name} must be within [{low}, {high}], got {value}")
    return float(value)


def _optional(name: str, value: Any, low: float | None = None, high: float | None = None) -> Any:
    """``value`` checked as :func:`_number` does (a whole number stays whole); None as is."""
    if value is None:
        return None
    number = _number(name, value, low, high)
    return value if isinstance(value, int) else number


def normalized(score: float, scale: int) -> float:
    """A satisfaction score on 0-1, from 0-1 (``scale`` 1) or 1-5 (``scale`` 5)."""
    if scale not in SCALES:
        raise InvalidEvent(f"scale must be 1 (a score in 0-1) or 5 (1-5), got {scale!r}")
    if scale == 1:
        return _number("score", score, 0.0, 1.0)
    return (_number("score", score, 1.0, 5.0) - 1.0) / 4.0


class OutcomeHooks:
    """The calls of the table above; mixed into the clients."""

    def _outcome(
        self, name: str, value: float, tags: Mapping[str, str], attrs: dict[str, Any]
    ) -> bool:
        host: Signals = self  # type: ignore[assignment]  # mixed into the clients
        kept = {k: v for k, v in attrs.items() if v is not None}
        return host.metric(name, value, {k: v for k, v in tags.items() if v}, attrs=kept)

    @guarded
    def satisfaction(
        self,
        feature: str,
        score: float,
        *,
        scale: int = 1,
        aspect: str = "overall",
        feedback: str | None = None,
        interaction_id: Any = None,
        user: Any = None,
    ) -> bool:
        """How satisfied someone was with ``feature``: ``score`` on 0-1 (``scale=1``) or
        1-5 (``scale=5``) on one ``aspect`` (accuracy, speed, ...), with their words and
        the interaction it rates."""
        host: Signals = self  # type: ignore[assignment]
        if user is not None and not host.consents(user):
            host._counts["opted_out"] += 1
            return False
        value = normalized(score, scale)
        attrs = {
            "score": float(score),
            "scale": scale,
            "feedback": host.privacy.text(feedback, 1024) if feedback else None,
            "interaction_id": str(interaction_id) if interaction_id is not None else None,
            "user": host.privacy.user(user),
        }
        tags = {"feature": feature, "aspect": aspect}
        return self._outcome("satisfaction_score", value, tags, attrs)

    @guarded
    def model_effectiveness(
        self,
        model: str,
        *,
        accuracy: float,
        confidence: float | None = None,
        sample_size: int | None = None,
        improvement_rate: float | None = None,
        task: str = "",
    ) -> bool:
        """How well ``model`` did on an evaluation: accuracy (0-1), the model's confidence
        (0-1), how many samples it was judged on, and its improvement since the last; ``task``
        names what it was judged at."""
        attrs = {
            "confidence": _optional("confidence", confidence, 0, 1),
            "sample_size": _optional("sample_size", sample_size, 0),
            "improvement_rate": _optional("improvement_rate", improvement_rate),
        }
        tags = {"model": model, "task": task}
        ok = self._outcome("model_accuracy", _number("accuracy", accuracy, 0, 1), tags, attrs)
        if confidence is not None:
            self._outcome("model_confidence", float(confidence), tags, {})
        return ok

    @guarded
    def optimization(
        self,
        feature: str,
        optimization_id: Any,
        *,
        category: str,
        before: float,
        after: float,
        user_impact: float | None = None,
        unit: str | None = None,
    ) -> bool:
        """What an optimization changed: a figure of ``category`` before and after it, in
        % of before; ``user_impact`` (0-1) says how much users felt it."""
        was, now = _number("before", before), _number("after", after)
        if was == 0:
            raise InvalidEvent("before must not be 0: the change is a share of it")
        attrs = {
            "optimization_id": str(optimization_id),
            "before": was,
            "after": now,
            "user_impact": _optional("user_impact", user_impact, 0, 1),
            "unit": unit,
        }
        change = (now - was) / abs(was) * 100
        tags = {"feature": feature, "category": category}
        return self._outcome("optimization_change_pct", change, tags, attrs)

    @guarded
    def utilization(
        self,
        resource: str,
        *,
        used: float,
        allocated: float,
        resource_type: str = "",
        unit: str | None = None,
    ) -> bool:
        """How much of what was allocated to ``resource`` (a cache, a pool, a quota) is
        used, in %."""
        have = _number("allocated", allocated, 0)
        if have == 0:
            raise InvalidEvent("allocated must be above 0")
        use = _number("used", used, 0)
        attrs = {"used": use, "allocated": have, "unit": unit}
        tags = {"resource": resource, "type": resource_type}
        return self._outcome("utilization_percent", use / have * 100, tags, attrs)
