"""Typed, in-process command, query and event buses, with an event store to match."""

from ._async_buses import AsyncCommandBus, AsyncEventBus, AsyncQueryBus
from ._buses import CommandBus, EventBus, QueryBus
from ._dispatch import Subscription
from ._messages import Command, Event, Query
from ._registry import AsyncMiddleware, Middleware, Registry
from .context import MessageContext
from .errors import (
    AggregateExistsError,
    AggregateNotFoundError,
    ApplierNotFoundError,
    BuswayError,
    CheckpointMovedError,
    ConcurrencyError,
    ConnectionLostError,
    DispatchTimeoutError,
    DuplicateEventError,
    DuplicateHandlerError,
    EventStoreError,
    HandlerNotFoundError,
    InvalidArgumentError,
    LeaseLostError,
    ProjectionError,
    ProjectionTimeoutError,
    RegistrationError,
    SagaConcurrencyError,
    SagaDefinitionError,
    SagaError,
    SagaRecordError,
    SerializationError,
    StoreClosedError,
    StoreFormatError,
    StoreLockedError,
    StoreUnavailableError,
    SubscriptionError,
    UnknownEventTypeError,
    ValidationError,
)

__all__ = [
    "AggregateExistsError",
    "AggregateNotFoundError",
    "ApplierNotFoundError",
    "AsyncCommandBus",
    "AsyncEventBus",
    "AsyncMiddleware",
    "AsyncQueryBus",
    "BuswayError",
    "CheckpointMovedError",
    "Command",
    "CommandBus",
    "ConcurrencyError",
    "ConnectionLostError",
    "DispatchTimeoutError",
    "DuplicateEventError",
    "DuplicateHandlerError",
    "Event",
    "EventBus",
    "EventStoreError",
    "HandlerNotFoundError",
    "InvalidArgumentError",
    "LeaseLostError",
    "MessageContext",
    "Middleware",
    "ProjectionError",
    "ProjectionTimeoutError",
    "Query",
    "QueryBus",
    "RegistrationError",
    "Registry",
    "SagaConcurrencyError",
    "SagaDefinitionError",
    "SagaError",
    "SagaRecordError",
    "SerializationError",
    "StoreClosedError",
    "StoreFormatError",
    "StoreLockedError",
    "StoreUnavailableError",
    "Subscription",
    "SubscriptionError",
    "UnknownEventTypeError",
    "ValidationError",
]


def __getattr__(name: str) -> str:
    # Read lazily: importlib.metadata costs more than the rest of `import busway`.
    if name == "__version__":
        from importlib.metadata import version

        return version("busway")
    raise AttributeError(f"module 'busway' has no attribute {name!r}")
