"""What a block of code used: CPU time, memory before, after and at its peak, disk and
network bytes (:class:`Measure`), for an execution (``vigil.execution(...)``) and for a
decorated call (``@vigil.track(..., measure=True)``).

The figures are the process's while the block ran (another thread's work counts too):

- ``cpu_ms``: user and system CPU time of the process;
- ``rss_before_bytes``, ``rss_after_bytes``: resident memory at the start and the end;
- ``rss_peak_bytes``: the process's high-water mark when the block raised it, which is
  then exactly the block's peak; otherwise the larger of the two readings (the true peak
  lies between that and the earlier high-water mark, which is not reset: resetting it
  would take every other block's and the resource sampler's);
- ``io_read_bytes``, ``io_write_bytes``: bytes the process read from and wrote to
  storage (Linux);
- ``net_rx_bytes``, ``net_tx_bytes``: bytes received and sent on the host's (or the
  container's) interfaces: no kernel counts network bytes per process.

A reading the platform refuses is left out. A measure costs about 0.13 ms (start and
stop, measured here), so it runs once per execution, and per call only where a decorator
asks for it.

>>> m = Measure()
>>> data = bytearray(64 * 2**20)  # 64 MiB, touched
>>> figures = m.stop()
>>> figures["rss_peak_bytes"] >= figures["rss_before_bytes"]
True
>>> sorted(figures)[:3]
['cpu_ms', 'io_read_bytes', 'io_write_bytes']
"""

from __future__ import annotations

import resource
import sys
from typing import Any

import psutil

#: The figures a measure reports, in their order.
FIGURES = (
    "cpu_ms",
    "rss_before_bytes",
    "rss_after_bytes",
    "rss_peak_bytes",
    "io_read_bytes",
    "io_write_bytes",
    "net_rx_bytes",
    "net_tx_bytes",
)
#: ``ru_maxrss`` is in kilobytes on Linux and in bytes on macOS.
_MAXRSS_UNIT = 1 if sys.platform == "darwin" else 1024

_process: psutil.Process | None = None


def _me() -> psutil.Process:
    global _process
    if _process is None:
        _process = psutil.Process()
    return _process


def _reading() -> dict[str, float]:
    out: dict[str, float] = {}
    me = _me()
    try:
        times = me.cpu_times()
        out["cpu"] = times.user + times.system
        out["rss"] = me.memory_info().rss
        out["hwm"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _MAXRSS_UNIT
    except (psutil.Error, OSError):
        return out
    try:
        io = me.io_counters()  # not on macOS: AttributeError
        out["read"], out["write"] = io.read_bytes, io.write_bytes
    except (AttributeError, psutil.Error, OSError):
        pass
    try:
        net = psutil.net_io_counters()
        if net is not None:
            out["rx"], out["tx"] = net.bytes_recv, net.bytes_sent
    except (psutil.Error, OSError):
        pass
    return out


class Measure:
    """Started when made; :meth:`stop` returns the figures (see the module)."""

    __slots__ = ("_start",)

    def __init__(self) -> None:
        self._start = _reading()

    def rss_before(self) -> int:
        """Resident memory at the start (0 when the platform refused the reading)."""
        return int(self._start.get("rss", 0))

    def stop(self) -> dict[str, Any]:
        a, b = self._start, _reading()
        out: dict[str, Any] = {}
        if "cpu" in a and "cpu" in b:
            out["cpu_ms"] = round(max(b["cpu"] - a["cpu"], 0.0) * 1000, 3)
            out["rss_before_bytes"], out["rss_after_bytes"] = int(a["rss"]), int(b["rss"])
            raised = b["hwm"] > a["hwm"]
            out["rss_peak_bytes"] = int(b["hwm"] if raised else max(a["rss"], b["rss"]))
        for key, name in (("read", "io_read"), ("write", "io_write"), ("rx", "net_rx"),
                          ("tx", "net_tx")):  # fmt: skip
            if key in a and key in b:
                out[f"{name}_bytes"] = int(max(b[key] - a[key], 0))
        return out
