"""The worker's HTTP pages, served by Faust's web server (aiohttp) over :mod:`streams.api`.

| path                                    | what                                          |
| --------------------------------------- | --------------------------------------------- |
| ``/series/windows``, ``/series/open``   | a series' open windows (:mod:`streams.api`)   |
| ``/executions/{id}``, ``/workflows/...``| live executions and workflows                 |
| ``/overview``, ``/live``, ``/dashboard``| the dashboard, its data and its push stream   |
| ``/alerts``, ``/alerts/{fp}/ack``       | pending and firing alerts; acknowledge one    |
| ``/silences``, ``/silences/{id}``       | list, add and expire silences                 |
| ``/history/{name}``                     | history queries (``sinks.history``)           |
| ``/health``, ``/ready``                 | liveness and readiness (no token needed)      |
| ``/stats``, ``/metrics``                | the worker's own figures (JSON, Prometheus)   |

Every page but ``/health`` and ``/ready`` needs the bearer token (``streams.auth``).

Every worker answers for the whole group: the overview, ``/live`` and ``/alerts`` merge
what this worker holds with what each peer holds (``/held``), and a series, execution or
workflow not held here is asked of the peers (:mod:`streams.peers`). ``?scope=local``
answers from this worker's partitions only (what a peer asks for). ``/stats`` and
``/metrics`` stay this worker's own figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import faust
import orjson

from streams import api, control, metrics
from streams.peers import LOCAL, LOCAL_VALUE, Peers
from streams.processing import Processor
from streams.rules import RuleFileError
from streams.runtime import Runtime

DASHBOARD = Path(__file__).with_name("dashboard.html")


@functools.cache
def _dashboard() -> str:
    """The dashboard page, read once (on first request, not at start-up)."""
    return DASHBOARD.read_text(encoding="utf-8")


async def _request_json(request: Any) -> Any:
    try:
        return await request.json()
    except ValueError:
        raise api.ApiError(400, "the body is not JSON") from None


def _open_windows(processor: Processor | None) -> int:
    return sum(s.windows.open_windows for s in processor.states.values()) if processor else 0


def _local(request: Any) -> bool:
    """Asked for this worker's partitions only (by a peer)."""
    return bool(request.query.get(LOCAL) == LOCAL_VALUE)


def add_pages(
    app: faust.App,
    rt: Runtime,
    *,
    lag: Callable[[], dict[int, int]],
    publish_command: Callable[[bytes], Awaitable[Any]],
    peers: Peers,
    history: Any = None,
) -> None:
    """Serve ``rt`` on ``app``'s web server. ``lag``: per partition held, the messages
    in Kafka past the last one applied; ``publish_command``: sends a control command and
    returns once the broker has it; ``peers``: the group's other workers; ``history``:
    answers ``/history/NAME`` (None: 404)."""

    def local_alerts() -> list[dict[str, Any]]:
        return api.alerts(rt.processor)

    def firing() -> int:
        return sum(a["status"] == "firing" for a in local_alerts())

    def held_now(now_ms: int) -> dict[str, Any]:
        counts = rt.stats.counts
        return {
            "worker": peers.me,
            "partitions": api.held(rt.processor, now_ms=now_ms),
            "counts": {k: counts.get(k, 0) for k in ("valid", "rejected", "late")},
            "events_per_s": rt.stats.rate(),
        }

    async def group_now(ask: bool) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
        """The time, this worker's and its peers' :func:`held_now` merged, and the
        workers (each with the partitions it holds and whether it answered)."""
        now_ms = rt.now_ms()
        mine = held_now(now_ms)
        answers = await peers.ask("/held") if ask else []
        bodies = [mine] + [a.body for a in answers if a.ok]
        counts: dict[str, int] = {}
        for body in bodies:
            for k, n in body["counts"].items():
                counts[k] = counts.get(k, 0) + n
        workers = [{"url": peers.me, "partitions": sorted(map(int, mine["partitions"]))}]
        for a in answers:
            held = sorted(map(int, a.body["partitions"])) if a.ok else list(a.partitions)
            workers.append({"url": a.url, "partitions": held, "answered": a.ok, "error": a.error})
        group = {
            "parts": api.merge(body["partitions"] for body in bodies),
            "counts": counts,
            "events_per_s": sum(body["events_per_s"] for body in bodies),
        }
        return now_ms, group, workers

    async def overview_now(ask: bool = True) -> dict[str, Any]:
        now_ms, group, workers = await group_now(ask)
        parts = group["parts"]
        body = api.overview(
            parts,
            group["counts"],
            events_per_s=group["events_per_s"],
            now_ms=now_ms,
            windows=[spec.label for spec in rt.processor.specs] if rt.processor else [],
            silenced=rt.commands.silenced,
            silences=rt.commands.listing(now_ms),
        )
        body["workers"] = workers
        # Held by a worker that did not answer, and by nobody who did.
        unanswered = {p for w in workers if w.get("answered") is False for p in w["partitions"]}
        body["missing_partitions"] = sorted(unanswered - set(parts))
        return body

    async def group_alerts(ask: bool) -> list[dict[str, Any]]:
        _, group, _ = await group_now(ask)
        return [a for part in group["parts"].values() for a in part["alerts"]]

    async def anywhere(
        web: Any, request: Any, build: Callable[[], Any], found: Callable[[Any], bool] = bool
    ) -> Any:
        """``build()`` from what this worker holds; when it does not hold it (a 404, or
        an answer ``found`` rejects), the first peer that does."""
        try:
            body, status = build(), 200
        except api.ApiError as exc:
            if exc.status != 404:
                return web.json({"error": exc.reason}, status=exc.status)
            body, status = {"error": exc.reason}, 404
        if (status != 200 or not found(body)) and not _local(request):
            query = {k: v for k, v in request.query.items() if k != LOCAL}
            for answer in await peers.ask(request.rel_url.raw_path, query):
                if answer.ok and found(answer.body):
                    return web.json(answer.body, status=200)
        return web.json(body, status=status)

    @app.page("/held")
    async def held_view(web: Any, request: Any) -> Any:
        """What this worker holds, per partition (what a peer merges into its pages)."""
        return web.json(held_now(rt.now_ms()))

    @app.page("/series/windows")
    async def series_view(web: Any, request: Any) -> Any:
        series = request.query.get("series")
        return await anywhere(web, request, lambda: api.series_windows(rt.processor, series))

    @app.page("/series/open")
    async def series_open_view(web: Any, request: Any) -> Any:
        """The dashboard's: a series' open windows, an empty list when it has none."""
        series = request.query.get("series")
        build = functools.partial(api.series_open, rt.processor, series)
        return await anywhere(web, request, build, lambda body: bool(body["windows"]))

    @app.page("/executions/{execution_id}")
    async def execution_view(web: Any, request: Any, execution_id: str) -> Any:
        now_ms = rt.now_ms()
        return await anywhere(
            web, request, lambda: api.execution(rt.processor, execution_id, now_ms=now_ms)
        )

    @app.page("/workflows/{name}")
    async def workflow_view(web: Any, request: Any, name: str) -> Any:
        return await anywhere(web, request, lambda: api.workflow(rt.processor, name))

    @app.page("/workflows/{name}/detail")
    async def workflow_detail_view(web: Any, request: Any, name: str) -> Any:
        now_ms = rt.now_ms()
        return await anywhere(
            web, request, lambda: api.workflow_detail(rt.processor, name, now_ms=now_ms)
        )

    @app.page("/alerts")
    async def alerts_view(web: Any, request: Any) -> Any:
        now_ms = rt.now_ms()
        silenced = rt.commands.silenced
        everyone = await group_alerts(not _local(request))
        listed = [{**a, "silenced": silenced(a["labels"], now_ms)} for a in everyone]
        return web.json({"alerts": listed})

    @app.page("/alerts/{fingerprint}/ack")
    class AckView(faust.web.View):
        async def post(self, request: Any, fingerprint: str) -> Any:
            try:
                everyone = await group_alerts(True)
                found = [a for a in everyone if a["fingerprint"] == fingerprint]
                if not found:
                    raise api.ApiError(404, f"no pending or firing alert {fingerprint!r}")
                body = await _request_json(request)
                try:
                    cmd = control.ack_command(fingerprint, found[0], body, now_ms=rt.now_ms())
                except control.NotFiring as exc:
                    raise api.ApiError(409, str(exc)) from None
                except control.CommandError as exc:
                    raise api.ApiError(400, str(exc)) from None
                await rt.command(cmd, publish_command)
                return self.json({"acknowledged": fingerprint, "by": cmd["by"]})
            except api.ApiError as exc:
                return self.json({"error": exc.reason}, status=exc.status)

    @app.page("/silences")
    class SilencesView(faust.web.View):
        async def get(self, request: Any) -> Any:
            return self.json({"silences": rt.commands.listing(rt.now_ms())})

        async def post(self, request: Any) -> Any:
            try:
                body = await _request_json(request)
                cmd = control.silence_command(body, now_ms=rt.now_ms(), silence_id=uuid.uuid4().hex)
            except control.CommandError as exc:
                return self.json({"error": str(exc)}, status=400)
            except api.ApiError as exc:
                return self.json({"error": exc.reason}, status=exc.status)
            await rt.command(cmd, publish_command)
            return self.json({"id": cmd["id"], "ends_at": cmd["ends_at"]}, status=201)

    @app.page("/silences/{silence_id}")
    class SilenceView(faust.web.View):
        async def delete(self, request: Any, silence_id: str) -> Any:
            if silence_id not in rt.commands.silences:
                return self.json({"error": f"no silence {silence_id!r}"}, status=404)
            cmd = control.expire_command(silence_id, now_ms=rt.now_ms())
            await rt.command(cmd, publish_command)
            return self.json({"expired": silence_id})

    @app.page("/-/reload")
    class ReloadView(faust.web.View):
        async def post(self, request: Any) -> Any:
            """Every worker reads its rules file again: checked here first (a bad file
            is refused with its reasons and the running rules stay), applied here, then
            asked of the others through the control topic."""
            try:
                rt.settings.load_rules()
            except RuleFileError as exc:
                return self.json(
                    {"error": "the rules file is refused", "errors": exc.errors}, status=400
                )
            await publish_command(orjson.dumps(control.reload_command(now_ms=rt.now_ms())))
            try:
                rules = await rt.reload()
            except RuleFileError as exc:  # changed between the check and now
                return self.json(
                    {"error": "the rules file is refused", "errors": exc.errors}, status=400
                )
            return self.json({"reloaded": rules.path or "default", "rules": len(rules.rules)})

    @app.page("/rules")
    async def rules_view(web: Any, request: Any) -> Any:
        """Each rule with its state (firing, pending or inactive over the group) and its
        alerts; the channels; where the rules came from and the reloads."""
        everyone = await group_alerts(not _local(request))
        rules = rt.rules
        listed = []
        for rule in rules.rules:
            mine = [a for a in everyone if a["rule"] == rule.name]
            states = {a["status"] for a in mine}
            state = next((s for s in ("firing", "pending") if s in states), "inactive")
            listed.append({**api.rule_view(rule), "state": state, "alerts": mine})
        return web.json(
            {
                "file": rules.path or "default",
                "loaded_at": rt.loaded_at,
                "reloads": dict(rt.reloads),
                "last_error": rt.reload_error,
                "rules": listed,
                "channels": [
                    {"name": c.name, "kind": c.kind, "states": list(c.states)}
                    for c in rules.channels.values()
                ],
            }
        )

    @app.page("/history/{name}")
    async def history_view(web: Any, request: Any, name: str) -> Any:
        """A history query (``sinks.history``): parameters from the query string."""
        if history is None:
            return web.json({"error": "this worker serves no history queries"}, status=404)
        params = {k: request.query.getone(k) for k in request.query}
        status, body = await history.answer(name, params)
        return web.json(body, status=status)

    @app.page("/overview")
    async def overview_view(web: Any, request: Any) -> Any:
        return web.json(await overview_now(not _local(request)))

    @app.page("/live")
    async def live_view(web: Any, request: Any) -> Any:
        """The overview as server-sent events: pushed when a batch is stored or a command
        applied (at most every 0.25 s), and at least every second (ages, rates)."""
        from aiohttp import web as aioweb

        response = aioweb.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        wake = asyncio.Event()
        rt.watchers.add(wake)
        try:
            while True:
                wake.clear()
                body = orjson.dumps(await overview_now())
                await response.write(b"event: overview\ndata: " + body + b"\n\n")
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(1.0):
                        await wake.wait()
                await asyncio.sleep(0.25)
        except (ConnectionResetError, asyncio.CancelledError, RuntimeError):
            pass  # the page went away (or the worker stops)
        finally:
            rt.watchers.discard(wake)
        return response

    @app.page("/dashboard")
    async def dashboard_view(web: Any, request: Any) -> Any:
        """The live dashboard: one page, no build step, nothing fetched from elsewhere."""
        return web.html(_dashboard())

    @app.page("/health")
    async def health_view(web: Any, request: Any) -> Any:
        """Liveness: the event loop answers and the writer has not died."""
        error = rt.delivery.error
        if error is not None:
            reason = f"the writer stopped: {error!r}"
            return web.json({"status": "failing", "reason": reason}, status=503)
        return web.json({"status": "ok"})

    @app.page("/ready")
    async def ready_view(web: Any, request: Any) -> Any:
        """Readiness: topics and store set up, in the consumer group, store answering."""
        waiting = []
        if rt.processor is None:
            waiting.append("topics and the store are not set up yet")
        if not rt.joined:
            waiting.append("not in the consumer group yet")
        if rt.sink.failing:
            waiting.append(f"ClickHouse inserts are failing: {rt.sink.last_error}")
        if waiting:
            return web.json({"status": "waiting", "reasons": waiting}, status=503)
        return web.json({"status": "ready", "partitions": sorted(rt.stats.assigned)})

    @app.page("/metrics")
    async def metrics_view(web: Any, request: Any) -> Any:
        """Vigil's own figures in the Prometheus text format."""
        sink, stats = rt.sink, rt.stats
        snapshot = metrics.Snapshot(
            counts=stats.counts,
            events_per_s=stats.rate(),
            lag=lag(),
            open_windows=_open_windows(rt.processor),
            firing=firing(),
            sink_counts=sink.counts,
            sink_latency=sink.latency,
            sink_failing=sink.failing,
            sink_inserting=sink.inserting is not None,
            uptime_s=rt.clock() - stats.started,
            assigned=len(stats.assigned),
            rerouted=stats.rerouted,
        )
        return web.bytes(metrics.metrics_text(snapshot), content_type=metrics.CONTENT_TYPE)

    @app.page("/stats")
    async def stats_view(web: Any, request: Any) -> Any:
        processor, stats = rt.processor, rt.stats
        body: dict[str, Any] = dict(stats.counts)
        body["events_per_s"] = round(stats.rate(), 1)
        body["uptime_s"] = round(rt.clock() - stats.started, 1)
        body["started_at"] = stats.started
        body["first_batch_at"] = stats.first_batch_at
        body["last_batch_at"] = stats.last_batch_at
        body["partitions"] = sorted(processor.states) if processor else []
        # Per partition, the highest offset whose output is stored and checkpointed.
        body["offsets"] = {str(p): offset for p, offset in stats.applied.items()}
        # Per partition, the highest offset applied to the state in memory (ahead of
        # "offsets" by what waits to be stored).
        states = processor.states.items() if processor else ()
        body["processed"] = {str(p): state.offset for p, state in states}
        body["assigned"] = sorted(stats.assigned)
        body["open_windows"] = _open_windows(processor)
        body["channels"] = rt.dispatcher.stats()
        body["firing"] = firing()
        body["published_seq"] = {str(p): seq for p, seq in rt.delivery.published.items()}
        # Per partition they arrived on, events forwarded to their series' partition.
        body["rerouted_from"] = {str(p): n for p, n in sorted(stats.rerouted.items())}
        body["inserting"] = rt.sink.inserting  # the table, while one runs
        return web.json(body)
