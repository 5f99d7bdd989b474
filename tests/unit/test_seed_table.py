"""The README's table from each seed's capability to Vigil's: no empty cell, and every
history query, client method and command it names exists."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from producers import Client
from sinks.catalog import CATALOG

README = Path(__file__).resolve().parents[2] / "README.md"
SEEDS = ("000", "001", "002", "003", "004")


def rows() -> list[list[str]]:
    text = README.read_text()
    section = text[text.index("## Coming from the systems Vigil replaces") :]
    section = section[: section.index("\n## ", 5)]
    lines = [line for line in section.splitlines() if line.startswith("| ")][2:]
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]] for line in lines]


def test_every_seed_has_rows_and_no_cell_is_empty():
    table = rows()
    assert len(table) >= 40
    assert all(len(r) == 3 and all(r) for r in table), [r for r in table if not all(r)]
    assert {r[0][:3] for r in table if r[0][:3].isdigit()} == set(SEEDS)


def test_every_history_query_client_method_and_command_named_exists():
    text = " ".join(cell for row in rows() for cell in row[1:])
    queries = set(re.findall(r"vigil history (\w+)", text))
    assert queries and queries <= set(CATALOG), queries - set(CATALOG)
    methods = set(re.findall(r"vigil\.(\w+)\(", text))
    assert methods and all(hasattr(Client, m) for m in methods), [
        m for m in methods if not hasattr(Client, m)
    ]
    commands = set(re.findall(r"`vigil (\w+)", text))
    out = subprocess.run(
        [sys.executable, "-m", "vigil.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    offered = set(re.search(r"\{([\w,]+)\}", out)[1].split(","))  # type: ignore[index]
    assert commands <= offered, commands - offered
