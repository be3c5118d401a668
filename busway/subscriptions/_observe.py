"""What a runner tells an observer of its batches: tracing, metrics, a log of progress."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Protocol, runtime_checkable

from ..errors import RegistrationError
from ..eventstore import RecordedEvent
from ._engine import Applied, Flow

__all__ = ["BatchObserver", "check_observer", "observed"]


@runtime_checkable
class BatchObserver(Protocol):
    """Sees each batch a subscription handles; ``busway.otel.batches()`` makes spans of them.

    A projection runner or saga manager given one enters ``batch(...)`` around the
    handlers and the checkpoint's commit of every batch, in the thread or task that drives
    them, so what the handlers do (on that thread, or on one the block's context is copied
    to) happens inside the block. Without one, a runner does nothing of the kind.
    """

    def batch(
        self, subscription: str, key: str, events: Sequence[RecordedEvent]
    ) -> AbstractContextManager[object]:
        """Return the block to handle *events* in; *key* names the partition's checkpoint."""
        ...

    def failed(self, error: Exception) -> None:
        """Take note, inside the batch's block, that a handler failed with *error*."""
        ...


def check_observer(observer: object) -> BatchObserver | None:
    """Return *observer* if it is None or a BatchObserver; refuse anything else."""
    if observer is not None and not isinstance(observer, BatchObserver):
        raise RegistrationError(
            f"observer= takes a BatchObserver, such as busway.otel.batches(), got {observer!r}"
        )
    return observer


def observed(
    observer: BatchObserver,
    subscription: str,
    key: str,
    events: Sequence[RecordedEvent],
    apply: Flow[Applied],
) -> Flow[Applied]:
    """Run *apply*, the flow that handles a batch, inside *observer*'s block for it.

    Every consumer wraps its batches in this one flow, so that a projection's and a saga's
    are observed alike; a failure the batch ends with is told to the observer in the block.
    """
    with observer.batch(subscription, key, events):
        applied: Applied = yield from apply
        if applied.failure is not None:
            observer.failed(applied.failure)
        return applied
