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
from tests.samples import alert_transitions
from tests.schema import ALERT_SCHEMA, ROOT, validate_alert


def test_every_kind_of_transition_the_worker_makes_is_a_valid_message():
    alerts = alert_transitions()
    seen = {(a.type, a.state) for a in alerts}
    assert {("threshold", s) for s in ("pending", "firing", "resolved")} <= seen
    assert ("detector", "firing") in seen and ("absence", "firing") in seen
    for alert in alerts:
        validate_alert(orjson.loads(alert.line()))


def test_the_struct_has_exactly_the_documented_fields_all_required():
    fields = [f.name for f in msgspec.structs.fields(Alert)]
    assert sorted(fields) == sorted(ALERT_SCHEMA["properties"]) == sorted(ALERT_SCHEMA["required"])


def test_the_readme_table_documents_the_same_fields():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("| field | meaning |") :].split("\n\n", 1)[0]
    named = {n for row in table.splitlines()[2:] for n in re.findall(r"`(\w+)`", row.split("|")[1])}
    assert named == set(ALERT_SCHEMA["properties"])


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
    message = orjson.loads(alert_transitions()[0].line())
    message.update(change)
    with pytest.raises(AssertionError):
        validate_alert(message)
    message = orjson.loads(alert_transitions()[0].line())
    del message["severity"]
    with pytest.raises(AssertionError):
        validate_alert(message)
