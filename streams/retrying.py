"""Doing something again with backoff until it works: what the worker does when a part it
cannot do without (the store, the broker) does not answer, instead of giving up on what
it holds.

>>> import asyncio
>>> tries, said = iter([OSError("down"), OSError("down"), "done"]), []
>>> async def attempt():
...     outcome = next(tries)
...     if isinstance(outcome, Exception):
...         raise outcome
...     return outcome
>>> asyncio.run(until_done(attempt, "a try", on_error=lambda e, s: said.append(s), first=0.01))
'done'
>>> said
[0.01, 0.02]
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


def reason(exc: BaseException) -> str:
    """``exc`` in one line for a log or a page: its type and the start of its message."""
    return f"{type(exc).__name__}: {str(exc)[:300]}"


async def until_done(
    attempt: Callable[[], Awaitable[T]],
    what: str,
    *,
    on_error: Callable[[Exception, float], object] = lambda exc, wait: None,
    errors: tuple[type[Exception], ...] = (Exception,),
    first: float = 0.2,
    most: float = 30.0,
) -> T:
    """``attempt()``'s result, tried again after each of ``errors`` (logged as ``what``
    failing, then ``on_error(exc, seconds to wait)``) with a wait from ``first`` seconds,
    doubling up to ``most`` (which bounds the first wait too)."""
    pauses = waits(first, most)
    while True:
        try:
            return await attempt()
        except errors as exc:
            wait = next(pauses)
            log.warning("%s failed (retrying in %.1fs): %s", what, wait, reason(exc))
            on_error(exc, wait)
            await asyncio.sleep(wait)


def waits(first: float = 0.2, most: float = 30.0) -> Iterator[float]:
    """Seconds to wait before each next try: from ``first``, doubling up to ``most`` (which
    bounds the first too).

    >>> import itertools
    >>> list(itertools.islice(waits(0.2, 1.0), 5))
    [0.2, 0.4, 0.8, 1.0, 1.0]
    """
    wait = min(first, most)
    while True:
        yield wait
        wait = min(wait * 2, most)
