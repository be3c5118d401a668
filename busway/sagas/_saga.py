"""Stateful sagas: the :class:`Saga` base class, and the decorators that route to its methods.

A saga class is an attrs class (or a dataclass) whose fields are its state. Its methods are
plain state transitions: they read the message, change fields, and ask for effects through
``self.send()``, ``self.schedule()``, ``self.associate_with()`` or ``self.end()``. Those
calls only record the request on the current :class:`Run`; the manager stores the new state
and only then carries the requests out.
"""

from __future__ import annotations

import dataclasses
import inspect
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final, Literal, TypeVar, cast

import attrs

from .._time import aware, duration, later
from ..errors import InvalidArgumentError, SagaDefinitionError, SagaError
from ._store import Deadline, StoredMessage

__all__ = [
    "Route",
    "Run",
    "Saga",
    "SagaSpec",
    "association_value",
    "compensates",
    "handles",
    "on_deadline",
    "starts",
]

F = TypeVar("F", bound=Callable[..., Any])
Role = Literal["starts", "handles", "deadline", "compensates"]

_MARK: Final = "__busway_saga_routes__"


@attrs.frozen
class Route:
    """What a decorated method handles: its role, the message class, and the key, if any."""

    role: Role
    message_type: type
    key: str | None = None


def _mark(role: Role, message_type: object, key: str | None, where: str) -> Callable[[F], F]:
    if not isinstance(message_type, type):
        raise SagaDefinitionError(
            message_type, f"cannot be routed by {where}: it takes a class, e.g. {where}(Shipped)"
        )
    if key is not None and (not isinstance(key, str) or not key.isidentifier()):
        raise SagaDefinitionError(
            message_type,
            f"has no attribute named {key!r}: {where}(..., key=...) takes the name of an "
            "attribute of the event, e.g. key='order_id'",
        )
    route = Route(role, message_type, key)

    def decorate(fn: F) -> F:
        if not callable(fn):
            raise SagaDefinitionError(fn, f"cannot be decorated with {where}: it is not callable")
        setattr(fn, _MARK, (*getattr(fn, _MARK, ()), route))
        return fn

    return decorate


def starts(event_type: type, *, key: str) -> Callable[[F], F]:
    """Start a new saga with the decorated method when an *event_type* is handled.

    The new saga is associated with ``("<key>", event.<key>)``. If a live saga of this class
    is already associated with that value, the event is a duplicate start and is ignored.
    """
    return _mark("starts", event_type, key, "@starts")


def handles(event_type: type, *, key: str) -> Callable[[F], F]:
    """Call the decorated method of every live saga associated with ``(key, event.<key>)``."""
    return _mark("handles", event_type, key, "@handles")


def on_deadline(message_type: type) -> Callable[[F], F]:
    """Call the decorated method when a deadline scheduled with a *message_type* is due."""
    return _mark("deadline", message_type, None, "@on_deadline")


def compensates(command_type: type) -> Callable[[F], F]:
    """Call the decorated method as ``method(command, error)`` when a *command_type* fails.

    The saga may then issue compensating commands, schedule, or end. Subclasses of the
    command type are covered too; the nearest declared class wins.
    """
    return _mark("compensates", command_type, None, "@compensates")


def association_value(value: object, argument: str = "value") -> str:
    """Return an association value as stored: text, so ``1`` and ``"1"`` are the same value.

    Anything but a str, an int or a UUID raises InvalidArgumentError naming *argument*.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, int | uuid.UUID) and not isinstance(value, bool):
        return str(value)
    raise InvalidArgumentError(
        argument,
        value,
        "an association value: a str, an int or a UUID (associate with an object's id, "
        "not the object)",
    )


def association_key(key: object) -> str:
    """Return *key* if it can name an association, else raise InvalidArgumentError."""
    if not isinstance(key, str) or not key:
        raise InvalidArgumentError("key", key, "a non-empty str, such as 'order_id'")
    return key


class Run:
    """What one call of a saga method asked for; the manager applies it after the call."""

    def __init__(
        self,
        saga_id: str,
        *,
        now: datetime,
        associations: frozenset[tuple[str, str]],
        deadlines: tuple[Deadline, ...],
        outbox: tuple[StoredMessage, ...],
        ended: bool,
        encode: Callable[[object], StoredMessage],
        deadline_name: Callable[[type], str | None],
    ) -> None:
        self.saga_id = saga_id
        self.now = now
        self.associations = set(associations)
        self.deadlines = list(deadlines)
        self.outbox = list(outbox)
        self.ended = ended
        self._encode = encode
        self._deadline_name = deadline_name

    def call(self, saga: Saga, method: Callable[..., object], args: tuple[object, ...]) -> None:
        """Call *method* on *saga*, whose requests (send, schedule, end...) come to this run."""
        object.__setattr__(saga, "_busway_run", self)
        try:
            method(saga, *args)
        finally:
            object.__setattr__(saga, "_busway_run", None)

    def send(self, command: object) -> None:
        self.outbox.append(self._encode(command))

    def schedule(self, when: datetime | timedelta | float, message: object) -> str:
        if self._deadline_name(type(message)) is None:
            raise SagaError(
                f"cannot schedule {type(message).__qualname__}: the saga has no "
                f"@on_deadline({type(message).__name__}) method to receive it; add one"
            )
        due = (
            aware(when, "when")
            if isinstance(when, datetime)
            else later(self.now, duration(when, "when"), "when", when)
        )
        stored = self._encode(message)
        self.deadlines.append(Deadline(due, stored))
        return stored.id

    def cancel(self, deadline: str | type) -> None:
        if isinstance(deadline, type):
            name = self._deadline_name(deadline)
            self.deadlines = [d for d in self.deadlines if d.message.type != name]
        elif isinstance(deadline, str):
            self.deadlines = [d for d in self.deadlines if d.id != deadline]
        else:
            raise InvalidArgumentError(
                "deadline", deadline, "the id schedule() returned, or a deadline message class"
            )


class Saga:
    """Base class of stateful sagas (process managers).

    Subclass it as an attrs class (``@attrs.define``) or a dataclass whose fields, all with
    defaults, are the saga's state; decorate methods with :func:`starts`, :func:`handles`,
    :func:`on_deadline` and :func:`compensates`. Inside those methods, the methods below
    ask the manager for effects, which it carries out once the new state is stored.
    """

    __slots__ = ("_busway_run",)

    def _run(self, what: str) -> Run:
        run: Run | None = getattr(self, "_busway_run", None)
        if run is None:
            raise SagaError(
                f"{type(self).__qualname__}.{what}() works only inside a saga method that a "
                "SagaManager is running; let the manager call the method"
            )
        return run

    @property
    def saga_id(self) -> str:
        """The id the manager gave this saga when it started (inside a method only)."""
        return self._run("saga_id").saga_id

    def send(self, command: object) -> None:
        """Issue *command* once the saga's new state is stored; a failure reaches @compensates."""
        self._run("send").send(command)

    def associate_with(self, key: str, value: str | int | uuid.UUID) -> None:
        """Route events whose *key* attribute equals *value* to this saga too."""
        run = self._run("associate_with")
        run.associations.add((association_key(key), association_value(value)))

    def dissociate_from(self, key: str, value: str | int | uuid.UUID) -> None:
        """Stop routing events with this *key* and *value* to this saga."""
        run = self._run("dissociate_from")
        run.associations.discard((association_key(key), association_value(value)))

    def schedule(self, when: datetime | timedelta | float, message: object) -> str:
        """Deliver *message* to its @on_deadline method at *when*; return the deadline's id.

        *when* is an aware datetime, or a delay (a timedelta or seconds) from now on the
        manager's clock.
        """
        return self._run("schedule").schedule(when, message)

    def cancel_deadline(self, deadline: str | type) -> None:
        """Cancel the deadline with this id, or every pending deadline of this message class."""
        self._run("cancel_deadline").cancel(deadline)

    def end(self) -> None:
        """End the saga: it gets no more events or deadlines; its issued commands still go."""
        self._run("end").ended = True


@attrs.frozen
class SagaSpec:
    """A saga class, read once: which method handles which message."""

    cls: type[Saga]
    events: Mapping[type, tuple[Route, Callable[..., Any]]]
    deadlines: Mapping[type, Callable[..., Any]]
    compensations: Mapping[type, Callable[..., Any]]

    @classmethod
    def of(cls, saga_class: object) -> SagaSpec:
        """Read and check *saga_class*'s decorated methods, or raise SagaDefinitionError."""
        if not isinstance(saga_class, type) or not issubclass(saga_class, Saga):
            raise SagaDefinitionError(saga_class, "is not a saga class: subclass busway.sagas.Saga")
        if not (attrs.has(saga_class) or dataclasses.is_dataclass(saga_class)):
            raise SagaDefinitionError(
                saga_class,
                "keeps its state in fields that cannot be stored: make it an attrs class "
                "(@attrs.define) or a dataclass",
            )
        try:
            saga_class()
        except TypeError as exc:
            raise SagaDefinitionError(
                saga_class,
                f"cannot be created without arguments ({exc}); give every field a default, "
                "since the manager creates the saga before its @starts method runs",
            ) from exc
        events: dict[type, tuple[Route, Callable[..., Any]]] = {}
        tables: dict[str, dict[type, Callable[..., Any]]] = {"deadline": {}, "compensates": {}}
        # Definition order, base classes first, so that routes list as the class reads.
        names = dict.fromkeys(n for klass in reversed(saga_class.__mro__) for n in vars(klass))
        for name in names:
            fn = inspect.getattr_static(saga_class, name, None)
            for route in getattr(fn, _MARK, ()):
                assert fn is not None
                table: Mapping[type, object] = (
                    events if route.role in ("starts", "handles") else tables[route.role]
                )
                if route.message_type in table:
                    raise SagaDefinitionError(
                        saga_class,
                        f"has two methods for {route.message_type.__qualname__}; a saga "
                        "handles each message class in one method",
                    )
                if route.key is not None:
                    _check_key(saga_class, route)
                    events[route.message_type] = (route, fn)
                else:
                    tables[route.role][route.message_type] = fn
        if not any(route.role == "starts" for route, _ in events.values()):
            raise SagaDefinitionError(
                saga_class, "has no @starts method, so nothing would ever create one; add one"
            )
        return cls(
            cast("type[Saga]", saga_class), events, tables["deadline"], tables["compensates"]
        )

    def route(self, event_type: type) -> tuple[Route, Callable[..., Any]] | None:
        """Return the route for *event_type*: its own, else its nearest base class's."""
        return _nearest(self.events, event_type)

    def compensation(self, command_type: type) -> Callable[..., Any] | None:
        return _nearest(self.compensations, command_type)

    def deadline(self, message_type: type) -> Callable[..., Any] | None:
        return self.deadlines.get(message_type)

    def event_types(self) -> tuple[type, ...]:
        return tuple(self.events)


V = TypeVar("V")


def _nearest(table: Mapping[type, V], tp: type) -> V | None:
    for base in tp.__mro__:
        found = table.get(base)
        if found is not None:
            return found
    return None


def _check_key(saga_class: type, route: Route) -> None:
    tp = route.message_type
    names: tuple[str, ...] | None = None
    if attrs.has(tp):
        names = tuple(f.name for f in attrs.fields(tp))
    elif dataclasses.is_dataclass(tp):
        names = tuple(f.name for f in dataclasses.fields(tp))
    if names is not None and route.key not in names and not hasattr(tp, str(route.key)):
        raise SagaDefinitionError(
            saga_class,
            f"routes {tp.__qualname__} by key={route.key!r}, but {tp.__qualname__} has no such "
            f"attribute (it has: {', '.join(names) or 'none'}); name one of its attributes",
        )
