"""Workflow instrumentation: the hooks workflow engines call, and context managers.

Engines with their own callbacks call the hooks directly::

    vigil.execution_started("etl", run_id, total_steps=3)
    vigil.step_started("etl", run_id, "load", index=0)
    vigil.step_completed("etl", run_id, "load", duration_ms=812.0, ok=True)
    vigil.recovery_attempted("etl", run_id, strategy="retry", ok=True, step="load")
    vigil.execution_completed("etl", run_id, ok=True, duration_ms=2400.0)

Plain code uses the context managers, which time everything and report exceptions
(re-raised unchanged)::

    with vigil.execution("etl", total_steps=2) as run:
        with run.step("extract"):
            ...
        with run.step("load"):
            ...

Declaring ``total_steps`` lets the worker show progress and an ETA. Executions are
sampled whole (``VIGIL_SAMPLING=workflow=0.1``): the decision comes from the id.

A step may say what kind of work it does (``action``: io, compute, network, ...) and
which steps it waited on (``after``), so history can show recovery per action type and
the critical path; a phase names a stretch of an execution, timed as a span of its own,
and every step started inside it carries its name. The context manager also measures
what the execution used (``producers.measure``: CPU time, memory, disk and network
bytes) and reports it on its end::

    with vigil.execution("etl") as run:
        with run.phase("fetch"):
            with run.step("download", action="network"):
                ...
        with run.step("load", action="io", after=["download"]):
            ...
"""

from __future__ import annotations

import contextvars
import math
import time
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from producers.events import InvalidEvent, check_text
from producers.guard import guarded
from producers.measure import Measure
from producers.tracing import AlsoAsync, Span, restore

if TYPE_CHECKING:
    from producers.signals import Signals

_current: contextvars.ContextVar[Execution | None] = contextvars.ContextVar(
    "vigil_execution", default=None
)


def current_execution() -> Execution | None:
    """The innermost execution context of this thread or task, if any."""
    return _current.get()


#: At most this many steps in a step's ``after``.
MAX_AFTER = 32


def _step_fields(
    action: str | None, after: Any, phase: str | None, extra: dict[str, Any]
) -> dict[str, Any] | None:
    """The attributes that describe a step: its action type, the steps it waited on and
    its phase (beside ``extra``); None when there are none."""
    if action is not None:
        extra["action"] = check_text("step", str(action), required=True)
    if after is not None:
        names = [after] if isinstance(after, str) else list(after)
        if len(names) > MAX_AFTER:
            raise InvalidEvent(f"after lists {len(names)} steps; at most {MAX_AFTER}")
        extra["after"] = [check_text("step", str(n), required=True) for n in names]
    if phase is not None:
        extra["phase"] = check_text("step", str(phase), required=True)
    return extra or None


def _duration(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise InvalidEvent(f"duration_ms must be a finite number, got {value!r:.40}")
    if value < 0:
        raise InvalidEvent(f"duration_ms must not be negative, got {value}")
    return float(value)


class WorkflowHooks:
    """Hook calls for workflow engines; mixed into the clients."""

    @guarded
    def _workflow(
        self,
        kind: str,
        workflow: str,
        execution_id: Any,
        ts: int | None,
        fields: dict[str, Any],
        attrs: Mapping[str, Any] | None,
    ) -> bool:
        host: Signals = self  # type: ignore[assignment]  # mixed into the clients: Signals
        if execution_id is None:
            raise InvalidEvent(f"{kind}: execution_id is required")
        execution_id = str(execution_id)
        check_text("execution_id", execution_id, required=True)
        if not host._keep_id("workflow", execution_id):
            return False
        event: dict[str, Any] = {
            "kind": kind,
            "service": host._service,
            "ts": host._ts(ts),
            "name": check_text("name", workflow, required=True),
            "execution_id": execution_id,
        }
        for key, value in fields.items():
            if value is not None:
                event[key] = value
        if "step" in event:
            check_text("step", event["step"], required=True)
        if attrs:
            event["attrs"] = {**event.get("attrs", {}), **host.privacy.sanitize(dict(attrs))}
        return host._emit(event)

    def execution_started(
        self,
        workflow: str,
        execution_id: Any,
        *,
        total_steps: int | None = None,
        trace_id: str | None = None,
        attrs: Mapping[str, Any] | None = None,
        ts: int | None = None,
    ) -> bool:
        extra = {"total_steps": total_steps} if total_steps is not None else None
        fields = {"trace_id": trace_id, "attrs": extra}
        return self._workflow("execution.start", workflow, execution_id, ts, fields, attrs)

    @guarded
    def step_started(
        self,
        workflow: str,
        execution_id: Any,
        step: str,
        *,
        index: int | None = None,
        total_steps: int | None = None,
        action: str | None = None,
        after: Any = None,
        phase: str | None = None,
        attrs: Mapping[str, Any] | None = None,
        ts: int | None = None,
    ) -> bool:
        """The start of a step: ``action`` is its kind of work, ``after`` the steps it
        waited on (names), ``phase`` the phase it belongs to."""
        extra = {k: v for k, v in (("index", index), ("total_steps", total_steps)) if v is not None}
        fields = {"step": step, "attrs": _step_fields(action, after, phase, extra)}
        return self._workflow("step.start", workflow, execution_id, ts, fields, attrs)

    @guarded
    def step_completed(
        self,
        workflow: str,
        execution_id: Any,
        step: str,
        *,
        duration_ms: float,
        ok: bool = True,
        status: str | None = None,
        error: BaseException | str | None = None,
        action: str | None = None,
        after: Any = None,
        phase: str | None = None,
        attrs: Mapping[str, Any] | None = None,
        ts: int | None = None,
    ) -> bool:
        """The end of a step (``action``, ``after`` and ``phase`` as at its start: history
        reads them from the end); an ``error`` is also recorded as an error event."""
        fields: dict[str, Any] = {
            "step": step,
            "value": _duration(duration_ms),
            "ok": bool(ok),
            "status": status or ("success" if ok else "failed"),
            "attrs": _step_fields(action, after, phase, {}),
        }
        if error is not None:
            host: Signals = self  # type: ignore[assignment]  # mixed into the clients
            fields["message"] = host.privacy.message(error)
            host.error(
                error,
                {"workflow": workflow, "step": step},
                execution_id=str(execution_id),
            )
        return self._workflow("step.end", workflow, execution_id, ts, fields, attrs)

    @guarded
    def recovery_attempted(
        self,
        workflow: str,
        execution_id: Any,
        *,
        strategy: str,
        ok: bool,
        step: str | None = None,
        attempt: int | None = None,
        attrs: Mapping[str, Any] | None = None,
        ts: int | None = None,
        duration_ms: float | None = None,
        action: str | None = None,
    ) -> bool:
        """One recovery attempt: its strategy and outcome, the step (and that step's
        action type) it recovered, and how long it took."""
        extra: dict[str, Any] = {"strategy": str(strategy)[:64]}
        if attempt is not None:
            extra["attempt"] = attempt
        if action is not None:
            extra["action"] = check_text("step", str(action), required=True)
        fields: dict[str, Any] = {
            "step": step,
            "ok": bool(ok),
            "status": str(strategy)[:32],
            "attrs": extra,
        }
        if duration_ms is not None:
            fields["value"] = float(duration_ms)
        return self._workflow("recovery", workflow, execution_id, ts, fields, attrs)

    @guarded
    def execution_completed(
        self,
        workflow: str,
        execution_id: Any,
        *,
        ok: bool,
        status: str | None = None,
        duration_ms: float | None = None,
        steps_done: int | None = None,
        total_steps: int | None = None,
        recoveries: int | None = None,
        resources: Mapping[str, Any] | None = None,
        attrs: Mapping[str, Any] | None = None,
        ts: int | None = None,
    ) -> bool:
        """The end of an execution; ``resources`` are what it used (the figures of
        ``producers.measure``, which the context manager takes itself)."""
        totals = (
            ("steps_done", steps_done),
            ("total_steps", total_steps),
            ("recoveries", recoveries),
        )
        extra: dict[str, float] = {k: v for k, v in totals if v is not None}
        for key, value in (resources or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                extra[str(key)] = value
        fields = {
            "value": _duration(duration_ms) if duration_ms is not None else None,
            "ok": bool(ok),
            "status": status or ("success" if ok else "failed"),
            "attrs": extra or None,
        }
        return self._workflow("execution.end", workflow, execution_id, ts, fields, attrs)

    def execution(
        self: Any,
        workflow: str,
        execution_id: Any = None,
        *,
        total_steps: int | None = None,
        attrs: Mapping[str, Any] | None = None,
        measure: bool = True,
    ) -> Execution:
        """A context manager for one execution; ``execution_id`` defaults to a new uuid.
        ``measure`` off: no resource figures on its end."""
        return Execution(
            self, workflow, execution_id, total_steps=total_steps, attrs=attrs, measure=measure
        )


class _Block(AlsoAsync):
    """What a run and a step share: an outcome that an exception or ``fail()`` sets."""

    status: str | None = None
    failed = False

    def fail(self, status: str = "failed") -> None:
        """Mark it as failed without raising."""
        self.failed, self.status = True, status

    def outcome(self, exc: BaseException | None) -> tuple[bool, str]:
        """``(ok, status)``: an explicit status wins; an exception that is not an
        Exception (cancellation, Ctrl-C) reads as cancelled."""
        ok = exc is None and not self.failed
        if self.status:
            return ok, self.status
        if ok:
            return ok, "success"
        return ok, "failed" if exc is None or isinstance(exc, Exception) else "cancelled"


class Execution(_Block):
    """One run of a workflow: times it, counts its steps and recoveries, ends it."""

    def __init__(
        self,
        client: Any,
        workflow: str,
        execution_id: Any = None,
        *,
        total_steps: int | None = None,
        attrs: Mapping[str, Any] | None = None,
        measure: bool = True,
    ) -> None:
        self.client = client
        self.workflow = workflow
        self.execution_id = str(execution_id) if execution_id is not None else uuid.uuid4().hex
        self.total_steps = total_steps
        self.attrs = attrs
        self.steps_done = 0
        self.recoveries = 0
        self._reported: BaseException | None = None
        self._span = Span(client, workflow)
        self._t0 = 0.0
        self._token: contextvars.Token[Execution | None] | None = None
        self._measure: Measure | None = None
        self._measuring = measure
        #: The phase steps start in now, and each started step's action type.
        self.phase_name: str | None = None
        self.actions: dict[str, str] = {}

    @property
    def progress(self) -> float | None:
        """Completed steps over declared steps, when steps were declared."""
        return self.steps_done / self.total_steps if self.total_steps else None

    def step(
        self,
        name: str,
        *,
        action: str | None = None,
        after: Any = None,
        attrs: Mapping[str, Any] | None = None,
    ) -> Step:
        """A context manager for one step: ``action`` its kind of work, ``after`` the
        steps it waited on; it belongs to the phase it starts in."""
        return Step(self, name, attrs, action=action, after=after)

    def phase(self, name: str) -> Phase:
        """A context manager for a named stretch of this execution (setup, fetch,
        cleanup, ...): timed as a span of its own, and every step started inside it
        carries its name."""
        return Phase(self, name)

    def recovery(
        self,
        strategy: str,
        ok: bool | None = None,
        *,
        step: str | None = None,
        attempt: int | None = None,
    ) -> Recovery | None:
        """Report one recovery attempt (retry, fallback, rollback, ...). With ``ok``, at
        once; without, a context manager that times the attempt and reports its duration
        and outcome: a success unless the block raises (or sets ``attempt.ok``)::

            with run.recovery("retry", step="load"):
                load_again()
        """
        if ok is None:
            return Recovery(self, strategy, step, attempt)
        self._recovered(strategy, ok, step, attempt, None)
        return None

    def _recovered(
        self,
        strategy: str,
        ok: bool,
        step: str | None,
        attempt: int | None,
        duration_ms: float | None,
    ) -> None:
        self.recoveries += 1
        self.client.recovery_attempted(
            self.workflow,
            self.execution_id,
            strategy=strategy,
            ok=ok,
            step=step,
            attempt=attempt,
            duration_ms=duration_ms,
            action=self.actions.get(step) if step is not None else None,
        )

    def __enter__(self) -> Execution:
        self._span.__enter__()
        self._token = _current.set(self)
        self._t0 = time.perf_counter()
        self._measure = Measure() if self._measuring else None
        self.client.execution_started(
            self.workflow,
            self.execution_id,
            total_steps=self.total_steps,
            trace_id=self._span.trace_id,
            attrs=self.attrs,
        )
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        duration_ms = (time.perf_counter() - self._t0) * 1000
        used = self._measure.stop() if self._measure is not None else None
        ok, status = self.outcome(exc)
        if isinstance(exc, Exception) and exc is not self._reported:
            self.client.error(exc, {"workflow": self.workflow})
        self.client.execution_completed(
            self.workflow,
            self.execution_id,
            ok=ok,
            status=status,
            duration_ms=duration_ms,
            steps_done=self.steps_done,
            total_steps=self.total_steps,
            recoveries=self.recoveries,
            resources=used,
        )
        # While this run is still current, so that its span carries the execution id.
        self._span.__exit__(exc_type, exc, tb)
        restore(_current, self._token)


class Recovery:
    """One timed recovery attempt of an :class:`Execution` (``run.recovery(strategy)``)."""

    def __init__(
        self, run: Execution, strategy: str, step: str | None, attempt: int | None
    ) -> None:
        self.run, self.strategy, self.step, self.attempt = run, strategy, step, attempt
        #: The outcome; None: a success unless the block raises.
        self.ok: bool | None = None
        self._t0 = 0.0

    def __enter__(self) -> Recovery:
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        ok = self.ok if self.ok is not None else exc is None
        duration_ms = (time.perf_counter() - self._t0) * 1000
        self.run._recovered(self.strategy, ok, self.step, self.attempt, duration_ms)


class Phase(AlsoAsync):
    """A named stretch of an :class:`Execution` (``run.phase(name)``): a span of its own,
    child of the execution's, with ``phase`` and ``workflow`` among its attributes."""

    def __init__(self, run: Execution, name: str) -> None:
        self.run, self.name = run, name
        self._span = Span(run.client, name, attrs={"phase": name, "workflow": run.workflow})
        self._outer: str | None = None

    def __enter__(self) -> Phase:
        self._outer, self.run.phase_name = self.run.phase_name, self.name
        self._span.__enter__()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        self._span.__exit__(exc_type, exc, tb)
        self.run.phase_name = self._outer


class Step(_Block):
    """One step of an :class:`Execution`; fails the step (not the run) on an exception."""

    def __init__(
        self,
        run: Execution,
        name: str,
        attrs: Mapping[str, Any] | None,
        *,
        action: str | None = None,
        after: Any = None,
    ) -> None:
        self.run = run
        self.name = name
        self.attrs = attrs
        self.action = action
        self.after = after
        self.phase: str | None = None
        self._t0 = 0.0

    def __enter__(self) -> Step:
        run = self.run
        self.phase = run.phase_name
        if self.action is not None:
            run.actions[self.name] = str(self.action)
        run.client.step_started(
            run.workflow,
            run.execution_id,
            self.name,
            index=run.steps_done,
            total_steps=run.total_steps,
            action=self.action,
            after=self.after,
            phase=self.phase,
            attrs=self.attrs,
        )
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> None:
        run = self.run
        ok, status = self.outcome(exc)
        error = exc if isinstance(exc, Exception) else None
        run.client.step_completed(
            run.workflow,
            run.execution_id,
            self.name,
            duration_ms=(time.perf_counter() - self._t0) * 1000,
            ok=ok,
            status=status,
            error=error,
            action=self.action,
            after=self.after,
            phase=self.phase,
        )
        if error is not None:
            run._reported = error
        if ok:
            run.steps_done += 1
