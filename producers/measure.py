"""What a block of code used: CPU time, memory before, after and at its peak, disk and
network bytes (:class:`Measure`), for an execution (``vigil.execution(...)``) and for a
decorated call (``@vigil.monitor_performance(memory=True)``).

The figures are the process's while the block ran (another thread's work counts too):

- ``cpu_ms``: user and system CPU time of the process;
- ``rss_before_bytes``, ``rss_after_bytes``: resident memory at the start and the end;
- ``rss_peak_bytes``: the process's high-water mark when the block raised it, which is
  then exactly the block's peak; otherwise the larger of the two readings (the true peak
  lies between that and the earlier high-water mark, which is not reset: resetting it
  would take every other block's and the resource sampler's);
- ``io_read_bytes``, ``io_write_bytes``: bytes the process read from and wrote to
  storage (the kernel's block counts, 512 bytes each);
- ``net_rx_bytes``, ``net_tx_bytes``: bytes received and sent on the host's (or the
  container's) interfaces but loopback: no kernel counts network bytes per process.

A reading the platform refuses is left out. CPU and storage come from one ``getrusage``
call; resident memory and its high-water mark (``VmRSS``, ``VmHWM``) and the interfaces
from ``/proc`` files kept open and read again in place (psutil and ``getrusage`` elsewhere
than Linux). Not ``getrusage``'s ``ru_maxrss`` on Linux: a process keeps the high-water
mark of the process it was forked from across ``exec`` (a worker started by a 1 GB
parent starts with a 1 GB mark), so no call of its own would ever raise it. A measure,
start and stop, costs about 40 µs here: ``bench/producer.py`` prints an empty execution
with it beside one without (55 against 16 µs; with psutil's readings it printed 172).

>>> m = Measure()
>>> data = bytearray(64 * 2**20)  # 64 MiB, touched
>>> figures = m.stop()
>>> figures["rss_peak_bytes"] >= figures["rss_before_bytes"]
True
>>> sorted(figures)[:3]
['cpu_ms', 'io_read_bytes', 'io_write_bytes']
"""

from __future__ import annotations

import os
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


class _Proc:
    """``/proc`` files of this process, opened once per process (a forked child opens its
    own: ``/proc/self`` is resolved when a file is opened)."""

    def __init__(self) -> None:
        self.pid = -1
        self.status = self.netdev = -1

    def _ready(self) -> bool:
        if self.pid != os.getpid():
            self.pid = os.getpid()
            try:
                self.status = os.open("/proc/self/status", os.O_RDONLY)
                self.netdev = os.open("/proc/self/net/dev", os.O_RDONLY)
            except OSError:
                self.status = self.netdev = -1
        return self.status >= 0

    def memory(self) -> tuple[float, float]:
        """Resident bytes now and at the process's peak."""
        if not self._ready():
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * _MAXRSS_UNIT
            return float(psutil.Process().memory_info().rss), float(peak)
        data = os.pread(self.status, 1 << 13, 0)
        if b"\nPid:\t%d\n" % self.pid not in data:
            # The descriptor was closed under us and its number given to another file
            # (another process's status reads as plausible figures): ours again, and
            # the number left to whoever holds it now.
            self.status = os.open("/proc/self/status", os.O_RDONLY)
            data = os.pread(self.status, 1 << 13, 0)
        return _kib(data, b"VmRSS:"), _kib(data, b"VmHWM:")

    def network(self) -> tuple[float, float] | None:
        if not self._ready():
            net = psutil.net_io_counters()
            return None if net is None else (float(net.bytes_recv), float(net.bytes_sent))
        rx = tx = 0
        for line in os.pread(self.netdev, 1 << 16, 0).splitlines()[2:]:
            name, _, rest = line.partition(b":")
            if name.strip() != b"lo":
                fields = rest.split()
                rx, tx = rx + int(fields[0]), tx + int(fields[8])
        return float(rx), float(tx)


def _kib(status: bytes, field: bytes) -> float:
    start = status.index(field) + len(field)
    return float(int(status[start : status.index(b"kB", start)]) * 1024)


_proc = _Proc()


def _reading() -> dict[str, float]:
    out: dict[str, float] = {}
    try:
        ru = resource.getrusage(resource.RUSAGE_SELF)
        out["cpu"] = ru.ru_utime + ru.ru_stime
        out["read"], out["write"] = ru.ru_inblock * 512, ru.ru_oublock * 512
        out["rss"], out["hwm"] = _proc.memory()
    except (OSError, ValueError, psutil.Error):
        return {}
    try:
        net = _proc.network()
    except (OSError, ValueError, IndexError, psutil.Error):
        net = None
    if net is not None:
        out["rx"], out["tx"] = net
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
        if "rss" in a and "rss" in b:
            out["cpu_ms"] = round(max(b["cpu"] - a["cpu"], 0.0) * 1000, 3)
            out["rss_before_bytes"], out["rss_after_bytes"] = int(a["rss"]), int(b["rss"])
            raised = b["hwm"] > a["hwm"]
            out["rss_peak_bytes"] = int(b["hwm"] if raised else max(a["rss"], b["rss"]))
        for key, name in (("read", "io_read"), ("write", "io_write"), ("rx", "net_rx"),
                          ("tx", "net_tx")):  # fmt: skip
            if key in a and key in b:
                out[f"{name}_bytes"] = int(max(b[key] - a[key], 0))
        return out
