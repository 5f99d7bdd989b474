"""A trace across two services through the real pipeline: the SDK's spans (kind, status,
span events) joined by a W3C ``traceparent`` header, published by two clients, stored by
a worker, and read back as one span tree by the history's ``trace`` query."""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses

import pytest

from producers import Client, current_span, inject

pytestmark = pytest.mark.integration


def serve(back: Client, headers: dict[str, str]) -> None:
    """The other service's handler of the request."""
    assert current_span() is None
    with back.span("handle", kind="server", traceparent=headers["traceparent"]) as handled:
        handled.add_event("validated", {"rules": 4})
        with back.span("db", kind="client") as db:
            db.set_status("error", "deadlock")


async def test_a_trace_crosses_two_services_and_history_shows_one_tree(
    kafka_settings, start_worker
):
    worker = start_worker()
    front = Client(dataclasses.replace(kafka_settings, service="front"))
    back = Client(dataclasses.replace(kafka_settings, service="back"))
    async with front, back:
        with (
            front.span("GET /order", kind="server") as root,
            front.span("call back", kind="client") as call,
        ):
            headers = inject({})
            # ...the request goes to the other service (a context of its own: no
            # current span there), which continues the trace from the header alone.
            contextvars.Context().run(serve, back, headers)
        assert await front.flush(30) and await back.flush(30)
    trace_id = root.trace_id
    await asyncio.to_thread(worker.wait_until, lambda s: s.get("raw_rows") == 4, 60)

    status, tree = worker.call(f"/history/trace?trace_id={trace_id}")
    assert status == 200 and tree["spans"] == 4 and tree["errors"] == 1, tree
    (top,) = tree["roots"]
    assert (top["name"], top["service"]) == ("GET /order", "front")
    (called,) = top["children"]
    (handled,) = called["children"]
    assert (called["service"], handled["service"]) == ("front", "back")
    (failed,) = handled["children"]
    assert (failed["name"], failed["ok"], failed["message"]) == ("db", False, "deadlock")
    assert call.span_id == handled["parent_id"]
    assert [n["kind"] for n in (top, called, handled, failed)] == [
        "server", "client", "server", "client"
    ]  # fmt: skip
    assert [(e["name"], e["rules"]) for e in handled["events"]] == [("validated", 4)]

    status, ops = worker.call("/history/operations?since=1h")
    by_name = {(o["service"], o["operation"]): o for o in ops}
    assert sorted(by_name) == [("back", "db"), ("back", "handle"), ("front", "GET /order"),
                               ("front", "call back")]  # fmt: skip
    assert by_name[("back", "db")]["errors"] == 1 and by_name[("back", "handle")]["errors"] == 0
