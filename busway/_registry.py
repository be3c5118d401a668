"""Registries: which handler serves which message type, declared once, shared by buses."""

from __future__ import annotations

import enum
import inspect
import itertools
import sys
import threading
import typing
import weakref
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, Protocol, TypeAlias, TypeVar, overload

import attrs

from ._messages import Command, Event, Query
from .errors import DuplicateHandlerError, RegistrationError

__all__ = ["AsyncMiddleware", "Middleware", "Registry", "returns_coroutine"]

F = TypeVar("F", bound=Callable[..., Any])

Middleware: TypeAlias = Callable[[Any, Callable[[Any], Any]], Any]
"""``mw(message, next) -> result``: it calls ``next(message)`` to go on, or answers itself."""

AsyncMiddleware: TypeAlias = Callable[[Any, Callable[[Any], Awaitable[Any]]], Awaitable[Any]]
"""``async mw(message, next) -> result``: it awaits ``next(message)`` to go on."""

#: One lock for every registration change, in every registry and bus: changes are rare, and a
#: single lock cannot deadlock between a registry notifying a bus and a bus reading a registry.
CHANGE_LOCK = threading.RLock()
_sequence = itertools.count()


class Kind(enum.Enum):
    """What a message is to the buses: which bus serves it and how many handlers it has."""

    COMMAND = "command"
    QUERY = "query"
    EVENT = "event"


_BASES: dict[Kind, type] = {Kind.COMMAND: Command, Kind.QUERY: Query, Kind.EVENT: Event}


#: Set on a plain ``def`` that returns a coroutine (an async bus's ``execute``), so that
#: registering it, say to forward commands to another bus, awaits what it returns.
_RETURNS_COROUTINE = "__busway_returns_coroutine__"


def returns_coroutine(fn: F) -> F:
    """Mark *fn*, a plain ``def`` returning a coroutine, as async for busway and ``inspect``.

    ``inspect.iscoroutinefunction`` learns it only on Python 3.12 and later
    (``inspect.markcoroutinefunction``); on 3.11 there is no public way to tell it.
    """
    setattr(fn, _RETURNS_COROUTINE, True)
    if sys.version_info >= (3, 12):  # pragma: no cover - the suite runs on 3.11 too
        inspect.markcoroutinefunction(fn)
    return fn


def is_async_callable(fn: object) -> bool:
    """Tell whether calling *fn* returns something to await: a coroutine or an async iterator."""
    call = getattr(fn, "__call__", None)  # noqa: B004 - a callable instance's own __call__
    return any(
        check(target)
        for check in (inspect.iscoroutinefunction, inspect.isasyncgenfunction, _marked)
        for target in (fn, call)
    )


def _marked(fn: object) -> bool:
    return getattr(fn, _RETURNS_COROUTINE, False) is True


def article(kind: Kind, suffix: str = "") -> str:
    """Return "a command", "an event", or with suffix "Bus": "a CommandBus", "an EventBus"."""
    word = f"{kind.value.capitalize()}{suffix}" if suffix else kind.value
    return f"an {word}" if kind is Kind.EVENT else f"a {word}"


def describe(fn: object) -> str:
    """Return how errors name *fn*: its qualified name, or its repr when it has none."""
    return getattr(fn, "__qualname__", None) or repr(fn)


@attrs.frozen(eq=False)
class Entry:
    """One registration: a handler for a message type, with its own middleware."""

    kind: Kind
    message_type: type
    handler: Callable[[Any], Any]
    middleware: tuple[Callable[..., Any], ...]
    is_async: bool
    saga: bool = False
    seq: int = attrs.field(factory=lambda: next(_sequence))


class Watcher(Protocol):
    """A bus built on a registry, told of each change so it can rebuild its chains."""

    def registry_changed(self, registry: Registry, added: Entry | None) -> None:
        """Take in *added* (None: one was removed); raising undoes the addition."""


def declared_kind(message_type: type) -> Kind | None:
    """Return the kind a class declares by its base, or None for a plain class."""
    for kind, base in _BASES.items():
        if issubclass(message_type, base):
            return kind
    return None


def check_message_type(kind: Kind, message_type: object, *, where: str) -> type:
    """Return *message_type* if it may be registered as a *kind*, else raise why not."""
    if not isinstance(message_type, type):
        raise RegistrationError(
            f"{where} needs a class as the message type, got {message_type!r}; "
            f"pass the {kind.value} class itself, e.g. {where}(PlaceOrder, handler)"
        )
    other = declared_kind(message_type)
    if other is not None and other is not kind:
        raise RegistrationError(
            f"{message_type.__qualname__} is {article(other)} ({_BASES[other].__name__} "
            f"subclass) and cannot be registered as {article(kind)}; register it on "
            f"{article(other, 'Bus')} or with @registry.{other.value}"
        )
    return message_type


def check_callable(fn: object, *, what: str) -> None:
    if not callable(fn):
        raise RegistrationError(f"{what} must be callable, got {fn!r} of type {type(fn).__name__}")


def check_middleware(mw: object) -> None:
    """Refuse a middleware that cannot be called as ``mw(message, next)``."""
    check_callable(mw, what="a middleware")
    try:
        sig = inspect.signature(mw)  # type: ignore[arg-type]
    except (TypeError, ValueError):  # builtins without a signature: trust the caller
        return
    try:
        sig.bind(None, None)
    except TypeError:
        raise RegistrationError(
            f"middleware {describe(mw)}{sig} must accept two arguments, (message, next)"
        ) from None


def message_type_of(handler: Callable[..., Any], kind: Kind) -> type:
    """Read the message type from the annotation of the handler's first parameter."""
    try:
        params = list(inspect.signature(handler).parameters.values())
    except (TypeError, ValueError):
        params = []
    if not params or params[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        raise RegistrationError(
            f"cannot tell which {kind.value} {describe(handler)} handles: it takes no "
            f"positional parameter; give the type explicitly: @registry.{kind.value}(TheType)"
        )
    first = params[0]
    target = handler if inspect.isroutine(handler) else type(handler).__call__
    try:
        hints = typing.get_type_hints(target)
    except Exception as exc:  # a forward reference that does not resolve, among others
        raise RegistrationError(
            f"cannot resolve the annotations of {describe(handler)} ({exc}); give the type "
            f"explicitly: @registry.{kind.value}(TheType)"
        ) from exc
    annotation = hints.get(first.name, inspect.Parameter.empty)
    if annotation is inspect.Parameter.empty:
        raise RegistrationError(
            f"cannot tell which {kind.value} {describe(handler)} handles: its first parameter "
            f"{first.name!r} has no annotation; annotate it or use @registry.{kind.value}(TheType)"
        )
    if not isinstance(annotation, type):
        raise RegistrationError(
            f"the first parameter of {describe(handler)} is annotated {annotation!r}, which is "
            f"not a class; annotate it with the {kind.value} class or use "
            f"@registry.{kind.value}(TheType)"
        )
    return annotation


def make_entry(
    kind: Kind,
    message_type: object,
    handler: object,
    middleware: Iterable[object],
    *,
    where: str,
    saga: bool = False,
) -> Entry:
    """Validate one registration and return it as an entry."""
    checked = check_message_type(kind, message_type, where=where)
    check_callable(handler, what=f"the handler for {checked.__qualname__}")
    layers = tuple(middleware)
    for mw in layers:
        check_middleware(mw)
    return Entry(
        kind=kind,
        message_type=checked,
        handler=handler,  # type: ignore[arg-type]  # checked callable above
        middleware=layers,  # type: ignore[arg-type]
        is_async=is_async_callable(handler),
        saga=saga,
    )


class Registry:
    """Handlers declared once, then given to any number of buses.

    A registry holds at most one handler per command or query type, and any number of
    event handlers. Buses built from it see later registrations too.
    """

    def __init__(self) -> None:
        self._singles: dict[Kind, dict[type, Entry]] = {Kind.COMMAND: {}, Kind.QUERY: {}}
        self._events: tuple[Entry, ...] = ()
        self._watchers: weakref.WeakSet[Watcher] = weakref.WeakSet()

    def __repr__(self) -> str:
        return (
            f"<Registry: {len(self._singles[Kind.COMMAND])} commands, "
            f"{len(self._singles[Kind.QUERY])} queries, {len(self._events)} event handlers>"
        )

    # -- declaring ------------------------------------------------------------------------

    @overload
    def command(
        self, message_type: type[Any], /, *, middleware: Sequence[Middleware | AsyncMiddleware] = ()
    ) -> Callable[[F], F]: ...
    @overload
    def command(
        self, /, *, middleware: Sequence[Middleware | AsyncMiddleware] = ...
    ) -> Callable[[F], F]: ...
    @overload
    def command(self, handler: F, /) -> F: ...
    def command(
        self, target: Any = None, /, *, middleware: Sequence[Middleware | AsyncMiddleware] = ()
    ) -> Any:
        """Register the decorated function as the handler of a command type.

        Use it bare (the type is read from the first parameter's annotation) or give the
        type: ``@registry.command(PlaceOrder)``. The function is returned unchanged.
        """
        return decorate(self, Kind.COMMAND, target, middleware)

    @overload
    def query(
        self, message_type: type[Any], /, *, middleware: Sequence[Middleware | AsyncMiddleware] = ()
    ) -> Callable[[F], F]: ...
    @overload
    def query(
        self, /, *, middleware: Sequence[Middleware | AsyncMiddleware] = ...
    ) -> Callable[[F], F]: ...
    @overload
    def query(self, handler: F, /) -> F: ...
    def query(
        self, target: Any = None, /, *, middleware: Sequence[Middleware | AsyncMiddleware] = ()
    ) -> Any:
        """Register the decorated function as the handler of a query type."""
        return decorate(self, Kind.QUERY, target, middleware)

    @overload
    def event(
        self, message_type: type[Any], /, *, middleware: Sequence[Middleware | AsyncMiddleware] = ()
    ) -> Callable[[F], F]: ...
    @overload
    def event(
        self, /, *, middleware: Sequence[Middleware | AsyncMiddleware] = ...
    ) -> Callable[[F], F]: ...
    @overload
    def event(self, handler: F, /) -> F: ...
    def event(
        self, target: Any = None, /, *, middleware: Sequence[Middleware | AsyncMiddleware] = ()
    ) -> Any:
        """Subscribe the decorated function to an event type, its subclasses included."""
        return decorate(self, Kind.EVENT, target, middleware)

    @overload
    def saga(self, event_type: type[Any], /) -> Callable[[F], F]: ...
    @overload
    def saga(self, saga: F, /) -> F: ...
    def saga(self, target: Any = None, /) -> Any:
        """Declare a reactive saga: a function of an event returning the commands to execute.

        It may return None, one command, or an iterable (a generator too) of commands. Event
        buses run it like a handler, executing each command on their command bus.
        """
        return decorate(self, Kind.EVENT, target, (), where="@registry.saga", saga=True)

    # -- what buses use -------------------------------------------------------------------

    def singles(self, kind: Kind) -> dict[type, Entry]:
        """Return the command or query table (do not mutate: it is replaced on change)."""
        return self._singles[kind]

    def events(self) -> tuple[Entry, ...]:
        """Return the event subscriptions in subscription order."""
        return self._events

    def watch(self, watcher: Watcher) -> None:
        """Tell *watcher* of every later change to this registry."""
        with CHANGE_LOCK:
            self._watchers.add(watcher)

    def add(self, entry: Entry) -> None:
        """Add *entry*, or raise and leave the registry, and every bus using it, unchanged."""
        with CHANGE_LOCK:
            if entry.kind is Kind.EVENT:
                self._events = (*self._events, entry)
            else:
                table = self._singles[entry.kind]
                existing = table.get(entry.message_type)
                if existing is not None:
                    raise DuplicateHandlerError(entry.message_type, existing.handler, entry.handler)
                self._singles[entry.kind] = {**table, entry.message_type: entry}
            try:
                for watcher in list(self._watchers):
                    watcher.registry_changed(self, entry)
            except BaseException:
                self.remove(entry)
                raise

    def remove(self, entry: Entry) -> None:
        """Remove *entry* if present; removing twice is harmless."""
        with CHANGE_LOCK:
            if entry.kind is Kind.EVENT:
                if entry not in self._events:
                    return
                self._events = tuple(e for e in self._events if e is not entry)
            else:
                table = self._singles[entry.kind]
                if table.get(entry.message_type) is not entry:
                    return
                self._singles[entry.kind] = {
                    t: e for t, e in table.items() if t is not entry.message_type
                }
            for watcher in list(self._watchers):
                watcher.registry_changed(self, None)


def decorate(
    registry: Registry,
    kind: Kind,
    target: Any,
    middleware: Sequence[Any],
    *,
    where: str = "",
    saga: bool = False,
) -> Any:
    """Register *target* (a handler) in *registry*, or return a decorator for a type or None."""
    where = where or f"@registry.{kind.value}"
    for mw in middleware:
        check_middleware(mw)
    if target is None or isinstance(target, type):

        def decorator(handler: F) -> F:
            mt = target if target is not None else message_type_of(handler, kind)
            registry.add(make_entry(kind, mt, handler, middleware, where=where, saga=saga))
            return handler

        return decorator
    if not callable(target):
        raise RegistrationError(
            f"{where} takes a message class or a handler function, got {target!r}; "
            f"write {where} or {where}(TheType)"
        )
    mt = message_type_of(target, kind)
    registry.add(make_entry(kind, mt, target, middleware, where=where, saga=saga))
    return target
