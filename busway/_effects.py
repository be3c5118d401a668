"""The one driver of every I/O-free flow: :func:`run` performs effects, :func:`arun` awaits them.

A *flow* is a generator that yields *effects* (descriptions of the I/O it needs: call the
next middleware, append to a stream, commit a saga) and receives each one's result at its
``yield``. Logic that serves sync and async callers alike is written once as a flow; each
caller hands it to a driver with a ``perform(effect)`` function, plain or async.

One rule, in both drivers: whatever performing an effect raises is thrown into the flow
at its ``yield``, ``KeyboardInterrupt`` and ``asyncio.CancelledError`` included. The flow
sees what a direct call would have raised in its place, so it may catch it and go on
(retry, compensate), raise another error, or let it propagate, and its ``finally`` blocks
run at that point, not later. The flow's return value is the driver's; what it raises, the
driver raises, traceback intact; and the driver closes the flow on its way out, whatever
happens, so a flow never outlives its driver.

An async generator (an ``async def`` saga that yields commands) is no flow: awaiting its
own steps is I/O too. :func:`arun_async_gen` sees it as a flow whose steps are effects
as well, and drives that with :func:`arun`, so no second loop exists.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Generator
from typing import Any, TypeVar, final

__all__ = ["arun", "arun_async_gen", "run"]

E = TypeVar("E")
R = TypeVar("R")


def run(flow: Generator[E, Any, R], perform: Callable[[E], Any]) -> R:
    """Perform each effect *flow* yields with *perform*; return what the flow returns."""
    try:
        effect = flow.send(None)
        while True:
            try:
                result = perform(effect)
            except BaseException as exc:
                effect = flow.throw(exc)
            else:
                effect = flow.send(result)
    except StopIteration as stop:
        returned: R = stop.value
        return returned
    finally:
        flow.close()


async def arun(flow: Generator[E, Any, R], perform: Callable[[E], Awaitable[Any]]) -> R:
    """Await ``perform(effect)`` for each effect *flow* yields; return what the flow returns."""
    try:
        effect = flow.send(None)
        while True:
            try:
                result = await perform(effect)
            except BaseException as exc:
                effect = flow.throw(exc)
            else:
                effect = flow.send(result)
    except StopIteration as stop:
        returned: R = stop.value
        return returned
    finally:
        flow.close()


@final
class _Step:
    """The effect of awaiting one step of an async generator (its ``asend`` or ``athrow``)."""

    __slots__ = ("awaitable",)

    def __init__(self, awaitable: Awaitable[Any]) -> None:
        self.awaitable = awaitable


def _stepwise(flow: AsyncGenerator[E, Any]) -> Generator[E | _Step, Any, None]:
    step: Awaitable[Any] = flow.asend(None)
    while True:
        try:
            effect = yield _Step(step)
        except StopAsyncIteration:
            return
        try:
            result = yield effect
        except BaseException as exc:
            step = flow.athrow(exc)
        else:
            step = flow.asend(result)


async def arun_async_gen(
    flow: AsyncGenerator[E, Any], perform: Callable[[E], Awaitable[Any]]
) -> None:
    """Drive an async-generator *flow* by :func:`arun`, under the same rule.

    An async generator returns no value, so neither does this; it is closed on the way out.
    """

    async def perform_or_step(effect: E | _Step) -> Any:
        if type(effect) is _Step:
            return await effect.awaitable
        return await perform(effect)

    try:
        await arun(_stepwise(flow), perform_or_step)
    finally:
        await flow.aclose()
