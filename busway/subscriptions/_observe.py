"""What a runner tells an observer of its batches: tracing, metrics, a log of progress."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

from ..eventstore import RecordedEvent

__all__ = ["BatchObserver"]


@runtime_checkable
class BatchObserver(Protocol):
    """Sees each batch a subscription handles; ``busway.otel.batches()`` makes spans of them.

    A runner given one enters ``batch(...)`` around the handlers and the checkpoint's commit
    of every batch, on the thread that runs them, so what the handlers do happens inside the
    block. Without one, a runner does nothing of the kind.
    """

    def batch(
        self, subscription: str, key: str, events: Sequence[RecordedEvent]
    ) -> AbstractContextManager[object]:
        """Return the block to handle *events* in; *key* names the partition's checkpoint."""
        ...

    def failed(self, error: Exception) -> None:
        """Take note, inside the batch's block, that a handler failed with *error*."""
        ...
