"""The ``vigil`` command."""

from __future__ import annotations

import argparse
import sys
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vigil", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("worker", help="run a stream worker (settings from VIGIL_* variables)")
    demo = sub.add_parser("demo", help="run the whole pipeline on embedded parts with a simulator")
    demo.add_argument("--duration", type=float, default=40.0, help="seconds of simulation")
    demo.add_argument("--rate", type=int, default=2000, help="approximate events per second")
    demo.add_argument("--seed", type=int, default=7)
    demo.add_argument(
        "--linger", type=float, default=0.0, help="seconds the dashboard stays live after the feed"
    )
    simulate = sub.add_parser("simulate", help="publish simulated events to VIGIL_KAFKA_BOOTSTRAP")
    simulate.add_argument("--rate", type=int, default=2000, help="approximate events per second")
    simulate.add_argument("--duration", type=float, default=0, help="seconds; 0 runs until Ctrl-C")
    simulate.add_argument("--seed", type=int, default=7)
    broker = sub.add_parser("broker", help="run the embedded Kafka broker in the foreground")
    broker.add_argument("--port", type=int, default=0)
    summary = sub.add_parser("summary", help="print the history summary from ClickHouse")
    summary.add_argument("--since-hours", type=float, default=24.0)
    backtest = sub.add_parser(
        "backtest", help="score a timestamp,value CSV (or a corpus) as the live detector would"
    )
    backtest.add_argument("input", nargs="?", help="a CSV with columns timestamp,value")
    backtest.add_argument("--corpus", help="a folder: every CSV under it, same relative paths")
    backtest.add_argument("-o", "--output", required=True, help="output CSV (or folder)")
    alerts = sub.add_parser("alerts", help="alert transitions from the alerts topic")
    alerts_sub = alerts.add_subparsers(dest="alerts_command", required=True)
    tail = alerts_sub.add_parser("tail", help="print transitions as they are published")
    tail.add_argument("--from-beginning", action="store_true", help="from the oldest kept")
    tail.add_argument("--include-silenced", action="store_true")
    tail.add_argument("--json", action="store_true", help="one JSON object per line")
    _history_parser(sub)
    archive = sub.add_parser(
        "archive",
        help="move day partitions older than a date to Parquet files, or load them back",
        description="Needs the store to itself: stop the worker first (embedded chDB).",
    )
    archive.add_argument("--dir", default=None, help="archive directory (default DATA_DIR/archive)")
    mode = archive.add_mutually_exclusive_group(required=True)
    mode.add_argument("--before", help="archive partitions older than this date (YYYY-MM-DD)")
    mode.add_argument("--restore", action="store_true", help="load the archive back")
    forget = sub.add_parser(
        "forget",
        help="delete one user's rows everywhere: tables and archived files",
        description="Hashes USER as the SDK does (VIGIL_PRIVACY_MODE, VIGIL_PRIVACY_SECRET)."
        " Needs the store to itself: stop the worker first (embedded chDB).",
    )
    forget.add_argument("user", help="the user id as the application knows it")
    forget.add_argument("--hashed", action="store_true", help="USER is already as stored (h:...)")
    forget.add_argument("--dir", default=None, help="archive directory (default DATA_DIR/archive)")
    export = sub.add_parser(
        "export", help="every table's rows of the last N days as Parquet and CSV, with a manifest"
    )
    export.add_argument("--days", type=float, default=7, help="the period: the last N days")
    export.add_argument("-o", "--output", required=True, help="the directory to write")
    report = sub.add_parser(
        "report", help="a report: per workflow, usage, performance, reliability or all"
    )
    report.add_argument("--since", default="24h", help="the period (24h, 7d, or a time)")
    report.add_argument("--until", default="now", help="the period's end (a time)")
    report.add_argument(
        "--kind",
        default="workflows",
        help="workflows, usage, performance, reliability, comprehensive",
    )
    report.add_argument("--title", default="", help="the report's title")
    report.add_argument("--workflows", default="", help="only these workflows (comma-separated)")
    report.add_argument("--charts", help="also write each chart to this directory as SVG and PNG")
    report.add_argument("--format", choices=("html", "md", "json", "csv"), default="html")
    report.add_argument("-o", "--output", help="file to write (default: stdout; html: a file)")
    report.add_argument("--url", help="the worker's base URL; 'none' opens the store directly")
    chserver = sub.add_parser(
        "chserver",
        help="serve the embedded chDB store over ClickHouse's HTTP interface",
        description="Several workers then share one store: give each "
        "VIGIL_CLICKHOUSE_DSN=http://HOST:PORT (VIGIL_CHSERVER_PASSWORD sets a password).",
    )
    chserver.add_argument("--path", help="the chDB data directory (default: VIGIL_DATA_DIR/chdb)")
    chserver.add_argument("--host", default="127.0.0.1")
    chserver.add_argument("--port", type=int, default=8123, help="0 picks a free port")
    chserver.add_argument("--port-file", help="write the port here once listening")
    rules = sub.add_parser("rules", help="check alert rule files and run their unit tests")
    rules_sub = rules.add_subparsers(dest="rules_command", required=True)
    for verb, what in (
        ("check", "check rule files (exit 1 and file:line reasons when one is wrong)"),
        ("test", "run unit tests of rules on given series (exit 1 when one fails)"),
    ):
        verb_parser = rules_sub.add_parser(verb, help=what, description=what)
        verb_parser.add_argument(
            "files", nargs="+", help="rule files" if verb == "check" else "test files"
        )
        verb_parser.add_argument(
            "--windows", help="the windows the rules may use (default VIGIL_WINDOWS)"
        )
    otel = sub.add_parser(
        "otlp",
        help="receive OpenTelemetry (OTLP/HTTP, and the Collector's Kafka topics) as events",
        description="Publishes to VIGIL_KAFKA_BOOTSTRAP's events topic; "
        "VIGIL_OTLP_KAFKA_TOPICS also reads the Collector's Kafka exporter topics.",
    )
    otel.add_argument("--port", type=int, help="default VIGIL_OTLP_PORT (4318); 0 picks one")
    args = parser.parse_args(argv)

    if args.command == "worker":
        from vigil import worker

        worker.run()
    elif args.command == "demo":
        from vigil import demo

        return demo.run(duration=args.duration, rate=args.rate, seed=args.seed, linger=args.linger)
    elif args.command == "simulate":
        from vigil import demo

        return demo.simulate(rate=args.rate, duration=args.duration, seed=args.seed)
    elif args.command == "broker":
        from vigil.embedded import EmbeddedBroker

        with EmbeddedBroker(port=args.port or None) as b:
            print(f"VIGIL_KAFKA_BOOTSTRAP={b.bootstrap}", flush=True)
            try:
                assert b.proc is not None
                b.proc.wait()
            except KeyboardInterrupt:
                pass
    elif args.command == "backtest":
        return _backtest(args, parser)
    elif args.command == "alerts":
        return _tail(args)
    elif args.command == "history":
        return _history(args)
    elif args.command == "archive":
        return _archive(args)
    elif args.command == "export":
        return _export(args)
    elif args.command == "forget":
        return _forget(args)
    elif args.command == "report":
        return _report(args)
    elif args.command == "chserver":
        import os

        from producers.settings import from_env
        from sinks import chserver as served
        from sinks.settings import ChServerSettings

        return served.run(args, from_env(ChServerSettings, os.environ))
    elif args.command == "rules":
        return _rules(args)
    elif args.command == "otlp":
        from vigil import otlp

        return otlp.run(args.port)
    elif args.command == "summary":
        from vigil import demo

        return demo.print_summary_from_env(since_hours=args.since_hours)
    return 0


def _rules(args: argparse.Namespace) -> int:
    """``vigil rules check`` and ``vigil rules test``, as promtool's: exit 0 when every
    file is good (every test passes), 1 when one is not."""
    import os
    from pathlib import Path

    from producers.settings import from_env
    from streams import ruletests
    from streams.rules import RuleFileError
    from streams.settings import WorkerSettings

    windows = args.windows or ",".join(
        s.label for s in from_env(WorkerSettings, os.environ).windows
    )
    paths = [Path(f) for f in args.files]
    if args.rules_command == "check":
        code, lines = ruletests.check_files(paths, windows=windows)
        for line in lines:
            print(line, file=sys.stderr if code and ": SUCCESS" not in line else sys.stdout)
        return code
    code = 0
    for path in paths:
        print(f"Unit testing: {path}")
        try:
            outcome = ruletests.run_file(path, windows=windows)
        except (ruletests.RuleTestError, RuleFileError) as exc:
            print(f"  FAILED: {exc}", file=sys.stderr)
            code = 1
            continue
        if outcome.failures:
            code = 1
            print(f"  FAILED: {len(outcome.failures)} of {outcome.tests} checks", file=sys.stderr)
            for failure in outcome.failures:
                print(f"    {failure}", file=sys.stderr)
        else:
            print(f"  SUCCESS: {outcome.tests} tests")
    return code


def _history_parser(sub: Any) -> None:
    from sinks.catalog import CATALOG

    parser = sub.add_parser(
        "history",
        help="query history (the worker's store)",
        description="Ask the running worker (VIGIL_HISTORY_URL, default its VIGIL_WEB_PORT),"
        " or open the store itself when no worker answers.",
    )
    queries = parser.add_subparsers(dest="query", required=True)
    for name, query in CATALOG.items():
        q = queries.add_parser(name, help=query.help, description=query.help)
        for param in query.params:
            if param.default is None:
                q.add_argument(param.name, help=param.help)
            else:
                q.add_argument(
                    f"--{param.name.replace('_', '-')}",
                    dest=param.name,
                    default=None,
                    help=f"{param.help} (default: {param.default or 'none'})",
                )
        out = q.add_mutually_exclusive_group()
        out.add_argument("--json", dest="fmt", action="store_const", const="json")
        out.add_argument("--csv", dest="fmt", action="store_const", const="csv")
        q.add_argument("--url", help="the worker's base URL; 'none' opens the store directly")


def _store_settings() -> Any:
    import os

    from producers.settings import from_env
    from sinks.settings import StoreSettings

    return from_env(StoreSettings, os.environ)


def _where(url: str | None) -> tuple[Any, str | None]:
    """The store's settings, and the worker URL to ask first (None: the store itself)."""
    import os

    from producers.settings import from_env
    from sinks.settings import HistoryClientSettings
    from streams.settings import WorkerSettings

    worker = from_env(WorkerSettings, os.environ)
    client = from_env(HistoryClientSettings, os.environ)
    return _store_settings(), client.url(url, worker.web_host, worker.web_port)


def _on_store(command: str, settings: Any, work: Any, *errors: type[Exception]) -> Any:
    """``work(client)`` on a client of the store, closed after; None when the store
    cannot be opened or ``work`` raises one of ``errors`` (said on stderr)."""
    from sinks.store import StoreError, open_client

    try:
        client = open_client(settings)
    except StoreError as exc:
        print(f"vigil {command}: {exc}", file=sys.stderr)
        return None
    try:
        return work(client)
    except errors as exc:
        print(f"vigil {command}: {exc}", file=sys.stderr)
        return None
    finally:
        client.close()


def _export(args: argparse.Namespace) -> int:
    import datetime as dt
    from pathlib import Path

    from sinks import export

    settings = _store_settings()
    end = dt.datetime.now(dt.UTC)
    start = end - dt.timedelta(days=args.days)
    done = _on_store("export", settings, lambda client: export.export(
        client, settings.database, start, end, Path(args.output),
        progress=lambda e: print(f"  {e.table}: {e.rows:,} rows", flush=True),
    ), export.ExportError)  # fmt: skip
    if done is None:
        return 2
    rows = sum(e.rows for e in done)
    print(f"exported {rows:,} rows of {len(done)} tables to {args.output} ({export.MANIFEST})")
    return 0


def _archive(args: argparse.Namespace) -> int:
    import datetime as dt
    from pathlib import Path

    from sinks import archive

    settings = _store_settings()
    directory = Path(args.dir) if args.dir else archive.under(settings.data_dir)

    def show(entry: archive.Archived) -> None:
        verb = "restored" if args.restore else "archived"
        print(f"  {verb} {entry.table}/{entry.partition}: {entry.rows:,} rows", flush=True)

    if settings.cluster is not None:
        # Partitions are moved on the node a command reaches; a cluster has them on each.
        print(
            "vigil archive: not on a cluster yet (VIGIL_CLICKHOUSE_CLUSTER is set): "
            "archive each shard's local tables with ClickHouse's BACKUP instead",
            file=sys.stderr,
        )
        return 2
    try:
        before = None if args.restore else dt.date.fromisoformat(args.before)
    except ValueError:
        print(
            f"vigil archive: --before {args.before!r} is not a date (YYYY-MM-DD)", file=sys.stderr
        )
        return 2

    def work(client: Any) -> list[archive.Archived]:
        if before is None:
            return archive.restore(client, settings.database, directory, progress=show)
        return archive.export(client, settings.database, before, directory, progress=show)

    done = _on_store("archive", settings, work, archive.ArchiveError)
    if done is None:
        return 2
    rows = sum(e.rows for e in done)
    print(f"vigil archive: {len(done)} partitions, {rows:,} rows ({directory})")
    return 0


def _forget(args: argparse.Namespace) -> int:
    import os
    from pathlib import Path

    from producers.privacy import Privacy
    from producers.settings import ProducerSettings, from_env
    from sinks import archive
    from sinks.forget import Forgotten, forget

    settings = _store_settings()
    producer = from_env(ProducerSettings, os.environ)
    if args.hashed:
        stored = args.user
    elif producer.privacy_mode != "off" and not producer.privacy_secret:
        print(
            "vigil forget: users are hashed with a key (VIGIL_PRIVACY_MODE="
            f"{producer.privacy_mode}) and VIGIL_PRIVACY_SECRET is not set: set it to the "
            "services' key, or pass the stored hash with --hashed",
            file=sys.stderr,
        )
        return 2
    else:
        stored = Privacy(producer.privacy_mode, producer.privacy_secret).user(args.user) or ""
    if settings.cluster is not None:
        print("vigil forget: not on a cluster yet (VIGIL_CLICKHOUSE_CLUSTER)", file=sys.stderr)
        return 2
    directory = Path(args.dir) if args.dir else archive.under(settings.data_dir)

    def show(entry: Forgotten) -> None:
        print(f"  {entry.where}: {entry.rows:,} rows deleted", flush=True)

    done = _on_store("forget", settings, lambda client: forget(
        client, settings.database, stored, directory, progress=show
    ), archive.ArchiveError)  # fmt: skip
    if done is None:
        return 2
    files = [e for e in done if e.where.endswith(".parquet")]
    rows = sum(e.rows for e in done)
    print(f"vigil forget: {rows:,} rows of {stored} deleted; {len(files)} archived files rewritten")
    return 0


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from sinks.queries import HistoryError
    from sinks.store import StoreError
    from vigil import answers
    from vigil.history import render_report

    settings, url = _where(args.url)
    try:
        options = {"since": args.since, "until": args.until, "kind": args.kind,
                   "title": args.title, "workflows": args.workflows}  # fmt: skip
        data, source = answers.ask(settings, url, "report", options)
    except (HistoryError, StoreError) as exc:
        print(f"vigil report: {exc}", file=sys.stderr)
        return 2
    text = render_report(data, args.format)
    if args.charts:
        from sinks.charts import write_charts

        files = write_charts(data, Path(args.charts))
        print(f"vigil report: {len(files)} chart files -> {args.charts}", file=sys.stderr)
    output = args.output or ("vigil-report.html" if args.format == "html" else None)
    if output is None:
        print(text)
    else:
        Path(output).write_text(text, encoding="utf-8")
        flows = len(data["workflows"])
        print(f"vigil report: {flows} workflows from {source} -> {output}", file=sys.stderr)
    return 0


def _history(args: argparse.Namespace) -> int:
    from sinks.catalog import CATALOG
    from sinks.queries import HistoryError
    from sinks.store import StoreError
    from vigil import answers

    settings, url = _where(args.url)
    params = {
        p.name: getattr(args, p.name)
        for p in CATALOG[args.query].params
        if getattr(args, p.name) is not None
    }
    try:
        result, _ = answers.ask(settings, url, args.query, params)
    except (HistoryError, StoreError) as exc:
        print(f"vigil history {args.query}: {exc}", file=sys.stderr)
        return 2
    print(answers.render(result, args.fmt or "table"))
    return 0


def _backtest(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    import time
    from pathlib import Path

    from streams import backtest

    if bool(args.input) == bool(args.corpus):
        parser.error("backtest takes one INPUT.csv or --corpus DIR")
    started = time.perf_counter()
    try:
        if args.corpus:
            done = backtest.run_corpus(Path(args.corpus), Path(args.output))
            rows = sum(done.values())
            print(f"{len(done)} files", end=", ", file=sys.stderr)
        else:
            rows = backtest.run_file(Path(args.input), Path(args.output))
    except (OSError, ValueError) as exc:
        print(f"vigil backtest: {exc}", file=sys.stderr)
        return 2
    elapsed = time.perf_counter() - started
    print(f"{rows} rows in {elapsed:.1f} s ({rows / elapsed:,.0f} rows/s)", file=sys.stderr)
    return 0


def _tail(args: argparse.Namespace) -> int:
    """``vigil alerts tail``: VIGIL_KAFKA_BOOTSTRAP and VIGIL_NAMESPACE say where."""
    import asyncio
    import datetime as dt
    import os

    import orjson

    from producers.alerts import subscribe_alerts
    from producers.settings import ProducerSettings, from_env

    settings = from_env(ProducerSettings, os.environ)
    if not settings.kafka_bootstrap:
        print("vigil alerts tail: set VIGIL_KAFKA_BOOTSTRAP (host:port)", file=sys.stderr)
        return 2
    marks = {"pending": "…", "firing": "!", "resolved": "✓"}

    async def run() -> None:
        async for alert in subscribe_alerts(
            settings.kafka_bootstrap,
            namespace=settings.namespace,
            from_beginning=args.from_beginning,
            include_silenced=args.include_silenced,
            options=settings.kafka_options(),
        ):
            if args.json:
                print(orjson.dumps(alert.to_dict()).decode(), flush=True)
                continue
            at = dt.datetime.fromtimestamp(alert.at / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
            summary = alert.annotations.get("summary") or f"{alert.series} = {alert.value}"
            print(
                f"{at} {marks.get(alert.state, '?')} {alert.state:<8} {alert.severity:<8} "
                f"{alert.rule}: {summary}" + (" (silenced)" if alert.silenced else ""),
                flush=True,
            )

    try:
        asyncio.run(run())
    except KeyboardInterrupt:
        pass
    except LookupError as exc:
        print(f"vigil alerts tail: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
