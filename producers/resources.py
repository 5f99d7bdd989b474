"""Resource samples: CPU, memory and, when NVML is present, GPU, at a fixed interval.

psutil reads the process and the machine (the same way on Linux, macOS and Windows);
GPUs are read through NVML (``pip install nvidia-ml-py``) when it loads, and skipped
otherwise. The names match what the worker and the simulator use:

| metric                  | tags       | meaning                                         |
| ----------------------- | ---------- | ----------------------------------------------- |
| ``cpu_percent``         |            | this process, share of the whole machine, 0-100 |
| ``memory_mb``           |            | this process's resident memory                  |
| ``system_cpu_percent``  |            | the machine, 0-100                              |
| ``system_memory_percent``|           | the machine's memory in use, 0-100              |
| ``gpu_percent``         | ``gpu=N``  | utilization of GPU N, 0-100                     |
| ``gpu_memory_mb``       | ``gpu=N``  | memory used on GPU N                            |
| ``disk_read_bytes_per_s``, ``disk_write_bytes_per_s`` | | the machine's disks      |
| ``net_recv_bytes_per_s``, ``net_sent_bytes_per_s``    | | the machine's network    |
| ``container_memory_mb`` |            | memory the container (cgroup) uses              |
| ``container_memory_limit_mb`` |      | its memory limit, when it has one               |
| ``container_cpu_limit`` |            | its CPU limit in cores, when it has one         |
| ``container_cpu_percent`` |          | its CPU use, share of its limit (else of the    |
|                         |            | machine), 0-100                                 |

Rates compare with the sample before (the first sample has none). The container's figures
come from its cgroup (v2, else v1) when ``/sys/fs/cgroup`` shows one (Linux).

>>> sampler = ResourceSampler()
>>> names = {name for name, _, _ in sampler.sample()}
>>> {"cpu_percent", "memory_mb", "system_memory_percent"} <= names
True
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import psutil

log = logging.getLogger("producers")

Sample = tuple[str, float, dict[str, str] | None]

#: Every metric the sampler records (the history's ``resources`` query reads these).
NAMES = (
    "cpu_percent",
    "memory_mb",
    "system_cpu_percent",
    "system_memory_percent",
    "gpu_percent",
    "gpu_memory_mb",
    "disk_read_bytes_per_s",
    "disk_write_bytes_per_s",
    "net_recv_bytes_per_s",
    "net_sent_bytes_per_s",
    "container_memory_mb",
    "container_memory_limit_mb",
    "container_cpu_limit",
    "container_cpu_percent",
)
#: A cgroup limit at or above this is no limit (v1 writes 2^63 rounded to pages).
_UNLIMITED = 2**60


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


class Cgroup:
    """The container's memory and CPU from its cgroup under ``root`` (v2's unified files,
    else v1's ``memory/`` and ``cpu/`` controllers): usage and limits, CPU time in
    seconds. Missing files give None."""

    def __init__(self, root: Path = Path("/sys/fs/cgroup")) -> None:
        self.root = root
        self.v2 = (root / "cgroup.controllers").exists()

    def memory(self) -> tuple[float | None, float | None]:
        """Bytes used and the limit (None: no limit)."""
        r = self.root
        if self.v2:
            written = _read(r / "memory.max")
            limited = None if written in (None, "max") else _number(written)
            return _number(_read(r / "memory.current")), limited
        used = _number(_read(r / "memory" / "memory.usage_in_bytes"))
        limit = _number(_read(r / "memory" / "memory.limit_in_bytes"))
        return used, limit if limit is not None and limit < _UNLIMITED else None

    def cpu(self) -> tuple[float | None, float | None]:
        """CPU seconds used so far, and the limit in cores (None: no limit)."""
        r = self.root
        if self.v2:
            stat = _read(r / "cpu.stat") or ""
            usage = next((line.split()[1] for line in stat.splitlines()
                          if line.startswith("usage_usec ")), None)  # fmt: skip
            max_text, _, period_text = (_read(r / "cpu.max") or "max").partition(" ")
            limit = None
            if max_text != "max":
                limit = (_number(max_text) or 0.0) / (_number(period_text) or 1.0)
            usec = _number(usage)
            return (usec / 1e6 if usec is not None else None), limit
        nanos = _number(_read(r / "cpuacct" / "cpuacct.usage"))
        quota = _number(_read(r / "cpu" / "cpu.cfs_quota_us"))
        period = _number(_read(r / "cpu" / "cpu.cfs_period_us"))
        cores = quota / period if quota is not None and quota > 0 and period else None
        return (nanos / 1e9 if nanos is not None else None), cores


class _Nvml:
    """GPU readings through NVML, or nothing when the library or a GPU is missing."""

    def __init__(self) -> None:
        self.handles: list[Any] = []
        try:
            import pynvml

            pynvml.nvmlInit()
            self._nvml = pynvml
            count = pynvml.nvmlDeviceGetCount()
            self.handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        except Exception:  # no library, no driver or no GPU: sample without GPUs
            self.handles = []

    def sample(self) -> list[Sample]:
        out: list[Sample] = []
        for i, handle in enumerate(self.handles):
            try:
                util = self._nvml.nvmlDeviceGetUtilizationRates(handle)
                mem = self._nvml.nvmlDeviceGetMemoryInfo(handle)
            except Exception:  # a GPU that stops answering is skipped, not fatal
                continue
            tags = {"gpu": str(i)}
            out.append(("gpu_percent", float(util.gpu), tags))
            out.append(("gpu_memory_mb", mem.used / 2**20, tags))
        return out


class ResourceSampler:
    """Reads resources; :meth:`run` records them through a client every ``interval_s``."""

    def __init__(self, cgroup: Cgroup | None = None, clock: Any = time.monotonic) -> None:
        self._cgroup = cgroup if cgroup is not None else Cgroup()
        self._clock = clock
        #: The counters of the sample before: time, disk, network and cgroup CPU seconds.
        self._before: dict[str, float] = {}
        self._process = psutil.Process()
        self._cpus = psutil.cpu_count() or 1
        # cpu_percent() compares with the previous call: prime both counters now.
        self._process.cpu_percent(None)
        psutil.cpu_percent(None)
        self._gpus = _Nvml()

    def sample(self) -> list[Sample]:
        with self._process.oneshot():
            cpu = self._process.cpu_percent(None) / self._cpus
            rss = self._process.memory_info().rss
        return [
            ("cpu_percent", min(cpu, 100.0), None),
            ("memory_mb", rss / 2**20, None),
            ("system_cpu_percent", psutil.cpu_percent(None), None),
            ("system_memory_percent", psutil.virtual_memory().percent, None),
            *self._gpus.sample(),
            *self._io(),
            *self._container(),
        ]

    def _io(self) -> list[Sample]:
        """Disk and network bytes per second since the sample before."""
        now = {"t": self._clock()}
        disk, net = psutil.disk_io_counters(), psutil.net_io_counters()
        if disk is not None:
            now["disk_read"], now["disk_write"] = disk.read_bytes, disk.write_bytes
        if net is not None:
            now["net_recv"], now["net_sent"] = net.bytes_recv, net.bytes_sent
        before, self._before = self._before, {**self._before, **now}
        elapsed = now["t"] - before.get("t", now["t"])
        out: list[Sample] = []
        for key in ("disk_read", "disk_write", "net_recv", "net_sent"):
            if elapsed > 0 and key in now and key in before:
                out.append((f"{key}_bytes_per_s", max(now[key] - before[key], 0) / elapsed, None))
        return out

    def _container(self) -> list[Sample]:
        """The cgroup's memory, limits and CPU share since the sample before."""
        out: list[Sample] = []
        used, limit = self._cgroup.memory()
        if used is not None:
            out.append(("container_memory_mb", used / 2**20, None))
        if limit is not None:
            out.append(("container_memory_limit_mb", limit / 2**20, None))
        seconds, cores = self._cgroup.cpu()
        if cores is not None:
            out.append(("container_cpu_limit", cores, None))
        t = self._clock()
        last = self._before.get("cg_cpu"), self._before.get("cg_t")
        if seconds is not None:
            if last[0] is not None and last[1] is not None and t > last[1]:
                share = (seconds - last[0]) / (t - last[1]) / (cores or self._cpus)
                out.append(("container_cpu_percent", min(max(share * 100, 0.0), 100.0), None))
            self._before["cg_cpu"], self._before["cg_t"] = seconds, t
        return out

    async def run(self, client: Any, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                samples = self.sample()
            except psutil.Error as exc:
                log.warning("vigil: resource sample failed: %s", exc)
                continue
            for name, value, tags in samples:
                client.metric(name, round(value, 2), tags)
