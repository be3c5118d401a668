"""Every error busway raises, under one root.

::

    BuswayError
    ├── RegistrationError (TypeError)        a handler, type or middleware cannot be registered
    │   └── DuplicateHandlerError            a second handler for a command or query type
    ├── InvalidArgumentError (ValueError)    an argument no call could accept: a stream id,
    │                                        version, limit, duration or setting out of range
    │                                        or of the wrong type
    ├── HandlerNotFoundError (LookupError)   nobody handles the dispatched message
    ├── ValidationError (ValueError)         the validation middleware rejected a message
    ├── DispatchTimeoutError (TimeoutError)  the timeout middleware gave up on a dispatch
    ├── AggregateNotFoundError (LookupError) a repository found no events for an aggregate id
    ├── ApplierNotFoundError (LookupError)   an aggregate has no @when method for an event
    ├── ProjectionError                      a projection's handler failed (it stopped there),
    │   │                                    or it cannot do what was asked
    │   └── ProjectionTimeoutError (TimeoutError)
    │                                        wait_for() gave up before the position was reached
    ├── SubscriptionError                    a subscription cannot go on as asked
    │   ├── CheckpointMovedError             another worker moved the checkpoint first
    │   └── LeaseLostError                   another worker took the lease over; this one
    │                                        may not write any more
    └── EventStoreError                      anything the event store refuses
        ├── ConcurrencyError                 the stream is not at the expected version
        │   └── AggregateExistsError         a new aggregate's id is taken
        ├── DuplicateEventError              an event id is already stored elsewhere
        ├── SerializationError               an event cannot be encoded or decoded
        │   └── UnknownEventTypeError (LookupError)
        │                                    a type name or class with no registration
        ├── StoreClosedError                 the store was used after close()
        ├── StoreFormatError                 a database that is not (this version of) a store,
        │                                    or a row in it that no store wrote
        └── StoreUnavailableError            the database refused: a path that is no file, a
            │                                read-only file, a full disk, an I/O error, a
            │                                server that does not answer, ...
            ├── StoreLockedError (TimeoutError)
            │                                other connections kept it locked too long
            └── ConnectionLostError (ConnectionError)
                                             the connection to the server broke during a call;
                                             a write in flight may or may not have committed

    sagas (busway.sagas):
    BuswayError
    ├── SagaError                            a saga cannot be run, driven or stored as asked
    │   ├── SagaDefinitionError (RegistrationError, TypeError)
    │   │                                    a saga class declares something that cannot work
    │   └── SagaRecordError (SerializationError)
    │                                        a stored saga's rows are damaged or were edited
    └── EventStoreError
        ├── ConcurrencyError
        │   └── SagaConcurrencyError         a saga changed since it was loaded
        └── SerializationError               a saga's state or message cannot be decoded
            └── SagaRecordError

Errors carry what they are about as attributes (``exc.message_type``, ``exc.expected``, ...),
and their messages say what to do. Exceptions raised by handlers are never wrapped, except
by a projection runner, which must say where it stopped: its ``ProjectionError`` has the
handler's exception as ``__cause__``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "AggregateExistsError",
    "AggregateNotFoundError",
    "ApplierNotFoundError",
    "BuswayError",
    "CheckpointMovedError",
    "ConcurrencyError",
    "ConnectionLostError",
    "DispatchTimeoutError",
    "DuplicateEventError",
    "DuplicateHandlerError",
    "EventStoreError",
    "HandlerNotFoundError",
    "InvalidArgumentError",
    "LeaseLostError",
    "ProjectionError",
    "ProjectionTimeoutError",
    "RegistrationError",
    "SagaConcurrencyError",
    "SagaDefinitionError",
    "SagaError",
    "SagaRecordError",
    "SerializationError",
    "StoreClosedError",
    "StoreFormatError",
    "StoreLockedError",
    "StoreUnavailableError",
    "SubscriptionError",
    "UnknownEventTypeError",
    "ValidationError",
]


def _name(tp: type) -> str:
    return getattr(tp, "__qualname__", repr(tp))


class BuswayError(Exception):
    """Base class of every error busway raises."""


class RegistrationError(BuswayError, TypeError):
    """A handler, message type or middleware cannot be registered as given."""


class DuplicateHandlerError(RegistrationError):
    """A command or query type would get a second handler."""

    def __init__(self, message_type: type, existing: object, new: object) -> None:
        self.message_type = message_type
        self.existing = existing
        self.new = new
        super().__init__(
            f"{_name(message_type)} already has a handler ({existing!r}); a command or query "
            f"has exactly one handler, so {new!r} cannot be added. Remove one of them, or use "
            f"bus.override({message_type.__name__}, fn) to swap it temporarily in tests"
        )


class InvalidArgumentError(BuswayError, ValueError):
    """An argument that no call could accept, of a wrong value or type; nothing was done.

    A stream id, version, position or limit of a store, a duration, a retry setting: each
    is checked before anything happens, whether it had the wrong type (``True`` as a
    version) or a wrong value (``-1``). ``argument`` names it and ``value`` is what was given.
    A wrong kind of thing to register (a handler that is not callable) is a
    :class:`RegistrationError` instead.
    """

    def __init__(self, argument: str, value: object, requirement: str) -> None:
        self.argument = argument
        self.value = value
        super().__init__(f"{argument} must be {requirement}, not {value!r}; nothing was done")


class HandlerNotFoundError(BuswayError, LookupError):
    """No handler is registered for the dispatched message's type."""

    known: tuple[type, ...]

    def __init__(
        self, message_type: type, known: Iterable[type], *, kind: str = "command", hint: str = ""
    ) -> None:
        self.message_type = message_type
        self.known = tuple(known)
        names = sorted(t.__name__ for t in self.known)
        if len(names) <= 10:
            listed = f"registered: {', '.join(names) or 'none'}"
        else:
            close = difflib.get_close_matches(message_type.__name__, names, n=3, cutoff=0.6)
            shown = close or names[:10]
            listed = (
                f"did you mean {', '.join(close)}? "
                if close
                else f"registered: {', '.join(shown)}, "
            ) + f"({len(names)} registered in all)"
        advice = hint or (
            f"register one with @registry.{kind} or bus.register({message_type.__name__}, fn)"
        )
        super().__init__(f"no handler for {_name(message_type)} ({listed}); {advice}")


class ValidationError(BuswayError, ValueError):
    """A message failed validation before reaching its handler."""

    problems: tuple[str, ...]

    def __init__(self, message: object, problems: Iterable[str]) -> None:
        self.message = message
        self.problems = tuple(problems)
        super().__init__(
            f"{_name(type(message))} is invalid: {'; '.join(self.problems) or 'rejected'}"
        )


class DispatchTimeoutError(BuswayError, TimeoutError):
    """A dispatch did not finish within the timeout middleware's limit."""

    def __init__(self, message: object, seconds: float) -> None:
        self.message = message
        self.seconds = seconds
        super().__init__(
            f"{_name(type(message))} was not handled within {seconds:g}s; the handler was "
            "cancelled. Raise the limit given to timeout() or make the handler faster"
        )


class EventStoreError(BuswayError):
    """The event store refused an operation."""


class ConcurrencyError(EventStoreError):
    """A stream was not at the version the writer expected; nothing was written."""

    def __init__(self, stream_id: str, expected: object, actual: int) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        super().__init__(self._explain(stream_id, expected, actual))

    def _explain(self, stream_id: str, expected: object, actual: int) -> str:
        if expected == 0 and type(expected) is int and actual > 0:
            # A retry of a create cannot succeed: the stream will always be there.
            return (
                f"stream {stream_id!r} already exists (at version {actual}), but the append "
                "expected no stream (NO_STREAM); nothing was written. The id is taken: "
                "create under another id, or load the stream and append after it"
            )
        return (
            f"stream {stream_id!r} is at version {actual}, but the append expected {expected}; "
            "nothing was written. Reload the stream and retry (the retry middleware "
            "can do this: retry(on=(ConcurrencyError,)))"
        )


class DuplicateEventError(EventStoreError):
    """An event id in the batch is already stored at another place; nothing was written."""

    def __init__(self, event_id: object, stream_id: str, detail: str = "") -> None:
        self.event_id = event_id
        self.stream_id = stream_id
        super().__init__(
            f"event id {event_id} appended to stream {stream_id!r} is already stored"
            f"{' ' + detail if detail else ''}; nothing was written. Give each new event a "
            "fresh id, or retry the exact same batch to make the append idempotent"
        )


class SerializationError(EventStoreError):
    """An event or its metadata cannot be encoded, or stored data cannot be decoded.

    ``type_name`` and ``position`` (for stored events) or ``field`` (a dotted path into the
    payload) say where, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        type_name: str | None = None,
        position: int | None = None,
        field: str | None = None,
    ) -> None:
        self.type_name = type_name
        self.position = position
        self.field = field
        super().__init__(message)


class UnknownEventTypeError(SerializationError, LookupError):
    """A stored type name or an appended class has no registration in the store's EventTypes."""

    known: tuple[str, ...]

    def __init__(
        self,
        type_name: str,
        known: Iterable[str],
        *,
        position: int | None = None,
        event_class: type | None = None,
    ) -> None:
        self.known = tuple(sorted(known))
        self.event_class = event_class
        listed = ", ".join(self.known) or "none"
        if event_class is not None:
            message = (
                f"{_name(event_class)} is not registered in the store's EventTypes "
                f"(registered: {listed}); nothing was written. Register it with "
                f"EventTypes(..., {event_class.__name__}) or types.add({event_class.__name__})"
            )
        else:
            message = (
                f"the event at position {position} has type {type_name!r}, which is not "
                f"registered in the store's EventTypes (registered: {listed}). Register the "
                f"class that reads it with types.add(cls, name={type_name!r})"
            )
        super().__init__(message, type_name=type_name, position=position)


class StoreClosedError(EventStoreError):
    """The store was used after ``close()``."""

    def __init__(self, store: object, *, holds: str = "events") -> None:
        self.store = store
        super().__init__(f"{store!r} is closed; open a new store to read or write its {holds}")


class StoreFormatError(EventStoreError):
    """A database is not a busway store, holds a value no busway store writes, or is too new.

    Nothing in the database was changed when this is raised.
    """

    def __init__(self, location: str, problem: str, *, kind: str = "an event store") -> None:
        self.location = location
        self.problem = problem
        super().__init__(f"{location} cannot be opened as {kind}: {problem}")


class StoreUnavailableError(EventStoreError):
    """The database refused to open, read or write: the driver's error is the ``__cause__``.

    ``location`` names the file or server (and table), ``problem`` says what the database
    refused and what to do: a path that is a folder or in a missing one, a read-only file, a
    full disk, a file the operating system cannot read or write, a server that does not
    answer or turns the login down.
    """

    def __init__(self, location: str, problem: str) -> None:
        self.location = location
        self.problem = problem
        super().__init__(f"{location}: {problem}")


class StoreLockedError(StoreUnavailableError, TimeoutError):
    """Other connections kept the database locked, so nothing was done; try again later.

    Either they held it for longer than the ``timeout`` (in seconds; None: the busy timeout
    of the connection given to the store), or they wrote while the connection given was in
    a transaction that had already read, which SQLite will not let wait (the two could wait
    for each other forever).
    """

    def __init__(
        self, location: str, timeout: float | None, *, in_transaction: bool = False
    ) -> None:
        self.timeout = timeout
        if in_transaction:
            problem = (
                "database is locked: another connection is writing, and SQLite will not wait "
                "for it inside the given connection's transaction, which has already read; "
                "nothing was done. Roll that transaction back and retry it, or begin it with "
                "BEGIN IMMEDIATE"
            )
        elif timeout is None:
            problem = (
                "database is locked: other connections held it for longer than the busy "
                "timeout of the connection given; nothing was done. Retry, give that "
                "connection a longer one (sqlite3.connect(..., timeout=)), or keep other "
                "connections' transactions short"
            )
        else:
            problem = (
                "database is locked: other connections held it for longer than the store's "
                f"timeout of {timeout:g} s; nothing was done. Retry, give the store a longer "
                "timeout=, or keep other connections' transactions short"
            )
        super().__init__(location, problem)


class ConnectionLostError(StoreUnavailableError, ConnectionError):
    """The connection to the database server broke while a call was using it.

    ``committed`` is False when the server cannot have kept anything (the connection broke
    before the commit was sent) and None when it is unknown (it broke during the commit).
    Either way, retrying the same append with the same ``NewEvent`` ids is safe: if the
    first try committed, the retry writes nothing and returns the same version.
    """

    def __init__(self, location: str, problem: str, *, committed: bool | None) -> None:
        self.committed = committed
        outcome = (
            "nothing was written"
            if committed is False
            else "the write may or may not have committed"
        )
        super().__init__(
            location,
            f"{problem}: the connection to the server broke; {outcome}. Retry once the server "
            "answers: an append retried with the same NewEvent ids writes nothing twice",
        )


# -- aggregates and projections --------------------------------------------------------------


class AggregateNotFoundError(BuswayError, LookupError):
    """A repository found no events for the aggregate id it was asked to load."""

    def __init__(self, aggregate_type: type, aggregate_id: str, stream_id: str) -> None:
        self.aggregate_type = aggregate_type
        self.aggregate_id = aggregate_id
        self.stream_id = stream_id
        super().__init__(
            f"no {_name(aggregate_type)} with id {aggregate_id!r}: stream {stream_id!r} has no "
            "events. Check the id, or create the aggregate (a classmethod that records its "
            "first event) and save it with repository.save()"
        )


class AggregateExistsError(ConcurrencyError):
    """A new aggregate was saved under an id another one already has; nothing was written.

    It stays a ``ConcurrencyError``: ``retry(on=(ConcurrencyError,))`` runs the command
    again, which helps one that loads the aggregate when it exists (get or create), and
    fails the same way for one that only creates.
    """

    def __init__(
        self, aggregate_type: type, aggregate_id: str, stream_id: str, actual: int
    ) -> None:
        self.aggregate_type = aggregate_type
        self.aggregate_id = aggregate_id
        super().__init__(stream_id, 0, actual)

    def _explain(self, stream_id: str, expected: object, actual: int) -> str:
        name = _name(self.aggregate_type)
        return (
            f"{name} id {self.aggregate_id!r} is taken: stream {stream_id!r} already holds "
            f"{actual} events, so the new {name} was not saved (nothing was written). Give "
            f"it another id, or load the one there with repository.get({self.aggregate_id!r})"
        )


class ApplierNotFoundError(BuswayError, LookupError):
    """An aggregate recorded or replayed an event that none of its ``@when`` methods applies."""

    known: tuple[type, ...]

    def __init__(self, aggregate_type: type, event_type: type, known: Iterable[type]) -> None:
        self.aggregate_type = aggregate_type
        self.event_type = event_type
        self.known = tuple(known)
        names = ", ".join(sorted(t.__name__ for t in self.known)) or "none"
        super().__init__(
            f"{_name(aggregate_type)} has no @when method for {_name(event_type)} (it applies: "
            f"{names}); add one: @when({event_type.__name__}) def _(self, event) -> None: ..."
        )


class ProjectionError(BuswayError):
    """A projection stopped: a handler failed on an event, or it was asked what it cannot do.

    When a handler failed, ``position`` and ``recorded`` say on which event; the checkpoint
    stays just before it, so the next run starts with that event again and skips nothing.
    The handler's exception is the ``__cause__``. ``problem`` is the message without the
    projection's name.
    """

    def __init__(
        self,
        projection: str,
        problem: str,
        *,
        position: int | None = None,
        recorded: object = None,
    ) -> None:
        self.projection = projection
        self.problem = problem
        self.position = position
        self.recorded = recorded
        super().__init__(f"projection {projection!r} {problem}")


class ProjectionTimeoutError(ProjectionError, TimeoutError):
    """``wait_for`` gave up before the projection reached the position."""

    def __init__(self, projection: str, wanted: int, reached: int, seconds: float) -> None:
        self.wanted = wanted
        self.reached = reached
        self.seconds = seconds
        super().__init__(
            projection,
            f"did not reach position {wanted} within {seconds:g}s (it is at {reached}); "
            "make sure its runner is running (runner.start()) or wait longer",
            position=reached,
        )


# -- subscriptions --------------------------------------------------------------------------


class SubscriptionError(BuswayError):
    """A subscription (a projection, a saga manager following the store) cannot go on."""


class CheckpointMovedError(SubscriptionError):
    """A checkpoint was not where the writer expected it: another worker moved it first.

    Nothing of the write was kept. Runners read the checkpoint again and go on from there.
    """

    def __init__(self, name: str, expected: int, actual: int) -> None:
        self.name = name
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"checkpoint {name!r} is at position {actual}, not {expected} as the write "
            "expected: another worker moved it; nothing was written. Read the checkpoint "
            "again and go on from there"
        )


class LeaseLostError(SubscriptionError):
    """A worker wrote with a lease that another worker has since taken over; nothing was kept.

    ``token`` is the fencing token the write carried, ``current`` the later one the store
    holds for ``name``. The worker must stop: the other one runs the subscription now.
    """

    def __init__(self, name: str, token: int, current: int) -> None:
        self.name = name
        self.token = token
        self.current = current
        super().__init__(
            f"subscription {name!r} was taken over by another worker (its lease's fencing "
            f"token is {current}; this worker's is {token}), so this worker may not write to "
            "it any more and nothing was written. It stands by; if it should hold the "
            "subscription, renew its lease more often than the lease time (lease=)"
        )


# -- sagas ----------------------------------------------------------------------------------


class SagaError(BuswayError):
    """A saga cannot be run, driven or stored as asked."""


class SagaDefinitionError(SagaError, RegistrationError):
    """A saga class declares handlers, keys or state that a saga manager cannot run."""

    def __init__(self, saga_class: object, problem: str) -> None:
        self.saga_class = saga_class
        name = _name(saga_class) if isinstance(saga_class, type) else repr(saga_class)
        super().__init__(f"saga {name} {problem}")


class SagaRecordError(SagaError, SerializationError):
    """A saga's stored rows cannot be read back as they are: damaged, or edited by hand.

    ``saga_id`` is the saga's (as stored), ``location`` the database and table, ``field``
    the column or row that is wrong. Nothing was changed; the stored error, if any, is the
    ``__cause__``.
    """

    def __init__(self, saga_id: object, location: str, field: str, problem: str) -> None:
        self.saga_id = saga_id
        self.location = location
        super().__init__(
            f"saga {saga_id!r} in {location} is damaged: {field} {problem}; nothing was "
            "changed. Restore the database from a backup, or delete the saga's rows (in the "
            "table and in its _associations and _deadlines tables) to forget it",
            field=field,
        )


class SagaConcurrencyError(ConcurrencyError):
    """A saga instance changed since it was loaded, or another started first; nothing was written.

    Saga managers reload and retry by themselves a few times before letting it through.
    ``started`` is the ``(key, value)`` a new saga was to start on, when a live saga of
    its type (``holder``) already held it: another worker handled the same starting event.
    """

    def __init__(
        self,
        saga_id: str,
        expected: int,
        actual: int,
        *,
        started: tuple[str, str] | None = None,
        holder: str | None = None,
    ) -> None:
        self.started = started
        self.holder = holder
        super().__init__(saga_id, expected, actual)
        self.saga_id = saga_id

    def _explain(self, stream_id: str, expected: object, actual: int) -> str:
        if self.started is not None:
            key, value = self.started
            return (
                f"saga {stream_id!r} cannot start on {key}={value!r}: saga {self.holder!r} of "
                "the same type already holds it, started by another worker from the same "
                "event; nothing was written. Find the saga by that association and go on with "
                "it (saga managers do so by themselves)"
            )
        return (
            f"saga {stream_id!r} is at version {actual}, but the write expected version "
            f"{expected}; nothing was written. Several workers keep changing the same saga: "
            "retry (retry(on=(ConcurrencyError,)) does it) or run fewer workers on one store"
        )
