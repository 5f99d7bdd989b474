"""Webhook delivery when receivers misbehave: a real HTTP server in this process answers
what each test scripts (errors, refusals, silence, slowness), the real aiohttp client of
``streams.channels`` posts to it."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable

import orjson
import pytest
from aiohttp import web

from producers.alerts import Alert
from streams.channels import Dispatcher
from streams.rules import Channel
from tests.waiting import until


class Scripted:
    """A webhook receiver answering each request with the next status of ``statuses``
    (the last one from then on), after ``delay`` seconds; it records what arrived."""

    def __init__(self, statuses: list[int], delay: float = 0.0) -> None:
        self.statuses = statuses
        self.delay = delay
        self.requests: list[tuple[float, dict[str, str], dict]] = []
        self.release = asyncio.Event()
        self.hold = False

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((time.monotonic(), dict(request.headers), await request.json()))
        if self.hold:
            await self.release.wait()
        await asyncio.sleep(self.delay)
        status = self.statuses[min(len(self.requests) - 1, len(self.statuses) - 1)]
        return web.Response(status=status)


@pytest.fixture
async def serve() -> AsyncIterator[Callable]:
    runners = []

    async def start(receiver: Scripted) -> str:
        app = web.Application()
        app.router.add_post("/hook", receiver.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        return f"http://127.0.0.1:{port}/hook"

    yield start
    for runner in runners:
        await runner.cleanup()


def _alert(
    seq: int, *, channels: list[str] | None = None, silenced: bool = False, state: str = "firing"
) -> Alert:
    previous = {"pending": "inactive", "firing": "pending", "resolved": "firing"}[state]
    return Alert(
        id=f"fp-{seq}", fingerprint="fp", rule="r", type="threshold", series="metric|api|m",
        kind="metric", service="api", name="m", state=state, previous=previous,
        at=60_000 * seq, started_at=0, value=1.0, op=">", threshold=0.5, score=None,
        window="1m", severity="warning", labels={}, annotations={}, channels=channels,
        flapping=False, silenced=silenced, partition=0, seq=seq, evaluated_at=0,
    )  # fmt: skip


async def _dispatcher(**channels: Channel) -> Dispatcher:
    d = Dispatcher(channels)
    await d.start()
    return d


def _send(d: Dispatcher, *alerts: Alert) -> None:
    d.dispatch(list(alerts), [a.line() for a in alerts])


async def test_a_5xx_is_retried_with_growing_backoff_until_delivered(serve):
    receiver = Scripted([503, 502, 204])
    d = await _dispatcher(a=Channel("a", await serve(receiver), retries=5))
    _send(d, _alert(1))
    await until(lambda: d.stats()["a"].get("delivered") == 1)
    stats = d.stats()["a"]
    assert (stats["retries"], stats.get("failed", 0), stats["last_error"]) == (2, 0, "HTTP 502")
    times = [t for t, _, _ in receiver.requests]
    assert len(times) == 3 and [b["id"] for _, _, b in receiver.requests] == ["fp-1"] * 3
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert gaps[0] >= 0.5 and gaps[1] >= 1.0  # 0.5 s, doubling
    await d.close()


@pytest.mark.parametrize("status", [400, 401, 404, 422])
async def test_a_4xx_refusal_is_not_retried(serve, status):
    receiver = Scripted([status])
    d = await _dispatcher(a=Channel("a", await serve(receiver), retries=5))
    _send(d, _alert(1))
    await until(lambda: d.stats()["a"].get("failed") == 1)
    assert len(receiver.requests) == 1 and d.stats()["a"].get("retries", 0) == 0
    assert d.stats()["a"]["last_error"] == f"HTTP {status}"
    await d.close()


@pytest.mark.parametrize("status", [408, 429])
async def test_too_many_requests_and_request_timeout_are_retried(serve, status):
    receiver = Scripted([status, 200])
    d = await _dispatcher(a=Channel("a", await serve(receiver), retries=2))
    _send(d, _alert(1))
    await until(lambda: d.stats()["a"].get("delivered") == 1)
    assert len(receiver.requests) == 2
    await d.close()


async def test_a_receiver_that_does_not_answer_in_time_fails_after_its_retries(serve):
    receiver = Scripted([204], delay=5.0)
    d = await _dispatcher(a=Channel("a", await serve(receiver), timeout_s=0.2, retries=1))
    _send(d, _alert(1))
    await until(lambda: d.stats()["a"].get("failed") == 1)
    stats = d.stats()["a"]
    assert len(receiver.requests) == 2 and stats["retries"] == 1
    assert stats["last_error"].startswith(("TimeoutError", "ServerTimeoutError"))
    await d.close()


async def test_a_stuck_receiver_fills_only_its_own_queue_and_drops_are_counted(serve):
    stuck, fine = Scripted([204]), Scripted([204])
    stuck.hold = True
    d = await _dispatcher(
        stuck=Channel("stuck", await serve(stuck), timeout_s=60, queue=2),
        fine=Channel("fine", await serve(fine), queue=100),
    )
    _send(d, _alert(1))
    await until(lambda: len(stuck.requests) == 1)  # the first is in flight, held
    _send(d, *(_alert(seq) for seq in range(2, 7)))  # returns at once: nothing awaits
    stats = d.stats()
    assert (stats["stuck"]["queued"], stats["stuck"]["dropped"]) == (2, 3)
    await until(lambda: d.stats()["fine"].get("delivered") == 6)
    assert [b["seq"] for _, _, b in fine.requests] == [1, 2, 3, 4, 5, 6]
    stuck.release.set()
    await until(lambda: d.stats()["stuck"].get("delivered") == 3)
    assert [b["seq"] for _, _, b in stuck.requests] == [1, 2, 3]  # the two queued, in order
    await d.close()


async def test_each_transition_goes_to_the_channels_its_rule_names_and_never_when_silenced(
    serve,
):
    a, b = Scripted([204]), Scripted([204])
    d = await _dispatcher(a=Channel("a", await serve(a)), b=Channel("b", await serve(b)))
    _send(
        d,
        _alert(1),  # the rule names none: every channel
        _alert(2, channels=["a"]),
        _alert(3, channels=["b", "nowhere"]),  # an unknown name is skipped
        _alert(4, channels=[]),  # none
        _alert(5, silenced=True),
    )
    await until(lambda: len(a.requests) == 2 and len(b.requests) == 2)
    await asyncio.sleep(0.3)  # room for a wrong delivery to arrive too
    assert sorted(body["seq"] for _, _, body in a.requests) == [1, 2]
    assert sorted(body["seq"] for _, _, body in b.requests) == [1, 3]
    await d.close()


async def test_the_body_is_the_alerts_topic_json_with_the_channel_headers(serve):
    receiver = Scripted([204])
    headers = (("Authorization", "Bearer s3cret"), ("X-Team", "payments"))
    d = await _dispatcher(a=Channel("a", await serve(receiver), headers=headers))
    alert = _alert(7, channels=["a"])
    _send(d, alert)
    await until(lambda: len(receiver.requests) == 1)
    _, got, body = receiver.requests[0]
    assert body == orjson.loads(alert.line())
    assert got["Content-Type"] == "application/json"
    assert (got["Authorization"], got["X-Team"]) == ("Bearer s3cret", "payments")
    await d.close()


async def test_a_channel_gets_firing_and_resolved_unless_it_asks_for_pending(serve):
    """Pending is left out by default (as Alertmanager notifies): most pending alerts clear
    without firing. A channel that lists it gets it; the order is kept either way."""
    calm, everything = Scripted([204]), Scripted([204])
    d = await _dispatcher(
        calm=Channel("calm", await serve(calm)),
        all=Channel("all", await serve(everything), states=("pending", "firing", "resolved")),
    )
    states = ["pending", "firing", "resolved", "pending"]  # the last one cleared silently
    _send(d, *(_alert(i + 1, state=s) for i, s in enumerate(states)))
    await until(lambda: d.stats()["all"].get("delivered") == 4)
    await until(lambda: d.stats()["calm"].get("delivered", 0) >= 2)
    await asyncio.sleep(0.2)  # nothing more arrives at the calm one
    assert [b["state"] for _, _, b in calm.requests] == ["firing", "resolved"]
    assert [b["state"] for _, _, b in everything.requests] == states
    await d.close()
