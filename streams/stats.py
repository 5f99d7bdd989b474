"""What the worker counts about itself, served at ``/stats`` and ``/metrics``."""

from __future__ import annotations

import collections

from streams.records import BatchResult


class WorkerStats:
    """Counters of one worker process; times are wall-clock seconds given by the caller."""

    def __init__(self, *, started: float) -> None:
        self.started = started
        self.counts = collections.Counter[str]()
        self.recent: collections.deque[tuple[float, int]] = collections.deque(maxlen=64)
        #: Wall-clock times of the first batch received and the last one finished.
        self.first_batch_at: float | None = None
        self.last_batch_at: float | None = None
        #: Per partition, the highest offset whose output is stored and checkpointed.
        self.applied: dict[int, int] = {}
        #: Event partitions this worker is assigned.
        self.assigned: set[int] = set()
        #: Events forwarded to their series' partition, per partition they arrived on.
        self.rerouted = collections.Counter[int]()

    def add(self, result: BatchResult, *, at: float) -> None:
        """A batch stored, published and checkpointed at ``at`` (and released:
        :meth:`BatchResult.release`).

        >>> stats = WorkerStats(started=0.0)
        >>> for at, valid in ((10.0, 100), (12.0, 300)):
        ...     result = BatchResult()
        ...     result.counts["valid"] = valid
        ...     stats.add(result, at=at)
        >>> stats.counts["valid"], stats.rate()
        (400, 150.0)
        """
        self.counts.update(result.counts)  # with its windows and raw rows (release())
        self.rerouted.update(result.rerouted)
        self.recent.append((at, self.counts["valid"] + self.counts["rejected"]))
        self.last_batch_at = at
        for p, (offset, _) in result.states.items():
            self.applied[p] = offset

    def rate(self) -> float:
        """Events per second over the last batches (up to 64)."""
        if len(self.recent) < 2:
            return 0.0
        (t0, n0), (t1, n1) = self.recent[0], self.recent[-1]
        return (n1 - n0) / (t1 - t0) if t1 > t0 else 0.0

    def leave(self, partition: int) -> None:
        """A partition was revoked: nothing about it is this worker's any more."""
        self.assigned.discard(partition)
        self.applied.pop(partition, None)
