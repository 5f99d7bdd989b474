"""The figures a closed window reports for its series, declared once.

From :data:`FIGURES` derive: the quantiles the window's sketch is asked for
(:data:`QUANTILES`, ``streams.aggregates``), the signals rules and detectors may use
(:data:`SIGNALS`, ``streams.rules``), the columns the dashboard's chart reads and draws
(``sinks.history.chart``). Held to it by ``tests/integration/test_figures.py``: the
``windows`` table's columns, and the figures of a window record's row (written out in
``streams.records``: a loop over the names costs three times as much per window).

Adding a quantile, say p90, is a :class:`Figure` here (the windows topic's
``streams.records.WindowMessage`` is made from this list), a field of
:class:`streams.records.WindowRecord` with its place in ``WindowRecord._message``, and a
migration adding its column.

>>> [f.name for f in FIGURES if f.quantile]
['p50', 'p95', 'p99']
>>> SIGNALS[:4]
('count', 'errors', 'error_rate', 'success_rate')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Figure:
    name: str
    #: Its column's type in the ``windows`` table.
    column: str
    doc: str
    #: The quantile of the window's values it is, if it is one.
    quantile: float | None = None
    #: Rules and detectors may use it as their signal.
    signal: bool = True
    #: The dashboard's chart draws it as a line (on the values' scale).
    line: bool = False

    @property
    def type(self) -> Any:
        """Its Python type (the windows topic's ``streams.records.WindowMessage``).

        >>> [f.type for f in FIGURES[:3]] + [FIGURES[-1].type]
        [<class 'int'>, <class 'int'>, <class 'float'>, float | None]
        """
        return _TYPES[self.column]


_VALUE = "Nullable(Float64)"
_TYPES: dict[str, Any] = {"UInt64": int, "Float64": float, _VALUE: float | None}

FIGURES: tuple[Figure, ...] = (
    Figure("count", "UInt64", "events in the window"),
    Figure("errors", "UInt64", "events with ok = false"),
    Figure("error_rate", "Float64", "errors / count (0 without events)"),
    Figure("values", "UInt64", "events that carried a value", signal=False),
    Figure("sum", "Float64", "sum of the values"),
    Figure("mean", _VALUE, "mean of the values", line=True),
    Figure("min", _VALUE, "smallest value"),
    Figure("max", _VALUE, "largest value"),
    Figure("stddev", _VALUE, "population standard deviation of the values"),
    Figure("p50", _VALUE, "median of the values (1 % relative error)", 0.5, line=True),
    Figure("p95", _VALUE, "95th percentile of the values (1 % relative error)", 0.95, line=True),
    Figure("p99", _VALUE, "99th percentile of the values (1 % relative error)", 0.99, line=True),
)

NAMES: tuple[str, ...] = tuple(f.name for f in FIGURES)
QUANTILES: tuple[float, ...] = tuple(f.quantile for f in FIGURES if f.quantile is not None)
QUANTILE_NAMES: tuple[str, ...] = tuple(f.name for f in FIGURES if f.quantile is not None)
#: What a rule's ``signal`` may name: the figures rules may use, and ``success_rate``
#: (1 - error_rate) after ``error_rate``.
SIGNALS: tuple[str, ...] = tuple(
    name
    for f in FIGURES
    if f.signal
    for name in ((f.name, "success_rate") if f.name == "error_rate" else (f.name,))
)
#: What the dashboard's chart of a series draws per point: counts and the lines.
CHART: tuple[str, ...] = tuple(
    f.name for f in FIGURES if f.line or f.name in ("count", "errors", "min", "max")
)
LINES: tuple[str, ...] = tuple(f.name for f in FIGURES if f.line)
