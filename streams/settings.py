"""Settings of a stream worker."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from producers.settings import env_field
from streams import rules as rules_file
from streams.windows import WindowSpec, parse_windows


def log_format(text: str) -> str:
    """``json`` or ``text``, whatever the case."""
    fmt = text.strip().lower()
    if fmt not in {"json", "text"}:
        raise ValueError("expected json or text")
    return fmt


@dataclass(frozen=True)
class WorkerSettings:
    #: Tumbling widths and ``width/hop`` hopping windows, e.g. ``1m,5m,1h,5m/1m``.
    windows: tuple[WindowSpec, ...] = env_field("VIGIL_WINDOWS", parse_windows("1m"), parse_windows)
    grace_seconds: int = env_field("VIGIL_GRACE_SECONDS", 30, int)
    #: A partition without events this long lets its watermark follow the wall clock.
    idle_seconds: float = env_field("VIGIL_IDLE_SECONDS", 5.0, float)
    #: Window state is checkpointed this often (0: after every batch); the messages since
    #: the last checkpoint are committed with the next one, and replayed after a crash.
    checkpoint_seconds: float = env_field("VIGIL_CHECKPOINT_SECONDS", 5.0, float)
    #: Workflow statistics (runs, durations, step shares) cover this much event time.
    workflow_horizon_hours: float = env_field("VIGIL_WORKFLOW_HORIZON_HOURS", 24.0, float)
    #: A batch is at most this many Kafka messages ...
    batch_max_messages: int = env_field("VIGIL_BATCH_MAX_MESSAGES", 2000, int)
    #: ... or what arrived within this many seconds ...
    batch_seconds: float = env_field("VIGIL_BATCH_SECONDS", 0.5, float)
    #: ... and is processed and stored in parts of at most this many events, each one
    #: insert per partition: ClickHouse parses JSON rows fastest in big inserts, and every
    #: materialized view costs a fixed share per insert (bench.sink printed 75,477 rows/s
    #: stored with 20,000 events a batch, 172,090-214,867 with 100,000 in separate runs;
    #: with the views in parallel, 167,845-192,301 with 100,000 against 193,922-222,072
    #: with 200,000). Bounding by messages alone held a producer sending one event a message
    #: (most that are not the SDK) to 200 events an insert: bench.rerouting drained 1,568
    #: events/s so, 6,483 with 2,000 messages a batch.
    batch_max_events: int = env_field("VIGIL_BATCH_MAX_EVENTS", 100_000, int)
    #: The alert rules file; "default" for the shipped rules, "none" for no alerting.
    rules: str = env_field("VIGIL_RULES", "default")
    web_host: str = env_field("VIGIL_WEB_HOST", "127.0.0.1")
    web_port: int = env_field("VIGIL_WEB_PORT", 6066, int)
    #: The address people open the dashboard at (e.g. the front door's): alert messages
    #: link to their series' view there. Empty: no link.
    external_url: str = env_field("VIGIL_EXTERNAL_URL", "")
    #: Where the worker answers SQL on its embedded store, read-only (ClickHouse's HTTP
    #: interface, the API token as password): a port, 0 for any free one, ``off`` for
    #: none. Only with embedded chDB (a ClickHouse server answers SQL itself).
    sql_port: str = env_field("VIGIL_SQL_PORT", "8123")
    #: How the group's other workers reach this one's pages (they ask it for the
    #: partitions it holds). Empty: ``http://VIGIL_WEB_HOST:VIGIL_WEB_PORT``, with this
    #: machine's address when the host is 0.0.0.0.
    advertised_url: str = env_field("VIGIL_ADVERTISED_URL", "")
    log_level: str = env_field("VIGIL_LOG_LEVEL", "warning")
    #: ``json`` (one object a line: time, level, logger, message) or ``text``.
    log_format: str = env_field("VIGIL_LOG_FORMAT", "json", log_format)
    #: Every HTTP page but /health and /ready needs ``Authorization: Bearer <token>``.
    #: Empty: a token is made once and kept in ``<data dir>/api-token`` (mode 0600);
    #: ``none`` turns the check off (the demo does).
    api_token: str = env_field("VIGIL_API_TOKEN", "", secret=True)
    #: On SIGTERM the worker stores what it processed, checkpoints and commits, for at
    #: most this long (what is left is replayed by the next worker).
    shutdown_seconds: float = env_field("VIGIL_SHUTDOWN_SECONDS", 20.0, float)

    def load_rules(self) -> rules_file.RuleSet:
        """The rule set ``VIGIL_RULES`` names, checked against ``VIGIL_WINDOWS``; raises
        :class:`streams.rules.RuleFileError` with every mistake."""
        if self.rules == "none":
            return rules_file.RuleSet()
        default = self.rules == "default"
        return rules_file.load(
            rules_file.DEFAULT_RULES if default else Path(self.rules),
            windows=[s.label for s in self.windows],
            hops={s.label: s.hop_ms for s in self.windows},
            skip_unconfigured=default,  # the user did not ask for those rules: no error
        )
