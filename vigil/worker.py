"""``vigil worker``: the stream worker process, wired from the environment."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import sys
from typing import Any

import faust

from sinks import chserver, scheduled, service
from sinks.store import open_client
from sinks.writer import ClickHouseSink
from streams import auth, collector, logs, stopping
from streams.app import create_app
from streams.rules import RuleFileError
from vigil.config import Config
from vigil.embedded import EmbeddedBroker


def run(environ: dict[str, str] | None = None) -> None:
    """Run until SIGTERM/SIGINT; starts an embedded broker when none is configured."""
    gc.set_threshold(*collector.THRESHOLDS)
    config = Config.from_env(os.environ if environ is None else environ)
    try:
        rules = config.worker.load_rules()
    except RuleFileError as exc:
        print(f"vigil: the alert rules cannot be used:\n{exc}", file=sys.stderr)
        raise SystemExit(2) from None
    if clash := _port_clash(config):
        print(f"vigil: {clash}", file=sys.stderr)
        raise SystemExit(2)
    if rules.skipped:
        print(
            f"vigil: default rules left out (their window is not in VIGIL_WINDOWS): "
            f"{', '.join(rules.skipped)}",
            file=sys.stderr,
        )
    broker = None
    bootstrap = config.kafka.kafka_bootstrap
    if config.kafka.embedded_kafka:
        broker = EmbeddedBroker().start()
        bootstrap = broker.bootstrap
        print(f"vigil: started the embedded Kafka broker at {bootstrap}", file=sys.stderr)
    config.store.data_dir.mkdir(parents=True, exist_ok=True)
    token = auth.resolve_token(config.worker.api_token, config.store.data_dir)
    if token is None:
        print("vigil: the HTTP API asks for no token (VIGIL_API_TOKEN=none)", file=sys.stderr)
    elif not config.worker.api_token:
        where = config.store.data_dir / auth.TOKEN_FILE
        print(f"vigil: the HTTP API needs the bearer token kept in {where}", file=sys.stderr)
    sink = ClickHouseSink(config.store)
    queries = service.Service(config.store)
    jobs = None
    if config.schedule.any:
        jobs = scheduled.Jobs(
            config.schedule,
            config.store.data_dir,
            config.store.database,
            answer=queries.answer,
            open_store=lambda: open_client(config.store, migrate=False),
        )
    sql = _serve_sql(config, token)
    app = create_app(
        config.worker,
        config.kafka,
        sink,
        bootstrap=bootstrap,
        data_dir=config.store.data_dir,
        rules=rules,
        history=queries,
        api_token=token,
        scheduled=jobs,
    )
    level, fmt = config.worker.log_level, config.worker.log_format
    worker = _Worker(
        app,
        stop_within=stopping.within(config.worker.shutdown_seconds),
        loglevel=level,
        quiet=True,
        redirect_stdouts=False,
        logging_config=logs.logging_config(level, fmt),
    )
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    try:
        worker.execute_from_commandline()
    finally:
        with contextlib.suppress(Exception):
            if sql is not None:
                sql.shutdown()
            queries.close()
            if sink.client is not None:
                sink.client.close()
        if broker is not None:
            broker.stop()


class _Worker(faust.Worker):
    """Faust's worker, whose stopping is bounded: once asked to stop, the process exits
    within ``stop_within`` seconds and says where it was stuck if it had to
    (:mod:`streams.stopping`)."""

    def __init__(self, *args: Any, stop_within: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.stop_within = stop_within

    async def on_stop(self) -> None:
        stopping.arm(self.stop_within, asyncio.get_running_loop())
        await super().on_stop()


def _port_clash(config: Config) -> str | None:
    """Why the API and the read-only SQL cannot both be served, or None. Given one port,
    the SQL server took it and the API stopped the worker with a traceback after it had
    started; asking /stats on the port got the SQL server's 404."""
    web, sql = config.worker.web_port, _own_sql_port(config)
    if sql is not None and web != 0 and sql.isdigit() and int(sql) == web:
        return (
            f"VIGIL_WEB_PORT and VIGIL_SQL_PORT are both {web}: the HTTP API and the "
            "read-only SQL need a port each (VIGIL_SQL_PORT=off for no SQL)"
        )
    return None


def _own_sql_port(config: Config) -> str | None:
    """``VIGIL_SQL_PORT`` when the worker answers SQL itself: on the embedded store,
    unless ``off`` (a ClickHouse server answers SQL itself)."""
    port = config.worker.sql_port
    return None if port == "off" or not config.store.embedded else port


def _serve_sql(config: Config, token: str | None) -> Any:
    """Read-only SQL on the embedded store (``VIGIL_SQL_PORT``), or None: off, a
    ClickHouse server (it answers SQL itself), or a port taken (said, and the worker runs
    on without it)."""
    port = _own_sql_port(config)
    if port is None:
        return None
    host = config.worker.web_host
    try:
        server = chserver.read_only(
            config.store.dsn.removeprefix("chdb://"),
            host,
            int(port),
            token or "",
            max_execution_time=config.store.query_timeout_s,
            max_result_rows=config.store.query_max_rows,
            result_overflow_mode="throw",
        )
    except (OSError, ValueError) as exc:
        print(f"vigil: no SQL on the store (VIGIL_SQL_PORT={port}): {exc}", file=sys.stderr)
        return None
    bound = server.server_address[1]
    print(f"vigil: read-only SQL on the store at http://{host}:{bound}", file=sys.stderr)
    return server
