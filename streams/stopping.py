"""A bound on how long a worker takes to stop once asked (SIGTERM).

The worker's own part of stopping is bounded already: the final checkpoint within
``VIGIL_SHUTDOWN_SECONDS``, closing the writer and the webhooks within
:data:`CLOSE_SECONDS`. What follows is Faust's and aiokafka's (stopping the
consumer, leaving the group), which waits for the broker without a bound of ours: a
worker in the middle of a rebalance waits for it to end. A supervisor that kills a
worker after its grace period learns nothing about why; :func:`arm` makes the worker
say where it was stuck (every thread's stack and every asyncio task's) and exit on its
own first. Nothing is lost by it: what was processed is stored, or replayed by the next
worker from the last commit, either way.
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import os
import sys
import threading
from collections.abc import Callable
from typing import IO, Any

log = logging.getLogger(__name__)

#: What the worker's log says when it had to cut its stopping short.
STUCK = "still stopping"
#: How long closing the writer, the webhooks and the store may take on a stop.
CLOSE_SECONDS = 10
#: Seconds for Faust's and aiokafka's part of stopping, past the worker's own bounds.
SLACK_SECONDS = 10.0
#: The exit code of a worker that met a batch it could not process (``EX_SOFTWARE``).
BATCH_FAILED = 70


def within(shutdown_seconds: float) -> float:
    """How long a worker may take to stop in all, given ``VIGIL_SHUTDOWN_SECONDS``.

    >>> within(20.0)
    40.0
    """
    return shutdown_seconds + CLOSE_SECONDS + SLACK_SECONDS


def arm(
    seconds: float,
    loop: asyncio.AbstractEventLoop | None = None,
    *,
    out: IO[str] | None = None,
    leave: Callable[[int], Any] = os._exit,
) -> threading.Timer:
    """Exit (code 0) if the process is still here ``seconds`` from now, after logging
    where it was stuck: the coroutine each task of ``loop`` waits in, then every
    thread's stack (to ``out``, stderr by default: it needs a file descriptor).
    ``cancel()`` the timer returned to disarm it; it never keeps the process alive.

    >>> import tempfile
    >>> left = []
    >>> with tempfile.TemporaryFile("w+") as out:
    ...     timer = arm(0.01, out=out, leave=left.append)
    ...     timer.join()
    ...     _ = out.seek(0)
    ...     said = out.read()
    >>> left, "Thread" in said
    ([0], True)
    """

    def hung() -> None:
        log.error(
            STUCK + " %.0f s after being asked to: exiting now. Where it was "
            "stuck: %s; every thread's stack follows",
            seconds,
            "; ".join(waiting(loop)) or "no asyncio task left",
        )
        stream = out or sys.stderr
        _flush_logs()
        stream.flush()
        faulthandler.dump_traceback(stream, all_threads=True)
        stream.flush()
        leave(0)

    timer = threading.Timer(seconds, hung)
    timer.name, timer.daemon = "vigil-stop-deadline", True
    timer.start()
    return timer


def fail(exc: BaseException, *, leave: Callable[[int], Any] = os._exit) -> None:
    """Exit at once (code :data:`BATCH_FAILED`) after logging ``exc``: a batch the
    worker could not process. As a SIGKILL would, so the next start replays its
    messages from the last commit onto the last checkpoint: carrying on, Faust would
    restart the agent reading on from the next message (the batch's messages never come
    again) over a state that may hold part of them. No final checkpoint, no commit.

    >>> left = []
    >>> fail(ValueError("a bug"), leave=left.append)
    >>> left
    [70]
    """
    log.critical(
        "a batch could not be processed: exiting now (code %d), its messages are "
        "replayed from the last commit when the worker starts again",
        BATCH_FAILED,
        exc_info=exc,
    )
    _flush_logs()
    leave(BATCH_FAILED)


def _flush_logs() -> None:
    """What the root logger's handlers hold, written out before an exit that skips it."""
    for handler in logging.getLogger().handlers:
        handler.flush()


def waiting(loop: asyncio.AbstractEventLoop | None) -> list[str]:
    """Each unfinished task of ``loop`` and where it waits (innermost frame), read from
    another thread: best effort, as the loop may change them meanwhile."""
    if loop is None or loop.is_closed():
        return []
    for _ in range(3):  # the set of tasks changed while it was copied: again
        try:
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            break
        except RuntimeError:
            continue
    else:
        return ["(tasks kept changing)"]
    found = []
    for task in tasks:
        stack = task.get_stack()
        where = f"{stack[-1].f_code.co_qualname}:{stack[-1].f_lineno}" if stack else "?"
        found.append(f"{task.get_name()} in {where}")
    return sorted(found)
