"""Streams of events, stored durably and read back in order.

An :class:`EventStore` appends events to streams (one per aggregate, say) under optimistic
concurrency, and reads them back by stream or in one global order. ``InMemoryEventStore``
serves tests, ``SQLiteEventStore`` keeps data across restarts, and both have async twins.
``subscribe()`` follows a store live: its history, then each new event as it commits.
Events become JSON through :class:`EventTypes`, which maps stable names to classes.
"""

from ..errors import (
    ConcurrencyError,
    ConnectionLostError,
    DuplicateEventError,
    EventStoreError,
    InvalidArgumentError,
    SerializationError,
    StoreClosedError,
    StoreFormatError,
    StoreLockedError,
    StoreUnavailableError,
    UnknownEventTypeError,
)
from ._async import AsyncEventStoreAdapter, AsyncInMemoryEventStore, AsyncSQLiteEventStore
from ._converter import make_default_converter
from ._live import AsyncLiveEvents, LiveEvents
from ._memory import InMemoryEventStore
from ._protocol import AsyncEventStore, EventStore
from ._serialization import CattrsSerializer, EventTypes, RawEvent, Serializer, Upcaster
from ._sqlite import SCHEMA_VERSION, SQLiteEventStore, Synchronous
from ._types import ANY, NO_STREAM, STREAM_EXISTS, ExpectedVersion, NewEvent, RecordedEvent

__all__ = [
    "ANY",
    "NO_STREAM",
    "SCHEMA_VERSION",
    "STREAM_EXISTS",
    "AsyncEventStore",
    "AsyncEventStoreAdapter",
    "AsyncInMemoryEventStore",
    "AsyncLiveEvents",
    "AsyncSQLiteEventStore",
    "CattrsSerializer",
    "ConcurrencyError",
    "ConnectionLostError",
    "DuplicateEventError",
    "EventStore",
    "EventStoreError",
    "EventTypes",
    "ExpectedVersion",
    "InMemoryEventStore",
    "InvalidArgumentError",
    "LiveEvents",
    "NewEvent",
    "RawEvent",
    "RecordedEvent",
    "SQLiteEventStore",
    "SerializationError",
    "Serializer",
    "StoreClosedError",
    "StoreFormatError",
    "StoreLockedError",
    "StoreUnavailableError",
    "Synchronous",
    "UnknownEventTypeError",
    "Upcaster",
    "make_default_converter",
]
