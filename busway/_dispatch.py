"""The engine behind every bus: tables merged from registries, and cached chains.

Sync and async buses differ only in how they call a chain; everything else — merging
registries, checking for clashes, middleware order, caching — happens here, once per
change, under one lock. Dispatch reads ``self._chains`` without a lock: every change
builds new tables and swaps them in whole (copy-on-write).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar, overload

import attrs

from ._chain import (
    Delivery,
    ErrorHook,
    Handler,
    adapt_handler,
    adapt_middleware,
    compose,
    fan_out,
    refuse_async,
)
from ._reactive import saga_handler
from ._registry import (
    CHANGE_LOCK,
    Entry,
    Kind,
    Middleware,
    Registry,
    article,
    check_middleware,
    declared_kind,
    decorate,
    make_entry,
)
from .errors import DuplicateHandlerError, HandlerNotFoundError, RegistrationError

__all__ = ["BusCore", "EventCore", "SingleHandlerCore", "Subscription"]

M = TypeVar("M")
F = TypeVar("F", bound=Callable[..., Any])
#: What a bus's ``use`` and ``middleware=`` take: sync buses, sync middleware; async, both.
MW = TypeVar("MW", bound=Middleware)
#: What dispatch finds for a message type: one chain (commands, queries), or the callables
#: publishing calls in turn (events).
C = TypeVar("C")


@attrs.frozen
class _Tables:
    """Everything a chain is built from, replaced whole on every change."""

    singles: Mapping[type, Entry] = attrs.Factory(dict)
    subscriptions: tuple[Entry, ...] = ()
    middleware: tuple[Middleware, ...] = ()
    scoped: tuple[tuple[Middleware, tuple[type, ...]], ...] = ()


class Subscription:
    """A handle on one event subscription; :meth:`unsubscribe` ends it."""

    __slots__ = ("_entry", "_registry")

    def __init__(self, registry: Registry, entry: Entry) -> None:
        self._registry = registry
        self._entry = entry

    @property
    def event_type(self) -> type:
        """The event class subscribed to (its subclasses are delivered too)."""
        return self._entry.message_type

    @property
    def handler(self) -> Callable[[Any], Any]:
        return self._entry.handler

    @property
    def active(self) -> bool:
        """Whether the handler is still subscribed."""
        return self._entry in self._registry.events()

    def unsubscribe(self) -> None:
        """Stop delivering to the handler; calling it again does nothing."""
        self._registry.remove(self._entry)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.unsubscribe()

    def __repr__(self) -> str:
        state = "active" if self.active else "ended"
        target = self._entry.message_type.__qualname__
        return f"<Subscription {target} -> {self._entry.handler!r} ({state})>"


class BusCore(Generic[MW, C]):
    """State and registration API shared by all six buses."""

    _kind: ClassVar[Kind]
    _is_async: ClassVar[bool] = False

    def __init__(self, *registries: Registry) -> None:
        self._own = Registry()
        self._registries: tuple[Registry, ...] = ()
        self._overrides: Mapping[type, Entry] = {}
        self._tables = _Tables()
        self._chains: dict[type, C] = {}
        with CHANGE_LOCK:
            for registry in (self._own, *registries):
                self._include(registry)

    @property
    def _bus_name(self) -> str:
        return type(self).__name__.removeprefix("Async")

    # -- registration ---------------------------------------------------------------------

    def include(self, registry: Registry) -> None:
        """Serve the handlers of *registry* too, including ones it gets later."""
        if not isinstance(registry, Registry):
            raise RegistrationError(
                f"include() takes a Registry, got {registry!r} of type {type(registry).__name__}"
            )
        with CHANGE_LOCK:
            self._include(registry)

    def _include(self, registry: Registry) -> None:
        if registry in self._registries:
            return
        if not isinstance(registry, Registry):
            raise RegistrationError(
                f"{type(self).__name__}() takes Registry objects, got {registry!r}"
            )
        for entry in self._entries_of(registry):
            self._accept(entry)
        previous = self._registries
        self._registries = (*previous, registry)
        try:
            self._refresh()
        except BaseException:
            self._registries = previous
            raise
        registry.watch(self)

    def use(self, middleware: MW, *, on: type | Iterable[type] | None = None) -> None:
        """Wrap dispatches in *middleware*, or only those of messages of the types in *on*.

        Bus-wide middleware runs outermost, in the order added; then type-scoped middleware;
        then the handler's own.
        """
        check_middleware(middleware)
        if not self._is_async:
            refuse_async(middleware, role="middleware", bus=self._bus_name)
        scope = () if on is None else (on,) if isinstance(on, type) else tuple(on)
        if on is not None and not scope:
            raise RegistrationError(
                "use(..., on=...) got no types, so the middleware would wrap nothing; leave "
                "on= out to wrap every message"
            )
        for tp in scope:
            if not isinstance(tp, type):
                raise RegistrationError(
                    f"use(..., on=...) takes message classes, got {tp!r}; pass a class or a "
                    "tuple of classes"
                )
        with CHANGE_LOCK:
            tables = self._tables
            if scope:
                tables = attrs.evolve(tables, scoped=(*tables.scoped, (middleware, scope)))
            else:
                tables = attrs.evolve(tables, middleware=(*tables.middleware, middleware))
            self._swap(tables)

    def _add(
        self, message_type: object, handler: object, middleware: Iterable[Any], *, where: str
    ) -> Entry:
        entry = make_entry(self._kind, message_type, handler, middleware, where=where)
        self._own.add(entry)  # the bus accepts or refuses it in registry_changed
        return entry

    def _decorate(self, target: Any) -> Any:
        return decorate(self._own, self._kind, target, (), where=f"{type(self).__name__}.handler")

    def _accept(self, entry: Entry) -> None:
        """Refuse an entry this bus cannot serve (wrong kind is caught by the registry)."""
        if not self._is_async:
            refuse_async(entry.handler, role="handler", bus=self._bus_name)
            for mw in entry.middleware:
                refuse_async(mw, role="middleware", bus=self._bus_name)

    def _entries_of(self, registry: Registry) -> Iterable[Entry]:
        if self._kind is Kind.EVENT:
            return registry.events()
        return registry.singles(self._kind).values()

    def registry_changed(self, registry: Registry, added: Entry | None) -> None:
        """Rebuild tables after *registry* changed; raise to make it undo the change."""
        if added is not None and added.kind is self._kind:
            self._accept(added)
        self._refresh()

    def _refresh(self) -> None:
        if self._kind is Kind.EVENT:
            subs = sorted((e for r in self._registries for e in r.events()), key=lambda e: e.seq)
            self._swap(attrs.evolve(self._tables, subscriptions=tuple(subs)))
            return
        merged: dict[type, Entry] = {}
        for registry in self._registries:
            table = registry.singles(self._kind)
            clash = merged.keys() & table.keys()
            if clash:
                tp = next(iter(clash))
                older, newer = sorted((merged[tp], table[tp]), key=lambda e: e.seq)
                raise DuplicateHandlerError(tp, older.handler, newer.handler)
            merged.update(table)
        merged.update(self._overrides)
        self._swap(attrs.evolve(self._tables, singles=merged))

    def _swap(self, tables: _Tables) -> None:
        # Tables first, cache last: a dispatch that sees the new (empty) cache sees the new
        # tables too, and a chain built from old tables lands only in the discarded cache.
        self._tables = tables
        self._chains = {}

    @contextlib.contextmanager
    def _override_entry(self, message_type: type, handler: Handler) -> Iterator[None]:
        entry = make_entry(self._kind, message_type, handler, (), where="override")
        self._accept(entry)
        with CHANGE_LOCK:
            previous = self._overrides
            self._overrides = {**previous, message_type: entry}
            self._refresh()
        try:
            yield
        finally:
            with CHANGE_LOCK:
                self._overrides = previous
                self._refresh()

    # -- chains ---------------------------------------------------------------------------

    def _chain_for(self, message_type: type) -> C:
        """Build, cache and return the chain for *message_type* (first dispatch only)."""
        chains = self._chains  # read before the tables: see _swap
        tables = self._tables
        layers = [
            *tables.middleware,
            *(mw for mw, scope in tables.scoped if issubclass(message_type, scope)),
        ]
        chain = self._build(message_type, tables, layers)
        chains[message_type] = chain
        return chain

    def _build(self, message_type: type, tables: _Tables, layers: list[Middleware]) -> C:
        raise NotImplementedError

    def _misplaced(self, message_type: type) -> str:
        """Advice for a message sent to the wrong kind of bus, else nothing."""
        kind = declared_kind(message_type)
        if kind is None or kind is self._kind:
            return ""
        bus = f"{'Async' if self._is_async else ''}{kind.value.capitalize()}Bus"
        return f"{message_type.__name__} is {article(kind)}: send it to {bus}"

    def _wrap(self, layers: Sequence[Middleware], entry: Entry) -> Handler:
        return compose(self._adapted(layers), self._handler_of(entry))

    def _handler_of(self, entry: Entry) -> Handler:
        return adapt_handler(entry, is_async=self._is_async)

    def _adapted(self, layers: Iterable[Middleware]) -> list[Middleware]:
        return [adapt_middleware(mw, is_async=self._is_async) for mw in layers]

    def _concurrent(self) -> bool:
        return False


class SingleHandlerCore(BusCore[MW, Handler]):
    """What command and query buses add: exactly one handler per type, and overrides."""

    def _build(self, message_type: type, tables: _Tables, layers: list[Middleware]) -> Handler:
        entry = tables.singles.get(message_type)
        if entry is None:
            raise HandlerNotFoundError(
                message_type,
                tables.singles,
                kind=self._kind.value,
                hint=self._misplaced(message_type),
            ) from None  # not "during handling of KeyError": the cache miss is no error
        return self._wrap([*layers, *entry.middleware], entry)

    def registered(self) -> Mapping[type, Callable[..., Any]]:
        """Return each handled type with its handler (overrides included)."""
        return {tp: e.handler for tp, e in self._tables.singles.items()}

    def handles(self, message_type: type) -> bool:
        """Whether a message of exactly *message_type* has a handler."""
        return message_type in self._tables.singles

    def register(
        self,
        message_type: type[M],
        handler: Callable[[M], Any],
        *,
        middleware: Sequence[MW] = (),
    ) -> None:
        """Make *handler* the handler of *message_type*, wrapped in its own *middleware*."""
        self._add(message_type, handler, middleware, where=f"{type(self).__name__}.register")

    @overload
    def handler(self, message_type: type[Any], /) -> Callable[[F], F]: ...
    @overload
    def handler(self, handler: F, /) -> F: ...
    def handler(self, target: Any = None, /) -> Any:
        """Register the decorated function, bare (type from its annotation) or given a type."""
        return self._decorate(target)

    @contextlib.contextmanager
    def override(self, message_type: type[M], handler: Callable[[M], Any]) -> Iterator[None]:
        """Swap the handler of *message_type* inside the block; restore it after, also on error.

        The stand-in runs inside the bus's middleware, but without the replaced handler's own.
        """
        with self._override_entry(message_type, handler):
            yield


class EventCore(BusCore[MW, Delivery]):
    """What event buses add: subscriptions, and an error policy."""

    _kind = Kind.EVENT

    def __init__(
        self,
        *registries: Registry,
        on_error: ErrorHook | None = None,
        commands: SingleHandlerCore[Any] | None = None,
    ) -> None:
        if commands is not None and (
            not isinstance(commands, SingleHandlerCore)
            or commands._kind is not Kind.COMMAND
            or commands._is_async is not self._is_async
        ):
            want = f"{'Async' if self._is_async else ''}CommandBus"
            raise RegistrationError(
                f"{type(self).__name__}(commands=...) takes the {want} that sagas send their "
                f"commands to, got {commands!r}"
            )
        self._commands = commands
        if on_error is not None and not callable(on_error):
            raise RegistrationError(
                f"on_error must be callable as fn(error, event, handler), got {on_error!r}"
            )
        if on_error is not None and not self._is_async:
            refuse_async(on_error, role="error hook", bus=type(self).__name__)
        self._on_error = on_error
        super().__init__(*registries)

    def _build(self, message_type: type, tables: _Tables, layers: list[Middleware]) -> Delivery:
        return fan_out(
            [
                (self._wrap(e.middleware, e), e.handler)
                for e in tables.subscriptions
                if issubclass(message_type, e.message_type)
            ],
            self._on_error,
            self._adapted(layers),
            is_async=self._is_async,
            concurrent=self._concurrent(),
        )

    def _accept(self, entry: Entry) -> None:
        super()._accept(entry)
        if entry.saga and self._commands is None:
            name = type(self).__name__
            raise RegistrationError(
                f"saga {entry.handler.__qualname__} sends commands, but this {name} has no "
                f"command bus; build it as {name}(registry, commands=command_bus)"
            )

    def _handler_of(self, entry: Entry) -> Handler:
        if entry.saga:
            return saga_handler(entry.handler, self._commands, is_async=self._is_async)
        return super()._handler_of(entry)

    def subscribe(
        self,
        event_type: type[M],
        handler: Callable[[M], Any],
        *,
        middleware: Sequence[MW] = (),
    ) -> Subscription:
        """Call *handler* for every published *event_type*, subclasses included."""
        entry = self._add(event_type, handler, middleware, where=f"{type(self).__name__}.subscribe")
        return Subscription(self._own, entry)

    @overload
    def handler(self, event_type: type[Any], /) -> Callable[[F], F]: ...
    @overload
    def handler(self, handler: F, /) -> F: ...
    def handler(self, target: Any = None, /) -> Any:
        """Subscribe the decorated function, bare (type from its annotation) or given a type."""
        return self._decorate(target)

    def registered(self) -> Mapping[type, tuple[Callable[..., Any], ...]]:
        """Return each subscribed type with its handlers, in subscription order."""
        table: dict[type, tuple[Callable[..., Any], ...]] = {}
        for e in self._tables.subscriptions:
            table[e.message_type] = (*table.get(e.message_type, ()), e.handler)
        return table

    def handlers_for(self, event_type: type) -> tuple[Callable[..., Any], ...]:
        """Return the handlers an event of *event_type* is delivered to, in order."""
        return tuple(
            e.handler for e in self._tables.subscriptions if issubclass(event_type, e.message_type)
        )
