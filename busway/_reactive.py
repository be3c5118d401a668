"""Reactive sagas: functions of an event that answer with commands.

A saga returns nothing, one command, or an iterable of commands; a generator saga may
also receive each command's result (``result = yield PlaceOrder(...)``) and have a failing
command's exception thrown into it, so it can compensate. The event bus runs a saga as
one of the event's handlers: a failure it does not handle goes through the bus's error
policy like any handler's. Every shape becomes one flow of commands, which
:mod:`busway._effects` drives: so sync and async buses, generators and async generators
all follow its one rule for failures.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Generator, Iterable
from typing import Any

from ._effects import arun, arun_async_gen, run
from .errors import RegistrationError

__all__ = ["saga_handler"]


def _commands(produced: object, handles: Callable[[type], bool]) -> Generator[Any, Any, None]:
    """See what a saga returned (nothing, a command, commands, a generator) as one flow.

    A generator saga is the flow itself: results and failures reach it at its ``yield``.
    """
    if produced is None:
        return
    if inspect.isgenerator(produced):
        yield from produced
    elif handles(type(produced)) or not isinstance(produced, Iterable):
        yield produced
    else:
        # Not ``yield from``: it would send the results on to a plain iterator, which has
        # no ``send`` to take them.
        for command in produced:  # noqa: UP028
            yield command


def saga_handler(
    saga: Callable[[Any], Any], commands: Any, *, is_async: bool
) -> Callable[[Any], Any]:
    """Return an event handler that runs *saga* and executes its commands on *commands*."""
    execute: Callable[[Any], Any] = commands.execute
    handles: Callable[[type], bool] = commands.handles
    if is_async:
        return _async_handler(saga, execute, handles)

    def handle(event: Any) -> None:
        produced = saga(event)
        if inspect.isasyncgen(produced):
            raise RegistrationError(
                f"saga {saga.__qualname__} returned an async generator, which an EventBus "
                "cannot run: its steps must be awaited; run it on an AsyncEventBus (with an "
                "AsyncCommandBus), or make it a plain function or generator"
            )
        run(_commands(produced, handles), execute)

    handle.__qualname__ = saga.__qualname__
    return handle


def _async_handler(
    saga: Callable[[Any], Any], execute: Callable[[Any], Any], handles: Callable[[type], bool]
) -> Callable[[Any], Any]:
    async def handle(event: Any) -> None:
        produced = saga(event)
        if inspect.isawaitable(produced):
            produced = await produced
        if inspect.isasyncgen(produced):
            await arun_async_gen(produced, execute)
        else:
            await arun(_commands(produced, handles), execute)

    handle.__qualname__ = saga.__qualname__
    return handle
