"""Chain building shared by the sync and async buses: adaptation, composition, fan-out.

Everything here runs when a chain is built (once per message type after each change),
never per dispatch. A built chain is a plain callable: the handler itself when there is
no middleware, else one small closure per middleware layer.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import types
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

from ._registry import Entry, Middleware, describe, is_async_callable
from .errors import RegistrationError

__all__ = [
    "Delivery",
    "Handler",
    "adapt_handler",
    "adapt_middleware",
    "compose",
    "deliver_rest",
    "deliver_rest_async",
    "fan_out",
]

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


def failure(errors: Sequence[Exception], event: object) -> Exception:
    """Return what a publication whose handlers raised *errors* raises: the one, or a group."""
    if len(errors) == 1:
        return errors[0]
    return ExceptionGroup(
        f"{len(errors)} handlers of {type(event).__qualname__} failed", list(errors)
    )


#: What publishing an event of one type runs: a callable that delivers it, and, when it is
#: a plain loop over several handlers' chains, those chains, so that ``publish`` can run the
#: loop itself (a call frame costs more than the loop adds).
Delivery = tuple[Handler, tuple[Handler, ...] | None]


def fan_out(
    handlers: Sequence[tuple[Handler, Handler]],
    on_error: ErrorHook | None,
    layers: Sequence[Middleware],
    *,
    is_async: bool,
    concurrent: bool = False,
) -> Delivery:
    """Return how publishing an event to *handlers*, ``(chain, handler)`` pairs, goes.

    Every handler runs even when others fail; then the one failure is raised as it is, or
    an ``ExceptionGroup`` of several. With *on_error*, each failure goes to it instead.
    *layers* wrap the publication as a whole. With no middleware and no error hook, a lone
    handler's chain stands for the whole delivery.
    """
    chains = _distinct(chain for chain, _ in handlers)
    concurrent = concurrent and len(chains) > 1
    terminal: Handler
    if is_async and (on_error is not None or concurrent):
        terminal = _guarded(tuple(handlers), on_error, concurrent=concurrent)
    elif on_error is not None:
        terminal = _to_hook(handlers, on_error)
    else:
        deliver = _deliver_async(chains) if is_async else _deliver(chains)
        if not layers:
            return (chains[0], None) if len(chains) == 1 else (deliver, chains)
        terminal = deliver  # middleware sees next(event) return None, not a handler's result
    return compose(layers, terminal), None


def _distinct(chains: Iterable[Handler]) -> tuple[Handler, ...]:
    """Return *chains* with each repeat made a distinct object (the same handler subscribed
    twice), so that a failed chain's identity tells where delivery goes on after it."""
    seen: set[int] = set()
    distinct: list[Handler] = []
    for chain in chains:
        kept = functools.partial(chain) if id(chain) in seen else chain
        seen.add(id(kept))
        distinct.append(kept)
    return tuple(distinct)


# _deliver and _deliver_async run the loop that EventBus.publish and AsyncEventBus.publish
# run inline: keep the four alike. The happy path is one bare loop; after a failure,
# deliver_rest goes on from the chain that failed, outside the except block, so that no
# failure becomes the context of the next.


def _deliver(chains: tuple[Handler, ...]) -> Handler:
    def deliver(event: Any) -> None:
        try:
            for chain in chains:
                chain(event)
            return
        except Exception as exc:
            error = exc
        try:
            raise deliver_rest(chains, chain, error, event)
        finally:
            del error  # the traceback holds this frame: break the cycle

    return deliver


def _deliver_async(chains: tuple[Handler, ...]) -> Handler:
    async def deliver(event: Any) -> None:
        try:
            for chain in chains:
                await chain(event)
            return
        except Exception as exc:
            error = exc
        try:
            raise await deliver_rest_async(chains, chain, error, event)
        finally:
            del error

    return deliver


def _after(chains: tuple[Handler, ...], failed: Handler) -> tuple[Handler, ...]:
    return chains[next(i for i, chain in enumerate(chains) if chain is failed) + 1 :]


def deliver_rest(
    chains: tuple[Handler, ...], failed: Handler, error: Exception, event: Any
) -> Exception:
    """Call the chains after *failed*, which raised *error*; return what publishing raises."""
    errors = [error]
    for chain in _after(chains, failed):
        try:
            chain(event)
        except Exception as exc:
            errors.append(exc)
    return failure(errors, event)


async def deliver_rest_async(
    chains: tuple[Handler, ...], failed: Handler, error: Exception, event: Any
) -> Exception:
    """Await the chains after *failed*, which raised *error*; return what publishing raises."""
    errors = [error]
    for chain in _after(chains, failed):
        try:
            await chain(event)
        except Exception as exc:
            errors.append(exc)
    return failure(errors, event)


def _to_hook(handlers: Sequence[tuple[Handler, Handler]], on_error: ErrorHook) -> Handler:
    def deliver_to_hook(event: Any) -> None:
        for chain, handler in handlers:
            try:
                chain(event)
            except Exception as exc:
                on_error(exc, event, handler)

    return deliver_to_hook


def _guarded(
    handlers: tuple[tuple[Handler, Handler], ...], on_error: ErrorHook | None, *, concurrent: bool
) -> Handler:
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

    async def deliver_guarded(event: Any) -> None:
        errors: list[Exception] = []
        if concurrent:
            async with asyncio.TaskGroup() as group:
                for chain, handler in handlers:
                    group.create_task(guarded(chain, handler, event, errors))
        else:
            for chain, handler in handlers:
                await guarded(chain, handler, event, errors)
        if errors:
            try:
                raise failure(errors, event)
            finally:
                del errors

    return deliver_guarded
