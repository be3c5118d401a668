"""What subscription stores keep besides a position: checkpoint moves and parked events."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Self, final

import attrs

from ..eventstore import RecordedEvent

__all__ = ["Advance", "ParkedEvent"]


@final
@attrs.frozen
class ParkedEvent:
    """An event a subscription set aside after its handlers kept failing on it.

    Parking moves the checkpoint past the event in the same commit, so the subscription
    goes on; the event stays listed until it is replayed. ``subscription`` is the
    checkpoint's name (with its partition, if split); ``error`` names the last failure.
    """

    subscription: str
    position: int
    stream_id: str
    version: int
    event_id: uuid.UUID
    type: str
    error: str
    attempts: int
    parked_at: datetime

    @classmethod
    def of(
        cls,
        subscription: str,
        recorded: RecordedEvent,
        error: BaseException,
        *,
        attempts: int,
        at: datetime,
    ) -> Self:
        """Describe *recorded*, set aside by *subscription* after *attempts* tries."""
        return cls(
            subscription=subscription,
            position=recorded.position,
            stream_id=recorded.stream_id,
            version=recorded.version,
            event_id=recorded.event_id,
            type=recorded.type,
            error=f"{type(error).__name__}: {error}",
            attempts=attempts,
            parked_at=at,
        )


@final
@attrs.frozen
class Advance:
    """Move checkpoint *name* from *expected* to *position*, with what else commits with it.

    The store refuses the whole commit with :class:`~busway.errors.CheckpointMovedError`
    if the checkpoint is not at *expected*, and with :class:`~busway.errors.LeaseLostError`
    if a lease holder with a later fencing *token* has written to it; otherwise it stores
    *token* as the one to beat. *park* is recorded and the parked event at *unpark* removed
    in the same commit. Token 0 means the writer holds no lease.
    """

    name: str
    expected: int
    position: int
    token: int = 0
    park: ParkedEvent | None = None
    unpark: int | None = None
