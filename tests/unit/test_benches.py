"""Every benchmark module imports: they run by hand (``python -m bench.NAME``), not in CI,
so a helper renamed in one of them (as ``bench.pipeline.run_worker`` once was, under
``bench.rerouting``) would otherwise surface only when somebody measures."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.mark.parametrize("name", sorted(p.stem for p in BENCH.glob("*.py") if p.stem != "__init__"))
def test_the_benchmark_imports(name):
    module = importlib.import_module(f"bench.{name}")
    assert callable(getattr(module, "main", None)) or name in {"corpus", "report"}
