"""The cyclic garbage collector in a worker: its thresholds, and a pause around work that
makes millions of objects none of which can be part of a cycle.

A worker at 100,000 series holds millions of long-lived objects (open windows, detector
models, alert states). The collector walks them whenever enough new objects pile up, and
a checkpoint makes as many new ones as the state holds (the dicts and lists of its JSON
form), so collections ran in the middle of every checkpoint to find nothing. The
processor with the default rules at 100,000 series (300,000 events, a checkpoint every
50,000 and one at the end; a scratch run, alternating, two runs each): its checkpoints
took 16.0 and 15.9 s of CPU with the collector running, 8.7 and 8.2 s with it paused;
the whole run 27.3 s against 21.3 and 20.0 s; taking the 112-133 MB state over again
3.8-5.1 s against 2.7-3.1 s. The snapshot's objects are freed by reference counting as
soon as its bytes are made.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

#: A young generation of 50,000 objects instead of 700. Collecting every 700 new objects
#: made the processor 80-101 µs an event at 100,000 series, against 56-57 with these
#: thresholds and 51 with no collector (a scratch run of bench.worker_core's processor,
#: 200,000 events). A batch's cycles are still collected.
THRESHOLDS = (50_000, 20, 10)

_lock = threading.Lock()
_pauses = 0  # blocks inside paused() now, over every thread
_resume = False  # whether the collector was on when the first of them began


@contextlib.contextmanager
def paused() -> Iterator[None]:
    """The block runs with the cyclic collector off; it is on again after the last
    block that paused it ends, if it was on before the first began (so blocks in
    several threads, or nested ones, do not turn it back on early).

    >>> with paused():
    ...     with paused():
    ...         inner = gc.isenabled()
    ...     outer = gc.isenabled()
    >>> inner, outer, gc.isenabled()
    (False, False, True)
    """
    global _pauses, _resume
    with _lock:
        if _pauses == 0:
            _resume = gc.isenabled()
            gc.disable()
        _pauses += 1
    try:
        yield
    finally:
        with _lock:
            _pauses -= 1
            if _pauses == 0 and _resume:
                gc.enable()
