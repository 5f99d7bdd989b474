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

>>> sampler = ResourceSampler()
>>> names = {name for name, _, _ in sampler.sample()}
>>> {"cpu_percent", "memory_mb", "system_memory_percent"} <= names
True
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import psutil

log = logging.getLogger("producers")

Sample = tuple[str, float, dict[str, str] | None]


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

    def __init__(self) -> None:
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
        ]

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
