"""The one rule every SDK call follows: it never raises into the host (unless strict)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

from producers.events import InvalidEvent

M = TypeVar("M", bound=Callable[..., Any])


def guarded(method: M) -> M:
    """Make a client method safe for the host: a wrong call is dropped and counted (raised
    as :class:`InvalidEvent` when the client is strict), a failure of the SDK itself is
    counted and logged once; either way the call returns False instead of raising."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except InvalidEvent as exc:
            return self._dropped(exc.reason)
        except Exception as exc:  # analytics must never break the host
            return self._internal(exc)

    return wrapper  # type: ignore[return-value]
