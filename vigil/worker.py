"""``vigil worker``: the stream worker process, wired from the environment."""

from __future__ import annotations

import contextlib
import logging
import os
import sys

import faust

from sinks import history
from sinks.writer import ClickHouseSink
from streams.app import create_app
from streams.rules import RuleFileError
from vigil.config import Config
from vigil.embedded import EmbeddedBroker


def run(environ: dict[str, str] | None = None) -> None:
    """Run until SIGTERM/SIGINT; starts an embedded broker when none is configured."""
    config = Config.from_env(os.environ if environ is None else environ)
    try:
        rules = config.worker.load_rules()
    except RuleFileError as exc:
        print(f"vigil: the alert rules cannot be used:\n{exc}", file=sys.stderr)
        raise SystemExit(2) from None
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
    sink = ClickHouseSink(config.store)
    queries = history.Service(config.store)
    app = create_app(
        config.worker,
        config.kafka,
        sink,
        bootstrap=bootstrap,
        data_dir=config.store.data_dir,
        rules=rules,
        history=queries,
    )
    worker = faust.Worker(app, loglevel=config.worker.log_level, quiet=True, redirect_stdouts=False)
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    try:
        worker.execute_from_commandline()
    finally:
        with contextlib.suppress(Exception):
            queries.close()
            if sink.client is not None:
                sink.client.close()
        if broker is not None:
            broker.stop()
