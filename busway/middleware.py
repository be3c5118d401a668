"""Built-in middleware: logging, timing, retry, validation, correlation, timeout.

Each one works on sync and async buses alike (``timeout`` on async buses only). A
middleware here is written once, as a *flow*: a generator that yields the message to pass
it on and receives what the rest of the chain returns (or has its exception thrown in),
and that may yield ``_Sleep(seconds)`` to wait. :func:`busway._effects.run` and
:func:`~busway._effects.arun` drive it, with ``next`` itself as the way to perform a
message, so the logic is never written twice and a layer costs one generator. ``log()``
checks its level before it starts its flow, so that with the level off it costs no more.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import math
import time
from collections.abc import Awaitable, Callable, Generator, Iterable
from typing import Any, final

from . import context
from ._chain import ASYNC_VARIANT
from ._effects import arun, run
from ._registry import AsyncMiddleware, Middleware
from .errors import (
    ConcurrencyError,
    DispatchTimeoutError,
    InvalidArgumentError,
    RegistrationError,
    ValidationError,
)

__all__ = [
    "AsyncMiddleware",
    "Middleware",
    "correlation",
    "exponential_backoff",
    "log",
    "retry",
    "timeout",
    "timing",
    "validation",
]

Next = Callable[[Any], Any]


@final
class _Sleep:
    """The effect of waiting *seconds* (which no message can be: the class is private)."""

    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


_Flow = Generator[Any, Any, Any]


class _FlowMiddleware:
    """Runs a flow on a sync bus (``__call__``) or an async one (its async variant)."""

    __slots__ = (ASYNC_VARIANT, "_flow", "_name")

    def __init__(self, name: str, flow: Callable[[Any], _Flow]) -> None:
        self._name = name
        self._flow = flow
        setattr(self, ASYNC_VARIANT, self._call_async)

    def __repr__(self) -> str:
        return f"<busway.middleware.{self._name}>"

    def __call__(self, message: Any, next: Next) -> Any:
        return run(self._flow(message), next)

    def _call_async(self, message: Any, next: Next) -> Awaitable[Any]:
        return arun(self._flow(message), next)


@final
class _SleepingFlowMiddleware(_FlowMiddleware):
    """A flow middleware that also yields ``_Sleep``: ``retry``, between its attempts."""

    __slots__ = ("_sleep",)

    def __init__(
        self, name: str, flow: Callable[[Any], _Flow], sleep: Callable[[float], object] | None
    ) -> None:
        super().__init__(name, flow)
        self._sleep = sleep

    def __call__(self, message: Any, next: Next) -> Any:
        sleep = self._sleep or time.sleep

        def perform(effect: Any) -> Any:
            if type(effect) is _Sleep:
                return sleep(effect.seconds)
            return next(effect)

        return run(self._flow(message), perform)

    def _call_async(self, message: Any, next: Next) -> Awaitable[Any]:
        sleep = self._sleep or asyncio.sleep

        async def perform(effect: Any) -> Any:
            if type(effect) is not _Sleep:
                return await next(effect)
            pause = sleep(effect.seconds)
            return (await pause) if inspect.isawaitable(pause) else pause

        return arun(self._flow(message), perform)


def _number(
    value: object,
    argument: str,
    least: float,
    *,
    above: bool = False,
    what: str = "a finite number",
) -> float:
    """Return *value* as a float if it is a finite number >= *least* (> if *above*)."""
    number = math.nan
    if isinstance(value, int | float) and not isinstance(value, bool):
        with contextlib.suppress(OverflowError):  # an int too large for a float stays NaN
            number = float(value)
    if not math.isfinite(number) or number < least or (above and number == least):
        raise InvalidArgumentError(argument, value, f"{what} {'>' if above else '>='} {least:g}")
    return number


def _type_name(message: object) -> str:
    return type(message).__qualname__


def _ids() -> tuple[str, dict[str, str | None]]:
    """Return the current message context as text for a log line, and as record attributes."""
    ctx = context.current()
    if ctx is None:
        return "", {}
    causation = None if ctx.causation_id is None else str(ctx.causation_id)
    ids = {
        "message_id": str(ctx.message_id),
        "correlation_id": str(ctx.correlation_id),
        "causation_id": causation,
    }
    return f" [{' '.join(f'{k}={v}' for k, v in ids.items())}]", ids


def log(
    logger: logging.Logger | logging.LoggerAdapter[Any] | None = None,
    level: int = logging.DEBUG,
    *,
    messages: bool | Callable[[Any], object] = False,
) -> Middleware:
    """Log each message's type as it is handled, then its outcome and duration.

    Records go to *logger* (default: the ``busway`` logger) at *level*. Each names the
    message's type and, under :func:`correlation`, its message, correlation and causation
    ids (also set on the record as ``message_id``, ``correlation_id``, ``causation_id``,
    with ``message_type``). The message itself may hold personal data, so it is logged
    only when asked: ``messages=True`` logs its ``repr``, and a function logs what it
    returns for the message (a redacted form, say). A failure is logged at
    ``max(level, WARNING)`` with its traceback, and re-raised. When the level is off, a
    dispatch costs one level check.
    """
    if logger is None:
        target: logging.Logger | logging.LoggerAdapter[Any] = logging.getLogger("busway")
    elif isinstance(logger, logging.Logger | logging.LoggerAdapter):
        target = logger
    else:
        raise InvalidArgumentError(
            "logger", logger, "a logging.Logger or LoggerAdapter, or None for 'busway'"
        )
    if isinstance(level, bool) or not isinstance(level, int) or level < 0:
        raise InvalidArgumentError("level", level, "a logging level such as logging.DEBUG")
    if messages is True:
        describe: Callable[[Any], object] | None = repr
    elif messages is False:
        describe = None
    elif callable(messages):
        describe = messages
    else:
        raise InvalidArgumentError(
            "messages", messages, "True, False, or a function of the message to log"
        )
    failure_level = max(level, logging.WARNING)

    def flow(message: Any) -> _Flow:
        name = _type_name(message)
        ids, extra = _ids()
        extra["message_type"] = name
        if describe is None:
            target.log(level, "handling %s%s", name, ids, extra=extra)
        else:
            target.log(level, "handling %s%s: %s", name, ids, describe(message), extra=extra)
        start = time.perf_counter()
        try:
            result = yield message
        except Exception as exc:
            elapsed = (time.perf_counter() - start) * 1000
            target.log(
                failure_level,
                "%s failed after %.3f ms%s: %s: %s",
                name,
                elapsed,
                ids,
                type(exc).__name__,
                exc,
                exc_info=exc,
                extra=extra,
            )
            raise
        elapsed = (time.perf_counter() - start) * 1000
        target.log(level, "handled %s in %.3f ms%s", name, elapsed, ids, extra=extra)
        return result

    enabled = target.isEnabledFor

    # A plain function of (message, next), not a flow object: a bus binds such a function
    # to the rest of its chain, so with the level off a dispatch costs the check alone.
    def layer(message: Any, next: Next) -> Any:
        if not enabled(level):
            return next(message)
        return run(flow(message), next)

    def async_layer(message: Any, next: Next) -> Awaitable[Any]:
        if not enabled(level):
            rest: Awaitable[Any] = next(message)  # awaited by the bus, as a flow's would be
            return rest
        return arun(flow(message), next)

    shown = ", messages" if describe is not None else ""
    layer.__qualname__ = f"log({target.name!r}, {logging.getLevelName(level)}{shown})"
    setattr(layer, ASYNC_VARIANT, async_layer)
    return layer


def timing(report: Callable[[Any, float], object]) -> _FlowMiddleware:
    """Call ``report(message, seconds)`` after each dispatch, successful or not."""
    if not callable(report):
        raise RegistrationError(
            f"timing() needs a callable report(message, seconds), got {report!r}"
        )

    def flow(message: Any) -> _Flow:
        start = time.perf_counter()
        try:
            return (yield message)
        finally:
            report(message, time.perf_counter() - start)

    return _FlowMiddleware("timing", flow)


def exponential_backoff(
    initial: float = 0.01, factor: float = 2.0, maximum: float = 1.0
) -> Callable[[int], float]:
    """Return a backoff: *initial* seconds after the first failure, times *factor* after each.

    Raises :class:`~busway.errors.InvalidArgumentError` for a negative *initial* or
    *maximum*, a *factor* below 1, or anything that is not a finite number.
    """
    first = _number(initial, "initial", 0, what="a finite number of seconds")
    growth = _number(factor, "factor", 1)
    cap = _number(maximum, "maximum", 0, what="a finite number of seconds")

    def backoff(failures: int) -> float:
        try:
            grown = first * growth ** (failures - 1)
        except OverflowError:  # so many failures that the growth left the floats
            grown = math.inf if first else 0.0
        return min(cap, grown)

    return backoff


def retry(
    on: type[BaseException] | tuple[type[BaseException], ...] = (ConcurrencyError,),
    *,
    attempts: int = 3,
    backoff: float | Callable[[int], float] | None = None,
    sleep: Callable[[float], object] | None = None,
) -> _FlowMiddleware:
    """Run the rest of the chain again when it raises one of *on*, up to *attempts* calls in all.

    Between calls it sleeps ``backoff(failures)`` seconds (or *backoff* if a number; default
    :func:`exponential_backoff`). *sleep* defaults to ``time.sleep`` on sync buses and
    ``asyncio.sleep`` on async ones; tests can pass a recorder. The last failure is raised
    as it is. Meant for commands: the whole handler runs again, so it must be safe to repeat.

    Exception classes in *on* and a callable *sleep* are what it registers, so anything else
    there is a :class:`~busway.errors.RegistrationError`; an *attempts* below 1 or a
    *backoff* that is neither a function nor seconds >= 0 is an
    :class:`~busway.errors.InvalidArgumentError`.
    """
    kinds = on if isinstance(on, tuple) else (on,)
    if not kinds or not all(isinstance(k, type) and issubclass(k, BaseException) for k in kinds):
        raise RegistrationError(
            f"retry(on=...) takes an exception class or a tuple of them, got {on!r}"
        )
    if sleep is not None and not callable(sleep):
        raise RegistrationError(f"retry(sleep=...) takes a callable sleep(seconds), got {sleep!r}")
    if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
        raise InvalidArgumentError("attempts", attempts, "an int >= 1 (it counts all calls)")
    if backoff is None:
        delay: Callable[[int], float] = exponential_backoff()
    elif callable(backoff):
        delay = backoff
    else:
        seconds = _number(
            backoff, "backoff", 0, what="a function backoff(failures) or a number of seconds"
        )
        delay = lambda _failures: seconds  # noqa: E731 - a constant backoff

    def flow(message: Any) -> _Flow:
        for failures in range(attempts):
            if failures:
                yield _Sleep(delay(failures))
            try:
                return (yield message)
            except kinds:
                if failures + 1 == attempts:
                    raise
        raise AssertionError("unreachable: the loop returns or raises")  # pragma: no cover

    names = ", ".join(k.__name__ for k in kinds)
    return _SleepingFlowMiddleware(f"retry(on=({names}), attempts={attempts})", flow, sleep)


def validation(validator: Callable[[Any], object]) -> _FlowMiddleware:
    """Check each message with *validator* before its handler runs.

    The validator returns ``None`` or ``True`` to accept; ``False`` or a non-empty iterable
    of problem strings to reject. It may also raise: ``ValidationError`` passes through, and
    ``ValueError`` or ``TypeError`` (what attrs validators raise) become ``ValidationError``.
    """
    if not callable(validator):
        raise RegistrationError(
            f"validation() needs a callable validator(message), got {validator!r}"
        )

    def check(message: Any) -> None:
        try:
            verdict = validator(message)
        except ValidationError:
            raise
        except (ValueError, TypeError) as exc:
            raise ValidationError(message, [str(exc)]) from exc
        if verdict is None or verdict is True:
            return
        if verdict is False:
            raise ValidationError(
                message, [f"rejected by {getattr(validator, '__qualname__', validator)}"]
            )
        if isinstance(verdict, Iterable) and not isinstance(verdict, (str, bytes)):
            problems = [str(p) for p in verdict]
            if problems:
                raise ValidationError(message, problems)
            return
        raise ValidationError(message, [str(verdict)])

    def flow(message: Any) -> _Flow:
        check(message)
        return (yield message)

    return _FlowMiddleware("validation", flow)


def correlation() -> _FlowMiddleware:
    """Give each message a context: its own id, its conversation's, and its cause's.

    Inside the dispatch :func:`busway.context.current` returns it; a dispatch nested in it
    keeps the correlation id and takes this message's id as its causation id.
    """

    def flow(message: Any) -> _Flow:
        with context.scope():
            return (yield message)

    return _FlowMiddleware("correlation", flow)


@final
class _Timeout:
    __slots__ = ("seconds",)

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __repr__(self) -> str:
        return f"<busway.middleware.timeout({self.seconds:g})>"

    async def __call__(self, message: Any, next: Callable[[Any], Awaitable[Any]]) -> Any:
        try:
            async with asyncio.timeout(self.seconds) as scope:
                return await next(message)
        except TimeoutError:
            if scope.expired():
                raise DispatchTimeoutError(message, self.seconds) from None
            raise


def timeout(seconds: float) -> Callable[[Any, Callable[[Any], Awaitable[Any]]], Awaitable[Any]]:
    """Cancel a dispatch on an async bus that runs longer than *seconds*.

    Raises :class:`~busway.errors.DispatchTimeoutError` (a ``TimeoutError``). A sync bus
    refuses it: a plain call cannot be interrupted safely.
    """
    return _Timeout(_number(seconds, "seconds", 0, above=True))
