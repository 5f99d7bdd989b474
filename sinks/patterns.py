"""Log pattern mining: the templates of log lines (``Timeout after <NUM> ms on <*>``),
their counts, and which are new, with Drain3, a streaming template miner (He et al.'s
Drain, as IBM maintains it): each line joins the template it is closest to or starts one,
in one pass, so the history query ``log_patterns`` mines the lines of a period as they
come from ClickHouse.

Numbers, hex ids and UUIDs are masked before mining (``<NUM>``, ``<HEX>``, ``<UUID>``), so
``retry 3 of 5`` and ``retry 4 of 5`` are one template; tokens that vary beyond that
become ``<*>``. A template is *new* when no line of the baseline (the period of the same
length just before) matched it.

>>> mined = mine([], [(1, "info", "retry 3 of 5 for job 7f3a9c"), (2, "info", "retry 4 of 5 for job 00beef")])
>>> [(p["template"], p["count"], p["new"]) for p in mined]
[('retry <NUM> of <NUM> for job <HEX>', 2, True)]
"""  # noqa: E501

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

MASKS = (
    (r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b", "UUID"),
    (r"\b(?=[0-9a-fA-F]*[a-fA-F])(?=[0-9a-fA-F]*[0-9])[0-9a-fA-F]{6,}\b", "HEX"),
    (r"(?<![A-Za-z_])[-+]?\d+(\.\d+)?(?![A-Za-z_])", "NUM"),
)


def _miner() -> Any:
    from drain3 import TemplateMiner
    from drain3.masking import MaskingInstruction
    from drain3.template_miner_config import TemplateMinerConfig

    config = TemplateMinerConfig()
    config.profiling_enabled = False
    config.masking_instructions = [MaskingInstruction(regex, name) for regex, name in MASKS]
    return TemplateMiner(config=config)


def mine(
    baseline: Iterable[tuple[Any, str, str]], period: Iterable[tuple[Any, str, str]]
) -> list[dict[str, Any]]:
    """The templates of ``period``'s lines (``(ts, level, message)``, oldest first), the
    most frequent first: count, levels, first and last time, an example line, and whether
    ``baseline``'s lines (mined first) had it."""
    miner = _miner()
    known = {miner.add_log_message(message)["cluster_id"] for _, _, message in baseline}
    found: dict[int, dict[str, Any]] = {}
    for ts, level, message in period:
        cluster = miner.add_log_message(message)["cluster_id"]
        entry = found.get(cluster)
        if entry is None:
            entry = found[cluster] = {
                "first_at": ts, "count": 0, "levels": Counter(), "example": message,
            }  # fmt: skip
        entry["count"] += 1
        entry["levels"][level] += 1
        entry["last_at"] = ts
    templates = {c.cluster_id: c.get_template() for c in miner.drain.clusters}
    out = [
        {
            "template": templates[cluster],
            "count": e["count"],
            "levels": dict(e["levels"]),
            "first_at": e["first_at"],
            "last_at": e["last_at"],
            "example": e["example"],
            "new": cluster not in known,
        }
        for cluster, e in found.items()
    ]
    return sorted(out, key=lambda p: (-p["count"], p["template"]))
