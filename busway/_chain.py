"""Chain building shared by the sync and async buses: adaptation, composition, fan-out.

Everything here runs when a chain is built (once per message type after each change),
never per dispatch. A built chain is a plain callable: the handler itself when there is
no middleware, else one small closure per middleware layer.
"""

from __future__ import annotations

import asyncio
import inspect
import types
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ._registry import Entry, Middleware, describe, is_async_callable
from .errors import RegistrationError

__all__ = ["Handler", "adapt_handler", "adapt_middleware", "compose", "fan_out"]

Handler = Callable[[Any], Any]
ErrorHook = Callable[[BaseException, Any, Handler], Any]

#: Built-in middleware that needs a different body on async buses names it here.
ASYNC_VARIANT = "__busway_async__"


def refuse_async(fn: object, *, role: str, bus: str) -> None:
    """Raise if *fn* is a coroutine function offered to a sync bus."""
    if is_async_callable(fn) and not hasattr(fn, ASYNC_VARIANT):
        own_code = inspect.isfunction(fn) or inspect.ismethod(fn)
        raise RegistrationError(
            f"{describe(fn)} is an async {role}, and {bus} calls {role}s synchronously, so it "
            f"would only ever get an un-awaited coroutine; use Async{bus} instead"
            + (f", or make the {role} a plain def" if own_code else "")
        )


def _to_async(fn: Handler) -> Callable[[Any], Awaitable[Any]]:
    async def call(message: Any) -> Any:
        return fn(message)

    call.__qualname__ = describe(fn)
    return call


def adapt_handler(entry: Entry, *, is_async: bool) -> Handler:
    """Return the entry's handler as the bus calls it: awaitable on async buses."""
    if is_async and not entry.is_async:
        return _to_async(entry.handler)
    return entry.handler


def adapt_middleware(mw: Middleware, *, is_async: bool) -> Middleware:
    """Return *mw* as the bus calls it: an async middleware on async buses.

    A plain ``def`` middleware on an async bus gets ``next`` returning an awaitable; it may
    return that awaitable (or a value of its own), and the bus awaits it.
    """
    if not is_async:
        return mw
    variant: Middleware | None = getattr(mw, ASYNC_VARIANT, None)
    if variant is not None:
        return variant
    if is_async_callable(mw):
        return mw

    async def call(message: Any, next: Handler) -> Any:
        result = mw(message, next)
        return await result if inspect.isawaitable(result) else result

    return call


def compose(layers: Sequence[Middleware], handler: Handler) -> Handler:
    """Wrap *handler* in *layers*, the first outermost."""
    chain = handler
    for mw in reversed(layers):
        chain = _link(mw, chain)
    return chain


def _link(mw: Middleware, next_: Handler) -> Handler:
    bound = _bind_next(mw, next_)
    if bound is not None:
        return bound

    def link(message: Any) -> Any:
        return mw(message, next_)

    return link


_STAR_ARGS = inspect.CO_VARARGS | inspect.CO_VARKEYWORDS


def _bind_next(mw: Middleware, next_: Handler) -> Handler | None:
    """Return a copy of the function *mw* whose ``next`` defaults to *next_*, if it is one.

    Calling the copy with the message runs the middleware's own code with no wrapper frame
    in between, which halves the cost of a layer. Only plain functions of exactly
    ``(message, next)`` qualify; anything else (callable objects, methods, functions with
    defaults or star-arguments) is wrapped in a closure instead.
    """
    if type(mw) is not types.FunctionType or mw.__defaults__ or mw.__kwdefaults__:
        return None
    code = mw.__code__
    if code.co_argcount != 2 or code.co_kwonlyargcount or code.co_flags & _STAR_ARGS:
        return None
    bound = types.FunctionType(code, mw.__globals__, mw.__name__, (next_,), mw.__closure__)
    bound.__qualname__ = mw.__qualname__
    bound.__module__ = mw.__module__
    bound.__doc__ = mw.__doc__
    bound.__dict__.update(mw.__dict__)
    return bound


def _failure(errors: list[Exception], event: object) -> Exception:
    if len(errors) == 1:
        return errors[0]
    return ExceptionGroup(f"{len(errors)} handlers of {type(event).__qualname__} failed", errors)


def fan_out(
    handlers: Sequence[tuple[Handler, Handler]],
    on_error: ErrorHook | None,
    *,
    is_async: bool,
    concurrent: bool = False,
    wrapped: bool = False,
) -> Handler:
    """Return one callable delivering an event to every ``(chain, handler)`` in order.

    Every handler runs even when others fail; then the one failure is raised as it is, or
    an ``ExceptionGroup`` of several. With *on_error*, each failure goes to it instead.
    Delivery returns None; only when nothing is *wrapped* around it (so nobody sees the
    result) may a lone handler stand for the whole delivery.
    """
    chains = tuple(chain for chain, _ in handlers)
    direct = on_error is None and len(chains) == 1 and not wrapped
    if is_async:
        return _fan_out_async(tuple(handlers), on_error, concurrent=concurrent, direct=direct)
    if direct:
        return chains[0]

    if on_error is None:

        def deliver(event: Any) -> None:
            # The happy path is one bare loop. After a failure the same iterator carries on
            # with the handlers still to run, outside the except block, so that no failure
            # becomes the context of the next.
            remaining = iter(chains)
            errors: list[Exception] | None = None
            while True:
                try:
                    for chain in remaining:
                        chain(event)
                except Exception as exc:
                    errors = [exc] if errors is None else [*errors, exc]
                    continue
                break
            if errors is not None:
                try:
                    raise _failure(errors, event)
                finally:
                    del errors

        return deliver

    def deliver_to_hook(event: Any) -> None:
        for chain, handler in handlers:
            try:
                chain(event)
            except Exception as exc:
                on_error(exc, event, handler)

    return deliver_to_hook


def _fan_out_async(
    handlers: tuple[tuple[Handler, Handler], ...],
    on_error: ErrorHook | None,
    *,
    concurrent: bool,
    direct: bool,
) -> Handler:
    if direct:
        return handlers[0][0]

    async def guarded(
        chain: Handler, handler: Handler, event: Any, errors: list[Exception]
    ) -> None:
        try:
            await chain(event)
        except Exception as exc:
            if on_error is None:
                errors.append(exc)
            else:
                result = on_error(exc, event, handler)
                if inspect.isawaitable(result):
                    await result

    async def deliver(event: Any) -> None:
        errors: list[Exception] = []
        if concurrent and len(handlers) > 1:
            async with asyncio.TaskGroup() as group:
                for chain, handler in handlers:
                    group.create_task(guarded(chain, handler, event, errors))
        else:
            for chain, handler in handlers:
                await guarded(chain, handler, event, errors)
        if errors:
            try:
                raise _failure(errors, event)
            finally:
                del errors

    return deliver
