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
import os
import time
import tracemalloc
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

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


def track_usage(
    feature: str | None = None,
    *,
    user_arg: str | None = None,
    session_arg: str | None = None,
    capture_args: bool = False,
    resolve: Resolver = installed,
) -> Callable[[F], F]:
    """Count calls as ``feature_used{feature=...}``, with the (hashed) user and session
    taken from the arguments named ``user_arg`` and ``session_arg``, and optionally the
    sanitized arguments."""

    def decorate(func: F) -> F:
        tags = {"feature": feature or func.__qualname__}
        user = _argument(func, user_arg)
        session = _argument(func, session_arg)
        arguments = _arguments(func) if capture_args else None

        def before(client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            attrs = {"function": func.__qualname__}
            if user_arg:
                attrs["user"] = client.privacy.user(user(args, kwargs))
            if session_arg:
                attrs["session"] = client.privacy.session(session(args, kwargs))
            if arguments is not None:
                attrs["params"] = client.privacy.sanitize(arguments(args, kwargs))
            return attrs

        def after(client: Any, attrs: Any, exc: BaseException | None) -> None:
            client.metric("feature_used", 1.0, tags, attrs=attrs, ok=exc is None)

        return _wrap(func, resolve, before, after)

    return decorate


@functools.cache
def _process(pid: int) -> Any:
    """One psutil handle per process (by pid: a forked child must not read its parent)."""
    import psutil

    return psutil.Process(pid)


def _memory() -> int:
    """Bytes in use: traced Python memory when tracemalloc runs, else the process RSS."""
    if tracemalloc.is_tracing():
        return tracemalloc.get_traced_memory()[0]
    return int(_process(os.getpid()).memory_info().rss)


def monitor_performance(
    name: str | None = None,
    *,
    memory: bool = False,
    tags: Mapping[str, str] | None = None,
    resolve: Resolver = installed,
) -> Callable[[F], F]:
    """Record each call's wall time as ``duration_ms{function=...}``; with ``memory``,
    also ``memory_delta_bytes`` (traced memory if tracemalloc runs, else RSS)."""

    def decorate(func: F) -> F:
        series = {"function": name or func.__qualname__, **(tags or {})}

        def before(client: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
            return (_memory() if memory else 0), time.perf_counter()

        def after(client: Any, state: Any, exc: BaseException | None) -> None:
            duration_ms = (time.perf_counter() - state[1]) * 1000
            client.metric("duration_ms", duration_ms, series, ok=exc is None)
            if memory:
                client.metric("memory_delta_bytes", float(_memory() - state[0]), series)

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
