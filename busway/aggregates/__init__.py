"""Event-sourced aggregates: state rebuilt from events, saved under optimistic concurrency.

An :class:`Aggregate` records events and applies them through its ``@when`` methods; a
:class:`Repository` loads it from an event store by id and saves its new events, expecting
the version it was loaded at. Snapshots spare long streams a full replay.
"""

from .._when import when
from ..errors import (
    AggregateExistsError,
    AggregateNotFoundError,
    ApplierNotFoundError,
    ConcurrencyError,
)
from ._aggregate import Aggregate
from ._repository import AsyncRepository, Repository
from ._snapshots import InMemorySnapshotStore, Snapshot, SnapshotStore, SQLiteSnapshotStore

__all__ = [
    "Aggregate",
    "AggregateExistsError",
    "AggregateNotFoundError",
    "ApplierNotFoundError",
    "AsyncRepository",
    "ConcurrencyError",
    "InMemorySnapshotStore",
    "Repository",
    "SQLiteSnapshotStore",
    "Snapshot",
    "SnapshotStore",
    "when",
]
