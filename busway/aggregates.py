"""Event-sourced aggregates: state rebuilt from events, saved under optimistic concurrency.

An :class:`Aggregate` records events and applies them through its ``@when`` methods; a
:class:`Repository` loads it from an event store by id and saves its new events, expecting
the version it was loaded at. Snapshots spare long streams a full replay.
"""

from ._aggregates import Aggregate, AsyncRepository, Repository
from ._snapshots import InMemorySnapshotStore, Snapshot, SnapshotStore, SQLiteSnapshotStore
from ._when import when
from .errors import AggregateNotFoundError, ApplierNotFoundError, ConcurrencyError

__all__ = [
    "Aggregate",
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
