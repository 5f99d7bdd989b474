"""Where history lives: a ClickHouse server, or chDB embedded at a data directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from producers.settings import env_field
from sinks.cluster import Cluster
from streams.settings import log_format


@dataclass(frozen=True)
class StoreSettings:
    #: ``chdb:///path`` (embedded) or ``http(s)://user:password@host:8123``; empty means
    #: chDB under ``data_dir``.
    clickhouse_dsn: str = env_field("VIGIL_CLICKHOUSE_DSN", "", secret=True)
    database: str = env_field("VIGIL_CLICKHOUSE_DATABASE", "vigil")
    data_dir: Path = env_field("VIGIL_DATA_DIR", Path(".vigil"), Path)
    #: A ClickHouse cluster's name (its ``remote_servers`` entry): the schema is made
    #: ``ON CLUSTER`` in its replicated and distributed form (``sinks.cluster``). Empty:
    #: one node, as chDB runs.
    clickhouse_cluster: str = env_field("VIGIL_CLICKHOUSE_CLUSTER", "")
    #: Raw events older than this are dropped by ClickHouse (TTL).
    retention_days: int = env_field("VIGIL_RETENTION_DAYS", 90, int)
    #: History queries (CLI, HTTP, reports) stop with an error past this many seconds...
    query_timeout_s: float = env_field("VIGIL_QUERY_TIMEOUT_S", 10.0, float)
    #: ...or when they would return more rows than this.
    query_max_rows: int = env_field("VIGIL_QUERY_MAX_ROWS", 100_000, int)

    @property
    def dsn(self) -> str:
        return self.clickhouse_dsn or f"chdb://{self.data_dir.resolve() / 'chdb'}"

    @property
    def cluster(self) -> Cluster | None:
        return Cluster(self.clickhouse_cluster) if self.clickhouse_cluster else None

    @property
    def embedded(self) -> bool:
        return self.dsn.startswith("chdb://")


@dataclass(frozen=True)
class HistoryClientSettings:
    """Where ``vigil history`` and ``vigil report`` ask first: a running worker's HTTP API
    (``none``: the store itself, directly)."""

    #: Empty: the worker at ``VIGIL_WEB_HOST:VIGIL_WEB_PORT``.
    history_url: str = env_field("VIGIL_HISTORY_URL", "")

    def url(self, given: str | None, web_host: str, web_port: int) -> str | None:
        """``given`` (a command-line option), else the setting, else the worker's own
        address; None means the store itself.

        >>> HistoryClientSettings().url(None, "127.0.0.1", 6066)
        'http://127.0.0.1:6066'
        >>> HistoryClientSettings(history_url="none").url(None, "h", 1) is None
        True
        """
        url = given or self.history_url or f"http://{web_host}:{web_port}"
        return None if url == "none" else url


@dataclass(frozen=True)
class ChServerSettings:
    """``vigil chserver``: ClickHouse's HTTP interface in front of one chDB directory."""

    #: The chDB directory served when ``--path`` is not given is ``<data dir>/chdb``.
    data_dir: Path = env_field("VIGIL_DATA_DIR", Path(".vigil"), Path)
    #: Needed (HTTP basic auth) to serve anything but a loopback address.
    password: str = env_field("VIGIL_CHSERVER_PASSWORD", "", secret=True)
    log_level: str = env_field("VIGIL_LOG_LEVEL", "info")
    log_format: str = env_field("VIGIL_LOG_FORMAT", "json", log_format)

    def path(self, given: str | None) -> Path:
        """The directory to serve: ``given``, else ``<data dir>/chdb``.

        >>> ChServerSettings(data_dir=Path("/srv/vigil")).path(None)
        PosixPath('/srv/vigil/chdb')
        >>> ChServerSettings().path("/elsewhere")
        PosixPath('/elsewhere')
        """
        return Path(given) if given else self.data_dir.resolve() / "chdb"
