"""Every error busline raises, under one root.

::

    BuslineError
    ├── RegistrationError (TypeError)        a handler, type or middleware cannot be registered
    │   └── DuplicateHandlerError            a second handler for a command or query type
    ├── HandlerNotFoundError (LookupError)   nobody handles the dispatched message
    ├── ValidationError (ValueError)         the validation middleware rejected a message
    ├── DispatchTimeoutError (TimeoutError)  the timeout middleware gave up on a dispatch
    └── EventStoreError                      anything the event store refuses
        ├── ConcurrencyError                 the stream is not at the expected version
        ├── DuplicateEventError              an event id is already stored elsewhere
        ├── SerializationError               an event cannot be encoded or decoded
        │   └── UnknownEventTypeError        a type name with no registered class
        └── StoreFormatError                 a database that is not (this version of) a store

Errors carry what they are about as attributes (``exc.message_type``, ``exc.expected``, ...),
and their messages say what to do. Exceptions raised by handlers are never wrapped.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "BuslineError",
    "ConcurrencyError",
    "DispatchTimeoutError",
    "DuplicateEventError",
    "DuplicateHandlerError",
    "EventStoreError",
    "HandlerNotFoundError",
    "RegistrationError",
    "SerializationError",
    "StoreFormatError",
    "UnknownEventTypeError",
    "ValidationError",
]


def _name(tp: type) -> str:
    return getattr(tp, "__qualname__", repr(tp))


class BuslineError(Exception):
    """Base class of every error busline raises."""


class RegistrationError(BuslineError, TypeError):
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


class HandlerNotFoundError(BuslineError, LookupError):
    """No handler is registered for the dispatched message's type."""

    def __init__(self, message_type: type, known: Iterable[type], *, kind: str = "command") -> None:
        self.message_type = message_type
        self.known = tuple(known)
        names = sorted(_name(t) for t in self.known)
        close = difflib.get_close_matches(_name(message_type), names, n=3, cutoff=0.6)
        if close:
            listed = f"did you mean {', '.join(close)}? ({len(names)} registered)"
        elif len(names) <= 10:
            listed = f"registered: {', '.join(names) or 'none'}"
        else:
            listed = f"registered: {', '.join(names[:10])}, ... ({len(names)} in all)"
        super().__init__(
            f"no handler for {_name(message_type)} ({listed}); register one with "
            f"@registry.{kind} or bus.register({message_type.__name__}, fn)"
        )


class ValidationError(BuslineError, ValueError):
    """A message failed validation before reaching its handler."""

    def __init__(self, message: object, problems: Iterable[str]) -> None:
        self.message = message
        self.problems = tuple(problems)
        super().__init__(
            f"{_name(type(message))} is invalid: {'; '.join(self.problems) or 'rejected'}"
        )


class DispatchTimeoutError(BuslineError, TimeoutError):
    """A dispatch did not finish within the timeout middleware's limit."""

    def __init__(self, message: object, seconds: float) -> None:
        self.message = message
        self.seconds = seconds
        super().__init__(
            f"{_name(type(message))} was not handled within {seconds:g}s; the handler was "
            "cancelled. Raise the limit given to timeout() or make the handler faster"
        )


class EventStoreError(BuslineError):
    """The event store refused an operation."""


class ConcurrencyError(EventStoreError):
    """A stream was not at the version the writer expected; nothing was written."""

    def __init__(self, stream_id: str, expected: object, actual: int) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        super().__init__(
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
    """An event or its metadata cannot be encoded, or stored data cannot be decoded."""


class UnknownEventTypeError(SerializationError):
    """A stored or appended type has no class registered in the EventTypes."""


class StoreFormatError(EventStoreError):
    """A database is not a busline event store, or was written by an unknown version."""
