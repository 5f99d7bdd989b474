"""Alerts out to where people are: an Alertmanager-format webhook and Apprise channels
(its JSON notifications to a local HTTP server, and email to a real SMTP server,
aiosmtpd), with grouping and reminders; and the rules file's checks of those channels."""

from __future__ import annotations

import email
from email import policy
from pathlib import Path

import pytest
from aiohttp import web
from aiosmtpd.controller import Controller

from producers.alerts import Alert
from streams.channels import Dispatcher
from streams.rules import Channel, RuleFileError, load
from tests.unit.test_channels import Scripted, serve  # noqa: F401 (the fixture)
from tests.waiting import until
from vigil.embedded import free_port

EXTERNAL = "http://vigil.example:8080"


def _alert(series: str, state: str, seq: int, *, rule: str = "slow") -> Alert:
    previous = {"pending": "inactive", "firing": "pending", "resolved": "firing"}[state]
    return Alert(
        id=f"{rule}:{series}:{seq}", fingerprint=f"{rule}:{series}", rule=rule,
        type="threshold", series=series, kind="metric", service="api", name="latency_ms",
        state=state, previous=previous, at=1_796_000_000_000 + seq, started_at=1_796_000_000_000,
        value=250.0, op=">", threshold=200.0, score=None, window="1m", severity="critical",
        labels={"alertname": rule, "service": "api", "series": series, "team": "core"},
        annotations={"summary": f"{series} is slow"}, channels=None, flapping=False,
        partition=0, seq=seq, evaluated_at=0,
    )  # fmt: skip


async def _dispatcher(channel: Channel) -> Dispatcher:
    d = Dispatcher({channel.name: channel}, external_url=EXTERNAL)
    await d.start()
    return d


def _send(d: Dispatcher, *alerts: Alert) -> None:
    d.dispatch(list(alerts), [a.line() for a in alerts])


async def test_an_alertmanager_receiver_gets_one_message_per_group_and_reminders(serve):  # noqa: F811
    receiver = Scripted([200])
    channel = Channel(
        "am", await serve(receiver), kind="alertmanager", group_wait_s=0.5, repeat_s=1.5
    )
    d = await _dispatcher(channel)
    try:
        series = [f"metric|api|latency_ms|route=/r{i}" for i in range(10)]
        _send(d, *(_alert(s, "firing", i + 1) for i, s in enumerate(series)))
        _send(d, _alert("metric|db|q", "firing", 20, rule="other"))
        await until(lambda: len(receiver.requests) == 2)
        bodies = {r[2]["groupLabels"]["alertname"]: r[2] for r in receiver.requests}
        slow = bodies["slow"]
        # Alertmanager's webhook format (version 4), every field a receiver reads.
        assert set(slow) == {
            "version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
            "commonLabels", "commonAnnotations", "externalURL", "alerts",
        }  # fmt: skip
        assert (slow["version"], slow["status"], slow["receiver"]) == ("4", "firing", "am")
        assert slow["groupKey"] == '{}:{"alertname": "slow"}'
        assert slow["commonLabels"] == {
            "alertname": "slow", "service": "api", "team": "core", "severity": "critical"
        }  # fmt: skip
        assert sorted(a["labels"]["series"] for a in slow["alerts"]) == sorted(series)
        first = slow["alerts"][0]
        assert set(first) == {
            "status", "labels", "annotations", "startsAt", "endsAt", "generatorURL", "fingerprint"
        }  # fmt: skip
        assert (first["startsAt"], first["endsAt"]) == (
            "2026-11-30T00:53:20.000Z",
            "0001-01-01T00:00:00Z",
        )
        assert first["generatorURL"].startswith(EXTERNAL + "/dashboard#series=metric%7Capi")
        assert slow["externalURL"] == EXTERNAL

        # One resolves: its group gets one message with it resolved...
        receiver.requests.clear()
        _send(d, _alert(series[0], "resolved", 30))
        await until(lambda: len(receiver.requests) == 1)
        resolved = receiver.requests[0][2]
        assert [(a["status"], a["labels"]["series"]) for a in resolved["alerts"]] == [
            ("resolved", series[0])
        ]
        assert resolved["status"] == "resolved" and resolved["alerts"][0]["endsAt"] != (
            "0001-01-01T00:00:00Z"
        )
        # ...and then reminders of the nine still firing (and of "other"), every 1.5 s.
        receiver.requests.clear()
        await until(lambda: len(receiver.requests) >= 2, timeout=5)
        reminded = {r[2]["groupLabels"]["alertname"]: r[2] for r in receiver.requests}
        assert sorted(a["labels"]["series"] for a in reminded["slow"]["alerts"]) == series[1:]
        assert all(a["status"] == "firing" for a in reminded["slow"]["alerts"])
    finally:
        await d.close()


class AppriseJson:
    """A local HTTP server taking Apprise's ``json://`` notifications."""

    def __init__(self) -> None:
        self.received: list[dict] = []

    async def handle(self, request: web.Request) -> web.Response:
        self.received.append(await request.json())
        return web.Response(status=200)


async def test_apprise_sends_the_templates_to_json_and_email_receivers(serve, tmp_path):  # noqa: F811
    hook = AppriseJson()
    url = await serve(hook)  # http://127.0.0.1:PORT/hook
    mails: list[email.message.EmailMessage] = []

    class Mailbox:
        async def handle_DATA(self, server, session, envelope):
            mails.append(email.message_from_bytes(envelope.content, policy=policy.default))
            return "250 OK"

    port = free_port()  # (aiosmtpd's controller cannot take port 0)
    smtp = Controller(Mailbox(), hostname="127.0.0.1", port=port)
    smtp.start()
    try:
        to_mail = (
            f"mailto://127.0.0.1:{port}?from=vigil@example.com&to=ops@example.com&mode=insecure"
        )
        channel = Channel(
            "ops",
            f"{url.replace('http://', 'json://')} {to_mail}",
            kind="apprise",
            title="[{status}] {rule} ({count})",
            body="{summary}: {value} over {threshold}, {link}",
            group_wait_s=0.3,
            retries=1,
        )
        d = await _dispatcher(channel)
        try:
            _send(d, _alert("metric|api|a", "firing", 1), _alert("metric|api|b", "firing", 2))
            # Counted once Apprise returns: after the mail server has the mail, when the
            # client has said goodbye (waiting for the mail alone failed 2 runs in 12).
            await until(lambda: len(mails) == 1 and "delivered" in d.stats()["ops"])
        finally:
            await d.close()
    finally:
        smtp.stop()
    assert len(hook.received) == 1
    note = hook.received[0]
    assert note["title"] == "[firing] slow (2)"
    link = f"{EXTERNAL}/dashboard#series=metric%7Capi%7Ca"
    assert note["message"] == (
        f"metric|api|a is slow: 250 over 200, {link}\n\n"
        f"metric|api|b is slow: 250 over 200, {link[:-1]}b"
    )
    mail = mails[0]
    assert mail["Subject"] == "[firing] slow (2)" and mail["To"] == "ops@example.com"
    assert "metric|api|b is slow: 250 over 200" in mail.get_body(("plain",)).get_content()
    assert d.stats()["ops"]["delivered"] == 1


def _rules(tmp_path: Path, channel: str) -> Path:
    path = tmp_path / "rules.toml"
    path.write_text(
        f"[channel.out]\n{channel}\n\n"
        '[[rule]]\nname = "r"\nmatch = { kind = "metric" }\nsignal = "mean"\n'
        'window = "1m"\nop = ">"\nthreshold = 1\nchannels = ["out"]\n'
    )
    return path


@pytest.mark.parametrize(
    ("channel", "reason"),
    [
        ('url = "http://x/h"\napprise = "json://x"', "either url"),
        ('apprise = "nosuch://x"', "not a service Apprise knows"),
        ('apprise = "json://x"\ntitle = "{nope}"', "unknown placeholder 'nope'"),
        ('url = "http://x/h"\ngroup_wait = "30s"', 'grouping needs format = "alertmanager"'),
        ('url = "http://x/h"\nformat = "prometheus"', "format must be vigil or alertmanager"),
        ('url = "http://x/h"\ntitle = "t"', "templates of an apprise channel"),
    ],
)
def test_a_channel_that_cannot_work_is_refused_with_its_line(tmp_path, channel, reason):
    with pytest.raises(RuleFileError) as err:
        load(_rules(tmp_path, channel), windows=["1m"], hops={"1m": 60_000})
    assert reason in str(err.value) and "rules.toml:" in str(err.value)


def test_channels_of_each_kind_are_read_with_their_options(tmp_path):
    rules = load(
        _rules(
            tmp_path,
            'apprise = ["slack://T000/B000/XXXX", "mailto://u:p@example.com"]\n'
            'group_by = ["alertname", "service"]\ngroup_wait = "30s"\nrepeat_interval = "4h"',
        ),
        windows=["1m"],
        hops={"1m": 60_000},
    )
    out = rules.channels["out"]
    assert (out.kind, out.group_by, out.group_wait_s, out.repeat_s) == (
        "apprise",
        ("alertname", "service"),
        30.0,
        14_400.0,
    )
    assert out.url == "slack://T000/B000/XXXX mailto://u:p@example.com"
