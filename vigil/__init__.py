"""The ``vigil`` command and its processes; ``from vigil import History`` queries history
from Python (:mod:`vigil.history`)."""

from typing import Any


def __getattr__(name: str) -> Any:
    # Imported on first use: ``vigil worker`` and the other commands do not pay for it.
    if name == "History":
        from vigil.history import History

        return History
    raise AttributeError(name)
