"""Decorators for functions and coroutines.

A decorator never changes what the wrapped function does: same result, same exception
(re-raised as is), same signature and metadata (``functools.wraps``), and a coroutine
function stays a coroutine function. If recording fails, the failure is counted by the
client and the call goes on.

They exist as client methods (``@vigil.track_usage("export")``) and as module functions
(``@producers.track_usage("export")``) that use the installed client at call time (see
:func:`producers.client.install`), so a module can be decorated before any client exists;
without one they only call through.

>>> import asyncio, inspect
>>> @track_errors()
... async def fetch(url: str) -> str:
...     "Fetch it."
...     return url
>>> inspect.iscoroutinefunction(fetch), fetch.__name__, fetch.__doc__
(True, 'fetch', 'Fetch it.')
>>> asyncio.run(fetch("x"))
'x'
"""

from __future__ import annotations

import functools
import inspect
import time
import tracemalloc
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from producers.measure import Measure

F = TypeVar("F", bound=Callable[..., Any])
#: Returns the client to record into, or None.
Resolver = Callable[[], Any]


_installed: Any = None


def install(client: Any) -> None:
    """Make ``client`` the one the module-level decorators record into (None: none)."""
    global _installed
    _installed = client


def installed() -> Any:
    """The client the module-level decorators record into (a :class:`Client` or
    :class:`SyncClient`), or None."""
    return _installed


def _wrap(
    func: F,
    resolve: Resolver,
    before: Callable[[Any, tuple[Any, ...], dict[str, Any]], Any],
    after: Callable[[Any, Any, BaseException | None], None],
) -> F:
    """Run ``before(client, args, kwargs) -> state`` and ``after(client, state, exc)``
    around each call of ``func``; neither can affect the call."""

    def enter(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, Any]:
        client = resolve()
        if client is None:
            return None, None
        try:
            return client, before(client, args, kwargs)
        except Exception as exc:
            client._internal(exc)
            return None, None

    def leave(client: Any, state: Any, exc: BaseException | None) -> None:
        if client is None:
            return
        try:
            after(client, state, exc)
        except Exception as err:
            client._internal(err)

    if inspect.iscoroutinefunction(func):

        @functools.wraps(func)
        async def async_wrapper(*args: Any, **kwargs: Any) -> Any:
            client, state = enter(args, kwargs)
            try:
                result = await func(*args, **kwargs)
            except BaseException as exc:
                leave(client, state, exc)
                raise
            leave(client, state, None)
            return result

        return async_wrapper  # type: ignore[return-value]

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        client, state = enter(args, kwargs)
        try:
            result = func(*args, **kwargs)
        except BaseException as exc:
            leave(client, state, exc)
            raise
        leave(client, state, None)
        return result

    return wrapper  # type: ignore[return-value]


def _argument(func: Callable[..., Any], name: str | None) -> Callable[..., Any]:
    """A getter of argument ``name`` from a call's ``(args, kwargs)``."""
    if name is None:
        return lambda args, kwargs: None
    params = list(inspect.signature(func).parameters)
    if name not in params:
        raise TypeError(f"{func.__qualname__} has no parameter {name!r}")
    index = params.index(name)
    return lambda args, kwargs: kwargs.get(name, args[index] if index < len(args) else None)


def _arguments(func: Callable[..., Any]) -> Callable[..., dict[str, Any]]:
    signature = inspect.signature(func)

    def bound(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        return dict(signature.bind_partial(*args, **kwargs).arguments)

    return bound


def _sized(value: Any) -> float | None:
    """A data size: the length of a sized value, a number as it is, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    try:
        return float(len(value))
    except TypeError:
        return None


def track_usage(
    feature: str | None = None,
    *,
    user_arg: str | None = None,
    session_arg: str | None = None,
    size_arg: str | None = None,
    params: Sequence[str] = (),
    capture_args: bool = False,
    resolve: Resolver = installed,
) -> Callable[[F], F]:
    """Record each call as a use of ``feature`` (``producers.usage``): its duration and
    outcome, the (hashed) user and session from the arguments named ``user_arg`` and
    ``session_arg`` (else the current session), the data size from ``size_arg`` (its
    length, or the number itself), and the parameters named in ``params`` as the call's
    combination (``capture_args``: every argument). Nothing is recorded for a user who
    opted out."""

    def decorate(func: F) -> F:
        name = feature or func.__qualname__
        extra = {"function": func.__qualname__}
        user = _argument(func, user_arg)
        session = _argument(func, session_arg)
        size = _argument(func, size_arg)
        arguments = _arguments(func) if capture_args or params else None
        keep = tuple(params)

        def before(client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            chosen = arguments(args, kwargs) if arguments is not None else None
            if chosen is not None and keep:
                chosen = {k: v for k, v in chosen.items() if k in keep}
            who = user(args, kwargs)
            data = _sized(size(args, kwargs)) if size_arg else None
            return who, session(args, kwargs), data, chosen, time.perf_counter()

        tags = {"feature": name}

        def after(client: Any, state: Any, exc: BaseException | None) -> None:
            who, sid, data, chosen, t0 = state
            duration_ms = (time.perf_counter() - t0) * 1000
            if who is not None and not client.consents(who):
                client._counts["opted_out"] += 1
                return
            attrs = client._use_attrs(dict(extra), who, sid, duration_ms, data, chosen)
            client._used(tags, attrs, exc is None)

        for param in keep:
            _argument(func, param)  # a name the function does not take fails here, early
        return _wrap(func, resolve, before, after)

    return decorate


class _CallMemory:
    """Memory before, after and at the peak of one call, and its CPU time: traced Python
    memory when tracemalloc runs (its peak is reset at the call's start, so it is the
    call's own), else the process RSS (``producers.measure``: the peak is exact when the
    call raised the process's high-water mark)."""

    __slots__ = ("_measure", "before")

    def __init__(self) -> None:
        self._measure = Measure()
        if tracemalloc.is_tracing():
            tracemalloc.reset_peak()
            self.before = tracemalloc.get_traced_memory()[0]
        else:
            self.before = self._measure.rss_before()

    def stop(self) -> tuple[float, float, float, float]:
        """``(before, after, peak, cpu_ms)``."""
        figures = self._measure.stop()
        if tracemalloc.is_tracing():
            after, peak = tracemalloc.get_traced_memory()
        else:
            after, peak = figures.get("rss_after_bytes", 0), figures.get("rss_peak_bytes", 0)
        return float(self.before), float(after), float(max(peak, after)), figures.get("cpu_ms", 0.0)


def monitor_performance(
    name: str | None = None,
    *,
    memory: bool = False,
    tags: Mapping[str, str] | None = None,
    resolve: Resolver = installed,
) -> Callable[[F], F]:
    """Record each call's wall time as ``duration_ms{function=...}``; with ``memory``, also
    ``memory_delta_bytes`` (after less before, both in its attributes with the peak),
    ``memory_peak_bytes`` (the peak above where the call started) and ``cpu_ms`` (the
    process's CPU time during the call): traced memory if tracemalloc runs, else RSS."""

    def decorate(func: F) -> F:
        series = {"function": name or func.__qualname__, **(tags or {})}

        def before(client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            return (_CallMemory() if memory else None), time.perf_counter()

        def after(client: Any, state: Any, exc: BaseException | None) -> None:
            duration_ms = (time.perf_counter() - state[1]) * 1000
            client.metric("duration_ms", duration_ms, series, ok=exc is None)
            if state[0] is not None:
                was, now, peak, cpu_ms = state[0].stop()
                sizes = {"before": was, "after": now, "peak": peak}
                client.metric("memory_delta_bytes", now - was, series, attrs=sizes)
                client.metric("memory_peak_bytes", max(peak - was, 0.0), series)
                client.metric("cpu_ms", cpu_ms, series)

        return _wrap(func, resolve, before, after)

    return decorate


def track_errors(
    name: str | None = None,
    *,
    context: Mapping[str, Any] | None = None,
    resolve: Resolver = installed,
) -> Callable[[F], F]:
    """Record every exception the function raises (type, message, stack, ``context``);
    the exception is re-raised unchanged."""

    def decorate(func: F) -> F:
        base = {"function": name or func.__qualname__, **(context or {})}

        def before(client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            return None

        def after(client: Any, state: Any, exc: BaseException | None) -> None:
            if isinstance(exc, Exception):
                client.error(exc, base)

        return _wrap(func, resolve, before, after)

    return decorate


def track_workflow(
    name: str | None = None,
    *,
    total_steps: int | None = None,
    execution_id_arg: str | None = None,
    resolve: Resolver = installed,
) -> Callable[[F], F]:
    """Run the function as one workflow execution; inside it,
    :func:`producers.current_execution` gives the run, for ``run.step(...)``."""

    def decorate(func: F) -> F:
        workflow = name or func.__qualname__
        execution_id = _argument(func, execution_id_arg)

        def before(client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            run = client.execution(workflow, execution_id(args, kwargs), total_steps=total_steps)
            return run.__enter__()

        def after(client: Any, run: Any, exc: BaseException | None) -> None:
            run.__exit__(type(exc) if exc else None, exc, exc.__traceback__ if exc else None)

        return _wrap(func, resolve, before, after)

    return decorate


class DecoratorMethods:
    """The decorators bound to one client: ``@vigil.monitor_performance()``."""

    def track_usage(self, feature: str | None = None, **kwargs: Any) -> Callable[[F], F]:
        return track_usage(feature, resolve=lambda: self, **kwargs)

    def monitor_performance(self, name: str | None = None, **kwargs: Any) -> Callable[[F], F]:
        return monitor_performance(name, resolve=lambda: self, **kwargs)

    def track_errors(self, name: str | None = None, **kwargs: Any) -> Callable[[F], F]:
        return track_errors(name, resolve=lambda: self, **kwargs)

    def track_workflow(self, name: str | None = None, **kwargs: Any) -> Callable[[F], F]:
        return track_workflow(name, resolve=lambda: self, **kwargs)
