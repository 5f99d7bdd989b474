"""The resource sampler's disk, network and container (cgroup v1 and v2) figures: cgroup
files as the kernel writes them, in a directory of their own; disk and network from the
machine itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from producers.resources import NAMES, Cgroup, ResourceSampler

MB = 2**20


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def _v2(root: Path, *, used: int, limit: str, cpu_max: str, usage_usec: int) -> None:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text("cpu memory io\n")
    (root / "memory.current").write_text(f"{used}\n")
    (root / "memory.max").write_text(f"{limit}\n")
    (root / "cpu.max").write_text(f"{cpu_max}\n")
    (root / "cpu.stat").write_text(f"usage_usec {usage_usec}\nuser_usec 1\nsystem_usec 1\n")


def _v1(root: Path, *, used: int, limit: int, quota: int, usage_ns: int) -> None:
    for d in ("memory", "cpu", "cpuacct"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "memory" / "memory.usage_in_bytes").write_text(f"{used}\n")
    (root / "memory" / "memory.limit_in_bytes").write_text(f"{limit}\n")
    (root / "cpu" / "cpu.cfs_quota_us").write_text(f"{quota}\n")
    (root / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    (root / "cpuacct" / "cpuacct.usage").write_text(f"{usage_ns}\n")


def _figures(sampler: ResourceSampler) -> dict[str, float]:
    out = {name: value for name, value, _ in sampler.sample()}
    assert set(out) <= set(NAMES), set(out) - set(NAMES)
    return out


@pytest.mark.parametrize("version", ["v2", "v1"])
def test_a_container_reports_its_memory_limits_and_cpu_share(tmp_path, version):
    clock = Clock()
    if version == "v2":
        _v2(tmp_path, used=300 * MB, limit=str(512 * MB), cpu_max="150000 100000",
            usage_usec=10_000_000)  # fmt: skip
    else:
        _v1(tmp_path, used=300 * MB, limit=512 * MB, quota=150_000, usage_ns=10 * 10**9)
    sampler = ResourceSampler(Cgroup(tmp_path), clock=clock)
    first = _figures(sampler)
    assert (first["container_memory_mb"], first["container_memory_limit_mb"]) == (300, 512)
    assert first["container_cpu_limit"] == 1.5 and "container_cpu_percent" not in first
    # Ten seconds later the cgroup used 7.5 CPU seconds: half of its 1.5 cores.
    clock.t += 10
    if version == "v2":
        _v2(tmp_path, used=310 * MB, limit=str(512 * MB), cpu_max="150000 100000",
            usage_usec=17_500_000)  # fmt: skip
    else:
        _v1(tmp_path, used=310 * MB, limit=512 * MB, quota=150_000, usage_ns=175 * 10**8)
    second = _figures(sampler)
    assert second["container_cpu_percent"] == pytest.approx(50.0)
    assert second["container_memory_mb"] == 310


def test_no_limit_is_no_limit_figure_and_no_cgroup_is_no_container_figure(tmp_path):
    unlimited = tmp_path / "v2"
    _v2(unlimited, used=MB, limit="max", cpu_max="max 100000", usage_usec=1)
    figures = _figures(ResourceSampler(Cgroup(unlimited)))
    assert figures["container_memory_mb"] == 1
    assert "container_memory_limit_mb" not in figures and "container_cpu_limit" not in figures
    v1 = tmp_path / "v1"
    _v1(v1, used=MB, limit=9223372036854771712, quota=-1, usage_ns=1)
    figures = _figures(ResourceSampler(Cgroup(v1)))
    assert "container_memory_limit_mb" not in figures and "container_cpu_limit" not in figures
    none = _figures(ResourceSampler(Cgroup(tmp_path / "absent")))
    assert not [n for n in none if n.startswith("container_")]


def test_disk_and_network_are_rates_from_the_second_sample(tmp_path):
    clock = Clock()
    sampler = ResourceSampler(Cgroup(tmp_path / "absent"), clock=clock)
    first = _figures(sampler)
    assert not [n for n in first if n.endswith("_per_s")]
    clock.t += 2
    second = _figures(sampler)
    rates = {n: v for n, v in second.items() if n.endswith("_per_s")}
    assert {"net_recv_bytes_per_s", "net_sent_bytes_per_s"} <= set(rates)
    assert all(v >= 0 for v in rates.values())
