"""Reactive sagas: functions of an event that answer with commands.

A saga returns nothing, one command, or an iterable of commands; a generator saga may
also receive each command's result (``result = yield PlaceOrder(...)``) and have a failing
command's exception thrown into it, so it can compensate. The event bus runs a saga as
one of the event's handlers: a failure it does not handle goes through the bus's error
policy like any handler's.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncGenerator, Callable, Generator, Iterable
from typing import Any, Literal

__all__ = ["saga_handler"]

Shape = Literal["none", "one", "many", "generator", "async generator"]


def _shape(produced: object, handles: Callable[[type], bool]) -> Shape:
    """Tell how to read what a saga returned; the one decision both drivers share."""
    if produced is None:
        return "none"
    if inspect.isgenerator(produced):
        return "generator"
    if inspect.isasyncgen(produced):
        return "async generator"
    if handles(type(produced)) or not isinstance(produced, Iterable):
        return "one"
    return "many"


def saga_handler(
    saga: Callable[[Any], Any], commands: Any, *, is_async: bool
) -> Callable[[Any], Any]:
    """Return an event handler that runs *saga* and executes its commands on *commands*."""
    execute: Callable[[Any], Any] = commands.execute
    handles: Callable[[type], bool] = commands.handles
    if is_async:
        return _async_driver(saga, execute, handles)

    def run(event: Any) -> None:
        produced = saga(event)
        shape = _shape(produced, handles)
        if shape == "one":
            execute(produced)
        elif shape == "many":
            for command in produced:
                execute(command)
        elif shape == "generator":
            _drive(produced, execute)
        elif shape == "async generator":
            raise TypeError(
                f"saga {saga.__qualname__} is an async generator; run it on an AsyncEventBus"
            )

    run.__qualname__ = saga.__qualname__
    return run


def _drive(flow: Generator[Any, Any, Any], execute: Callable[[Any], Any]) -> None:
    try:
        command = next(flow)
        while True:
            try:
                result = execute(command)
            except Exception as exc:
                command = flow.throw(exc)
            else:
                command = flow.send(result)
    except StopIteration:
        return


def _async_driver(
    saga: Callable[[Any], Any], execute: Callable[[Any], Any], handles: Callable[[type], bool]
) -> Callable[[Any], Any]:
    async def run(event: Any) -> None:
        produced = saga(event)
        if inspect.isawaitable(produced):
            produced = await produced
        shape = _shape(produced, handles)
        if shape == "one":
            await execute(produced)
        elif shape == "many":
            for command in produced:
                await execute(command)
        elif shape == "generator":
            await _drive_async(_SyncFlow(produced), execute)
        elif shape == "async generator":
            await _drive_async(produced, execute)

    run.__qualname__ = saga.__qualname__
    return run


class _SyncFlow:
    """A plain generator seen through the async generator's interface."""

    def __init__(self, flow: Generator[Any, Any, Any]) -> None:
        self._flow = flow

    async def asend(self, value: Any) -> Any:
        try:
            return self._flow.send(value)
        except StopIteration:
            raise StopAsyncIteration from None

    async def athrow(self, exc: BaseException) -> Any:
        try:
            return self._flow.throw(exc)
        except StopIteration:
            raise StopAsyncIteration from None


async def _drive_async(
    flow: AsyncGenerator[Any, Any] | _SyncFlow, execute: Callable[[Any], Any]
) -> None:
    try:
        command = await flow.asend(None)
        while True:
            try:
                result = await execute(command)
            except Exception as exc:
                command = await flow.athrow(exc)
            else:
                command = await flow.asend(result)
    except StopAsyncIteration:
        return
