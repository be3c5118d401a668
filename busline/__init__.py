"""Typed, in-process command, query and event buses, with an event store to match."""

from .errors import (
    BuslineError,
    ConcurrencyError,
    DispatchTimeoutError,
    DuplicateEventError,
    DuplicateHandlerError,
    EventStoreError,
    HandlerNotFoundError,
    RegistrationError,
    SerializationError,
    StoreFormatError,
    UnknownEventTypeError,
    ValidationError,
)

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
