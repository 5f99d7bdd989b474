"""What a worker does on a schedule: a daily report, written to a directory and sent
through Apprise, and archiving of old day partitions (``VIGIL_REPORT_*``,
``VIGIL_ARCHIVE_*``).

Each job runs once a day at its time (``HH:MM``, UTC), or at the first check after it
when the worker was down then; a job that has run for a day does not run again that day,
across restarts (the days done are kept in ``DATA_DIR/scheduled.json``). In a group, the
worker that holds partition 0 of the events topic runs them, so each runs once. A job
waits until the worker has stored everything Kafka held for it when it checked (so a
report after a restart includes the backlog), but no more than :data:`PATIENCE_MS` past
its time: under a steady load the worker is never exactly caught up.

- **Report** (``VIGIL_REPORT_AT``): the report of ``VIGIL_REPORT_KIND`` over the 24 hours
  before, as ``DIR/vigil-KIND-DAY.html`` (``VIGIL_REPORT_DIR``, default
  ``DATA_DIR/reports``), and, with ``VIGIL_REPORT_APPRISE`` (an Apprise URL: email, Slack,
  a JSON webhook, ...), sent there: its Markdown as the body, the HTML attached.
- **Archive** (``VIGIL_ARCHIVE_AT``): day partitions older than
  ``VIGIL_ARCHIVE_AFTER_DAYS`` to Parquet under ``DATA_DIR/archive`` (``sinks.archive``).

>>> due(at=6 * 60, now_ms=1_700_000_000_000, done=None)  # 2023-11-14 22:13 UTC
'2023-11-14'
>>> due(at=23 * 60, now_ms=1_700_000_000_000, done=None)  # 23:00 has not come yet
'2023-11-13'
>>> due(at=6 * 60, now_ms=1_700_000_000_000, done="2023-11-14") is None
True
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from producers.settings import env_field

log = logging.getLogger(__name__)

STATE = "scheduled.json"
#: How long past its time a job waits for the worker to catch up.
PATIENCE_MS = 10 * 60_000
_AT = re.compile(r"^([01]?\d|2[0-3]):([0-5]\d)$")


def parse_at(text: str) -> int | None:
    """Minutes after midnight of ``HH:MM``; None for an empty text (the job is off).

    >>> parse_at("06:30"), parse_at("")
    (390, None)
    """
    if not text.strip():
        return None
    match = _AT.match(text.strip())
    if match is None:
        raise ValueError(f"expected HH:MM (UTC), got {text!r}")
    return int(match[1]) * 60 + int(match[2])


def _at(text: str) -> str:
    parse_at(text)
    return text.strip()


@dataclass(frozen=True)
class ScheduleSettings:
    report_at: str = env_field("VIGIL_REPORT_AT", "", _at)
    report_kind: str = env_field("VIGIL_REPORT_KIND", "comprehensive")
    #: Empty: ``DATA_DIR/reports``.
    report_dir: str = env_field("VIGIL_REPORT_DIR", "")
    report_apprise: str = env_field("VIGIL_REPORT_APPRISE", "", secret=True)
    archive_at: str = env_field("VIGIL_ARCHIVE_AT", "", _at)
    archive_after_days: int = env_field("VIGIL_ARCHIVE_AFTER_DAYS", 30, int)

    @property
    def any(self) -> bool:
        return bool(self.report_at or self.archive_at)


def due(*, at: int, now_ms: int, done: str | None) -> str | None:
    """The day (``YYYY-MM-DD``) whose run at minute ``at`` is the latest that has come by
    ``now_ms``, unless that day is ``done``."""
    now = datetime.fromtimestamp(now_ms / 1000, UTC)
    day = now.date() if now.hour * 60 + now.minute >= at else now.date() - timedelta(days=1)
    return None if day.isoformat() == done else day.isoformat()


class Jobs:
    """The scheduled jobs of one worker. ``answer(name, params)`` asks a history query
    (the worker's ``sinks.service.Service.answer``); ``open_store()`` opens a writable
    client (for the archive)."""

    def __init__(
        self,
        settings: ScheduleSettings,
        data_dir: Path,
        database: str,
        *,
        answer: Callable[[str, dict[str, str]], Any],
        open_store: Callable[[], Any],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.data_dir = data_dir
        self.database = database
        self.answer = answer
        self.open_store = open_store
        self.clock = clock
        self.done: dict[str, str] = self._load()
        self.runs: dict[str, int] = {"report": 0, "archive": 0, "failed": 0}
        self._busy = False

    def _load(self) -> dict[str, str]:
        try:
            return dict(json.loads((self.data_dir / STATE).read_text()))
        except (OSError, ValueError):
            return {}

    def _save(self) -> None:
        tmp = self.data_dir / (STATE + ".tmp")
        tmp.write_text(json.dumps(self.done, sort_keys=True))
        tmp.replace(self.data_dir / STATE)

    async def tick(self, caught_up: bool = True) -> list[str]:
        """Run every job that is due; returns the ``job day`` of each run. ``caught_up``:
        the worker stored all Kafka held for it (else a job waits, up to its patience)."""
        if self._busy:  # a long job still runs: the next check comes soon enough
            return []
        self._busy = True
        try:
            return await self._due_jobs(caught_up)
        finally:
            self._busy = False

    async def _due_jobs(self, caught_up: bool) -> list[str]:
        now_ms = int(self.clock() * 1000)
        ran = []
        jobs = (("report", self.settings.report_at, self._report),
                ("archive", self.settings.archive_at, self._archive))  # fmt: skip
        for name, at, job in jobs:
            minute = parse_at(at)
            if minute is None:
                continue
            day = due(at=minute, now_ms=now_ms, done=self.done.get(name))
            if day is None:
                continue
            when = datetime.combine(date.fromisoformat(day), datetime.min.time(), UTC)
            when += timedelta(minutes=minute)  # the time the run was due
            if not caught_up and now_ms - when.timestamp() * 1000 < PATIENCE_MS:
                continue
            try:
                await job(when)
            except Exception as exc:  # a failed job is said and tried at the next check
                self.runs["failed"] += 1
                log.warning("scheduled %s of %s failed: %r", name, day, exc)
                continue
            self.runs[name] += 1
            self.done[name] = day
            self._save()
            ran.append(f"{name} {day}")
        return ran

    async def _report(self, end: datetime) -> None:
        """The report of the 24 hours before ``end``, the run's due time."""
        from sinks import charts, reports

        s = self.settings
        day = end.date()
        params = {
            "since": (end - timedelta(days=1)).isoformat(),
            "until": end.isoformat(),
            "kind": s.report_kind,
            "title": f"Vigil {s.report_kind} report, {day}",
        }
        status, data = await self.answer("report", params)
        if status != 200:
            raise RuntimeError(f"the report query answered {status}: {data}")
        folder = Path(s.report_dir) if s.report_dir else self.data_dir / "reports"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"vigil-{s.report_kind}-{day}.html"
        path.write_text(charts.html(data), encoding="utf-8")
        log.info("scheduled report of %s written to %s", day, path)
        if s.report_apprise:
            body = reports.markdown(data)
            await asyncio.to_thread(_send, s.report_apprise, params["title"], body, path)

    async def _archive(self, due: datetime) -> None:
        from sinks import archive

        before = due.date() - timedelta(days=self.settings.archive_after_days)
        directory = archive.under(self.data_dir)

        def run() -> int:
            client = self.open_store()
            try:
                return len(archive.export(client, self.database, before, directory))
            finally:
                client.close()

        moved = await asyncio.to_thread(run)
        log.info("scheduled archive: %d partitions before %s -> %s", moved, before, directory)


#: Most receivers cut a message far sooner; the whole report is attached anyway.
MAX_BODY = 8_000


def _send(url: str, title: str, body: str, attachment: Path) -> None:
    import apprise

    notifier = apprise.Apprise()
    if not notifier.add(url):
        raise ValueError("VIGIL_REPORT_APPRISE is not a URL Apprise knows")
    text = body if len(body) <= MAX_BODY else body[:MAX_BODY] + "\n\n(cut: the report is attached)"
    sent = notifier.notify(
        title=title, body=text, body_format=apprise.NotifyFormat.MARKDOWN, attach=str(attachment)
    )
    if not sent:
        raise RuntimeError("the report's receiver did not take it")
