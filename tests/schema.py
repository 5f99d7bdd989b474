"""The alert message's document, ``docs/alert.v1.schema.json``, and a check against it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema

ROOT = Path(__file__).parents[1]
ALERT_SCHEMA = json.loads((ROOT / "docs" / "alert.v1.schema.json").read_text())
_VALIDATOR = jsonschema.Draft202012Validator(ALERT_SCHEMA)


def validate_alert(message: Any) -> None:
    """Assert ``message`` (parsed JSON) is what the document promises; every way it is
    not is in the failure."""
    errors = sorted(_VALIDATOR.iter_errors(message), key=lambda e: list(e.path))
    assert errors == [], [f"{list(e.path)}: {e.message}" for e in errors]
