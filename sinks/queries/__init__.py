"""The SQL of the history queries (``NAME.sql`` beside this module) and how it runs.

Each query is SQL in a ``.sql`` file here; :mod:`sinks.history` gives them their Python
face. User input only ever travels as bound
parameters (``{name:Type}``, bound by ClickHouse); the only text put into SQL here is the
database name (checked by the migrations) and fragments chosen from fixed tables
(:data:`AGGREGATES`). Queries run through :class:`ReadOnly`: ``readonly=1``, a time limit
and a row limit on every statement, and nothing but SELECT.

>>> from sinks.queries import parse_duration, like_pattern
>>> parse_duration("90m"), parse_duration("2d")
(5400.0, 172800.0)
>>> like_pattern("50%_off")
'%50\\\\%\\\\_off%'
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from importlib import resources
from typing import Any

from producers.series import NotASeriesKey, SeriesKey
from sinks.migrations import strip_comments

#: ``agg`` of a series query -> the SQL that computes it per bucket.
#: What a query's text may hold besides typed parameters: SQL that code builds from its
#: own constants (an aggregate of :data:`AGGREGATES`; the window figures and quantiles of
#: ``streams.figures``), never text from a request.
FRAGMENTS = frozenset({"agg", "figures", "quantiles"})
AGGREGATES = {
    "count": "count()",
    "sum": "sum(value)",
    "avg": "avg(value)",
    "min": "min(value)",
    "max": "max(value)",
    "stddev": "stddevPop(value)",
    "p50": "quantileExactInclusive(0.5)(value)",
    "p95": "quantileExactInclusive(0.95)(value)",
    "p99": "quantileExactInclusive(0.99)(value)",
    "error_rate": "countIf(ok = false) / count()",
}
LEVELS = ("debug", "info", "warning", "error", "critical")
MAX_POINTS = 10_000
MAX_LIMIT = 10_000
#: ClickHouse error codes that mean "past the limits", not "broken".
_TIMEOUT, _TOO_MANY_ROWS = 159, 396


class HistoryError(ValueError):
    """A query that cannot be answered as asked; ``status`` is its HTTP status."""

    status = 400


class QueryTimeout(HistoryError):
    status = 504


class TooManyRows(HistoryError):
    status = 413


@dataclass(frozen=True)
class Limits:
    timeout_s: float = 10.0
    max_rows: int = 100_000


@cache
def sql_text(name: str) -> str:
    return resources.files("sinks.queries").joinpath(f"{name}.sql").read_text()


def query_names() -> list[str]:
    return sorted(
        e.name.removesuffix(".sql")
        for e in resources.files("sinks.queries").iterdir()
        if e.name.endswith(".sql")
    )


class ReadOnly:
    """A clickhouse-connect client used for SELECTs only, each under :class:`Limits`.

    ``readonly=1`` travels in each query's SETTINGS clause. (On chDB a setting applied
    with SET, as an INSERT through ``query`` does, would stick to the whole process: this
    class never sends anything but a SELECT.)
    """

    def __init__(self, client: Any, database: str, limits: Limits = Limits()) -> None:
        self.client = client
        self.database = database
        self.limits = limits

    @classmethod
    def of(cls, client: Any, settings: Any) -> ReadOnly:
        """On ``client``, with the database and limits of ``settings`` (StoreSettings)."""
        limits = Limits(settings.query_timeout_s, settings.query_max_rows)
        return cls(client, settings.database, limits)

    def select(self, name: str, params: dict[str, Any], **fragments: str) -> list[dict[str, Any]]:
        """Run query ``name`` with typed ``params``; ``fragments`` (only :data:`FRAGMENTS`,
        built by code, never from a request) are pasted into its text."""
        unknown = set(fragments) - FRAGMENTS
        if unknown:
            raise ValueError(f"{name}: {sorted(unknown)} are not SQL fragments")
        sql = sql_text(name).replace("{db}", self.database)
        for key, fragment in fragments.items():
            sql = sql.replace("{" + key + "}", fragment)
        return self.execute(name, sql, params)

    def execute(self, name: str, sql: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        """Run one SELECT under the limits; rows as dicts. ``name`` is for messages."""
        body = strip_comments(sql)
        if not re.match(r"(?i)(SELECT|WITH)\b", body):
            raise HistoryError(f"query {name!r} is not a SELECT")
        settings = {
            "readonly": 1,
            "max_execution_time": self.limits.timeout_s,
            "max_result_rows": self.limits.max_rows,
            "result_overflow_mode": "throw",
        }
        try:
            result = self.client.query(body, parameters=params, settings=settings)
        except Exception as exc:  # the driver's DatabaseError carries the server's code
            text = str(exc)
            if f"Code: {_TIMEOUT}." in text:
                raise QueryTimeout(
                    f"the {name} query ran past its time limit of {self.limits.timeout_s:g} s: "
                    "narrow the time range or raise VIGIL_QUERY_TIMEOUT_S"
                ) from None
            if f"Code: {_TOO_MANY_ROWS}." in text:
                raise TooManyRows(
                    f"the {name} query returns more than {self.limits.max_rows} rows: "
                    "narrow it or lower its limit"
                ) from None
            raise
        return list(result.named_results())


# -- parameters -------------------------------------------------------------------------
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str, *, unit: str = "s") -> float:
    """Seconds in ``"90s"``, ``"15m"``, ``"24h"``, ``"7d"``; a bare number is in ``unit``.

    (Not ``streams.windows.parse_duration``: people type ``1.5h`` or ``24`` here, which a
    window list should refuse.)
    """
    match = _DURATION.match(str(text))
    if not match or float(match[1]) <= 0:
        raise HistoryError(f"{text!r} is not a duration like 30s, 15m, 24h or 7d")
    return float(match[1]) * _UNITS[match[2] or unit]


def parse_time(text: str, *, now: datetime) -> datetime:
    """An instant: ``now``, a duration ago (``24h``), epoch ms, or ISO 8601 (UTC if naive)."""
    text = str(text).strip()
    if text == "now":
        return now
    if text.isdigit() and len(text) >= 12:
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    if _DURATION.match(text):
        return now - timedelta(seconds=parse_duration(text))
    try:
        at = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise HistoryError(
            f"{text!r} is not a time: use now, a duration ago (24h), epoch ms or ISO 8601"
        ) from None
    return at if at.tzinfo else at.replace(tzinfo=UTC)


def time_range(since: str, until: str, *, now: datetime) -> tuple[datetime, datetime]:
    start, end = parse_time(since, now=now), parse_time(until, now=now)
    if end <= start:
        raise HistoryError(
            f"the range is empty: {start.isoformat()} is not before {end.isoformat()}"
        )
    return start, end


def limit(value: int | str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise HistoryError(f"limit {value!r} is not a whole number") from None
    if not 1 <= n <= MAX_LIMIT:
        raise HistoryError(f"limit must be between 1 and {MAX_LIMIT}, got {n}")
    return n


def like_pattern(text: str) -> str:
    """A LIKE pattern that finds ``text`` literally, anywhere, lower-cased."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def parse_series(series: str) -> SeriesKey:
    """A series key given as a query parameter (a bad one is the caller's error: 400)."""
    try:
        return SeriesKey.parse(series)
    except NotASeriesKey as exc:
        raise HistoryError(str(exc)) from None


def change(now: float | None, before: float | None) -> float | None:
    """Relative change ``now / before - 1``; None when either is missing or before is 0."""
    if now is None or before is None or before == 0 or _nan(now) or _nan(before):
        return None
    return now / before - 1.0


def _nan(x: Any) -> bool:
    return isinstance(x, float) and math.isnan(x)


def clean(value: Any) -> Any:
    """JSON-safe: times as ISO 8601 (UTC, ``Z``), NaN and inf as None, recursively."""
    if isinstance(value, datetime):
        at = value if value.tzinfo else value.replace(tzinfo=UTC)
        return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, dict):
        return {k: clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value
