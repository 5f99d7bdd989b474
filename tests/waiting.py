"""Waiting in a test for something another task or process does."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


async def until(
    condition: Callable[[], object], timeout: float = 20.0, every: float = 0.02
) -> None:
    """Return once ``condition()`` holds, checking every ``every`` seconds; fail the test
    after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"the condition never held in {timeout} s"
        await asyncio.sleep(every)
