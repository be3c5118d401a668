"""Projections: denormalized read models that follow the event store.

A :class:`Projection` (or :class:`SQLiteProjection`, or another :class:`WritingProjection`)
names a read model and its ``@when`` handlers; a :class:`ProjectionRunner` (or, under
asyncio, an :class:`AsyncProjectionRunner`) feeds it every event after its checkpoint, in
batches, records how far it got, reports its lag, rebuilds it from zero, and lets a caller
wait until its own write is visible.
"""

from .._when import when
from ..errors import ProjectionError, ProjectionTimeoutError
from ._checkpoints import (
    CheckpointStore,
    CheckpointTransaction,
    InMemoryCheckpointStore,
    SQLiteCheckpointStore,
)
from ._projection import Progress, Projection, SQLiteProjection, WritingProjection
from ._runner import AsyncProjectionRunner, ProjectionRunner

__all__ = [
    "AsyncProjectionRunner",
    "CheckpointStore",
    "CheckpointTransaction",
    "InMemoryCheckpointStore",
    "Progress",
    "Projection",
    "ProjectionError",
    "ProjectionRunner",
    "ProjectionTimeoutError",
    "SQLiteCheckpointStore",
    "SQLiteProjection",
    "WritingProjection",
    "when",
]
