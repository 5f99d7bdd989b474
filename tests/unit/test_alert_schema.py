"""The alert message against its document, ``docs/alert.v1.schema.json``: what consumers
of the alerts topic and webhooks are promised. The document is the reference; the struct
(``producers.alerts.Alert``), the messages the worker makes and the README's table are
checked against it, not against each other. ``tests/integration/test_alerts.py`` checks
the messages kcat and aiokafka read from the topic against it too."""

from __future__ import annotations

import re

import msgspec
import orjson
import pytest

from producers.alerts import Alert
from streams.evaluation import Evaluation
from tests.schema import ALERT_SCHEMA, ROOT, validate_alert
from tests.unit.test_evaluation import MIN, feed, ruleset, window

SCHEMA = ALERT_SCHEMA

RULES = """
[[rule]]
name = "slow"
match = { name = "latency*" }
signal = "p95"
window = "1m"
op = ">"
threshold = 500
for = "1m"
labels = { team = "web" }
annotations = { summary = "{service} p95 {value:.0f}" }
channels = []

[[rule]]
name = "gone"
match = { name = "latency*" }
signal = "absent"
window = "1m"
for = "2m"

[[detector]]
name = "odd"
match = { name = "latency*" }
signal = "mean"
window = "1m"
severity = "info"
"""


def _alerts() -> list[Alert]:
    """Threshold, absence and detector transitions, every state, from the real evaluation."""
    e = Evaluation(ruleset(RULES), partition=2)
    steady = [window(i, mean=100.0 + i % 3) for i in range(1, 160)]
    spike = [window(i, mean=5_000.0) for i in range(160, 175)]
    calm = [window(i, mean=100.0) for i in range(175, 180)]
    out = feed(e, steady + spike + calm)
    out += e.advance(200 * MIN, now_ms=200 * MIN)  # silence: the absence rule
    return out


def test_every_kind_of_transition_the_worker_makes_is_a_valid_message():
    alerts = _alerts()
    seen = {(a.type, a.state) for a in alerts}
    assert {("threshold", s) for s in ("pending", "firing", "resolved")} <= seen
    assert ("detector", "firing") in seen and ("absence", "firing") in seen
    for alert in alerts:
        validate_alert(orjson.loads(alert.line()))


def test_the_struct_has_exactly_the_documented_fields_all_required():
    fields = [f.name for f in msgspec.structs.fields(Alert)]
    assert sorted(fields) == sorted(SCHEMA["properties"]) == sorted(SCHEMA["required"])


def test_the_readme_table_documents_the_same_fields():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| field | meaning |") :].split("\n\n", 1)[0]
    named = {n for row in table.splitlines()[2:] for n in re.findall(r"`(\w+)`", row.split("|")[1])}
    assert named == set(SCHEMA["properties"])


@pytest.mark.parametrize(
    "change",
    [
        {"state": "exploded"},
        {"seq": 0},
        {"fingerprint": "XYZ"},
        {"id": "0123456789abcdef"},
        {"score": 1.5},
        {"labels": {"team": "web"}},
        {"unexpected": 1},
    ],
)
def test_the_document_refuses_a_message_that_breaks_it(change):
    message = orjson.loads(_alerts()[0].line())
    message.update(change)
    with pytest.raises(AssertionError):
        validate_alert(message)
    message = orjson.loads(_alerts()[0].line())
    del message["severity"]
    with pytest.raises(AssertionError):
        validate_alert(message)
