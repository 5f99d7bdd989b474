"""History from Python: every catalogue query (``vigil history NAME``) as a method, its
answer as rows, and as a pandas DataFrame or an Arrow table where those are installed.

>>> from vigil import History
>>> history = History.from_env()                    # doctest: +SKIP
>>> runs = history.workflows(since="24h")           # doctest: +SKIP
>>> runs.rows[0].success_rate, runs.rows[0].p95_ms  # doctest: +SKIP
(0.98, 1840.0)
>>> runs.to_pandas()                                # doctest: +SKIP

It asks the running worker over HTTP (``VIGIL_HISTORY_URL``, default the worker's
``VIGIL_WEB_HOST:VIGIL_WEB_PORT``, with the API token) and, when no worker answers, opens
the store itself, as ``vigil history`` does. A query's parameters are its keyword
arguments (``help(History)`` lists them; each method's docstring says its own), given as
text or numbers; a bad one raises :class:`sinks.queries.HistoryError`.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from producers.settings import from_env
from sinks.catalog import CATALOG
from sinks.settings import HistoryClientSettings, StoreSettings
from streams import auth
from streams.settings import WorkerSettings
from vigil import answers

_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$")


class Row(dict[str, Any]):
    """One row: a dict whose keys are also attributes (``row.p95_ms``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def typed(value: Any) -> Any:
    """A JSON value with its times as ``datetime`` (UTC), in lists and objects too.

    >>> typed({"day": "2026-11-30T00:00:00Z", "n": 3})["day"].isoformat()
    '2026-11-30T00:00:00+00:00'
    """
    if isinstance(value, str) and _TIME.match(value):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if isinstance(value, dict):
        return Row({k: typed(v) for k, v in value.items()})
    if isinstance(value, list):
        return [typed(v) for v in value]
    return value


@dataclass(frozen=True)
class Result:
    """A query's answer: ``data`` as the query gives it (JSON), ``rows`` its main table
    (the query's list, or its first list of rows), typed; and where it came from."""

    name: str
    data: Any
    source: str

    @functools.cached_property
    def rows(self) -> list[Row]:
        main = answers.main_rows(self.data)
        return [typed(r) if isinstance(r, dict) else Row(value=typed(r)) for r in main]

    def to_pandas(self) -> Any:
        """The rows as a pandas DataFrame (pandas must be installed)."""
        try:
            import pandas
        except ImportError:
            raise ImportError("to_pandas needs pandas: pip install pandas") from None
        return pandas.DataFrame([dict(r) for r in self.rows])

    def to_arrow(self) -> Any:
        """The rows as an Arrow table (pyarrow must be installed)."""
        try:
            import pyarrow
        except ImportError:
            raise ImportError("to_arrow needs pyarrow: pip install pyarrow") from None
        return pyarrow.Table.from_pylist([dict(r) for r in self.rows])


def render_report(data: Any, fmt: str) -> str:
    """The report's data as ``fmt``: html (charts, one self-contained file), md, csv or
    json (``vigil report --format``)."""
    import json

    from sinks import charts, reports

    renderers = {
        "html": charts.html,
        "md": reports.markdown,
        "csv": reports.csv_text,
        "json": lambda d: json.dumps(d, indent=2, ensure_ascii=False),
    }
    if fmt not in renderers:
        raise ValueError(f"report format {fmt!r}: one of {', '.join(renderers)}")
    return str(renderers[fmt](data))


class History:
    """The catalogue's queries on one Vigil's history (``url``: a worker's address, None
    for the store itself)."""

    def __init__(
        self, settings: StoreSettings, url: str | None = None, token: str | None = None
    ) -> None:
        self.settings = settings
        self.url = url
        self.token = token

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, url: str | None = None) -> History:
        """Configured as ``vigil history`` is: the store, the worker's address and token
        from the ``VIGIL_*`` variables of ``environ`` (default: this process's)."""
        env = os.environ if environ is None else environ
        worker = from_env(WorkerSettings, env)
        client = from_env(HistoryClientSettings, env)
        store = from_env(StoreSettings, env)
        token = auth.client_token(worker.api_token, store.data_dir)
        return cls(store, client.url(url, worker.web_host, worker.web_port), token)

    def query(self, name: str, **params: Any) -> Result:
        """Run catalogue query ``name`` with ``params``."""
        if name not in CATALOG:
            raise AttributeError(f"no history query {name!r}; the catalogue has {sorted(CATALOG)}")
        known = {p.name for p in CATALOG[name].params}
        unknown = sorted(set(params) - known)
        if unknown:
            raise TypeError(f"{name}() has no parameter {unknown[0]!r}; it takes {sorted(known)}")
        text = {k: str(v) for k, v in params.items() if v is not None}
        data, source = answers.ask(self.settings, self.url, name, text, token=self.token)
        return Result(name, data, source)

    def report_text(self, since: str = "24h", fmt: str = "html", **options: str) -> str:
        """The report of ``vigil report`` (html, md, csv or json) as text; ``options``:
        ``until``, ``kind`` (workflows, usage, performance, reliability, comprehensive),
        ``title``, ``workflows``."""
        return render_report(self.query("report", since=since, **options).data, fmt)

    def write_report(
        self, path: str | os.PathLike[str], since: str = "24h", **options: str
    ) -> Path:
        """The report written to ``path``, its format from the extension (.html, .md,
        .csv or .json); ``options`` as :meth:`report_text`'s."""
        target = Path(path)
        fmt = target.suffix.lstrip(".").lower() or "html"
        target.write_text(self.report_text(since, fmt, **options), encoding="utf-8")
        return target

    def summary(self, days: float = 1) -> dict[str, Result]:
        """What ``vigil summary`` prints, over the last ``days``: workflows, errors and
        recoveries, alert statistics, and the metrics each service sends."""
        since = f"{days * 24:g}h"
        return {
            "workflows": self.query("workflows", hours=since),
            "errors": self.query("errors", since=since),
            "alerts": self.query("alert_stats", since=since),
            "metrics": self.query("metrics", since=since),
        }

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or name not in CATALOG:
            raise AttributeError(name)
        query = CATALOG[name]

        def run(*args: Any, **params: Any) -> Result:
            required = [p.name for p in query.params if p.default is None]
            params.update(zip(required, args, strict=False))
            return self.query(name, **params)

        run.__name__ = name
        run.__doc__ = (
            query.help
            + "\n\n"
            + "\n".join(f"{p.name}: {p.help} (default {p.default!r})" for p in query.params)
        )
        return run

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *CATALOG})
