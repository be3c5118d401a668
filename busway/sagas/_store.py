"""What a saga store keeps, and the protocol every saga store implements.

A store never sees saga objects: the manager hands it records whose state, pending commands
and deadlines are already JSON text, and it keeps them as they are. That keeps backends
small, and the in-memory store round-trips exactly what SQLite would.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, Self, final, runtime_checkable

import attrs

from ..errors import InvalidArgumentError, SagaConcurrencyError
from ..subscriptions import Advance, ParkedEvent

__all__ = ["Deadline", "SagaRecord", "SagaStore", "StoredMessage", "Write"]


@final
@attrs.frozen
class StoredMessage:
    """A command or deadline message as stored: an id, a type name, a schema version, JSON."""

    id: str
    type: str
    schema_version: int
    data: str


@final
@attrs.frozen
class Deadline:
    """A message a saga asked to receive at *due* (aware, UTC)."""

    due: datetime
    message: StoredMessage

    @property
    def id(self) -> str:
        """The id ``schedule()`` returned, which ``cancel_deadline()`` takes."""
        return self.message.id


@final
@attrs.frozen
class SagaRecord:
    """One saga instance as stored.

    ``associations`` are the ``(key, value)`` pairs that route events to it; ``outbox`` holds
    the commands it issued that have not been settled yet, oldest first; ``deadlines`` are
    in the order they were scheduled. An ended saga keeps its record only until its outbox
    is empty; it has no associations and no deadlines.
    """

    saga_id: str
    saga_type: str
    version: int
    schema_version: int
    state: str
    associations: frozenset[tuple[str, str]] = frozenset()
    deadlines: tuple[Deadline, ...] = ()
    outbox: tuple[StoredMessage, ...] = ()
    ended: bool = False

    @property
    def finished(self) -> bool:
        """Whether nothing is left to keep: the saga ended and its outbox is empty."""
        return self.ended and not self.outbox


@final
@attrs.frozen
class Write:
    """Store *record* if its saga is still at *expected_version* (0: it does not exist yet).

    *starts* is the ``(key, value)`` association a new saga starts on: the store refuses
    the write if a live saga of the same type holds it already, so that two workers given
    the same starting event cannot start two sagas for it.
    """

    record: SagaRecord
    expected_version: int
    starts: tuple[str, str] | None = None

    def __attrs_post_init__(self) -> None:
        starts = self.starts
        if starts is None:
            return
        if (
            self.expected_version != 0
            or not isinstance(starts, tuple)
            or len(starts) != 2
            or not all(isinstance(part, str) for part in starts)
        ):
            raise InvalidArgumentError(
                "Write.starts",
                starts,
                "None, or a (key, value) pair of str for a new saga (expected_version 0)",
            )


def refused_start(write: Write, holder: str) -> SagaConcurrencyError:
    """Return the error for *write*, which starts on an association saga *holder* holds."""
    return SagaConcurrencyError(write.record.saga_id, 0, 0, started=write.starts, holder=holder)


@runtime_checkable
class SagaStore(Protocol):
    """Where saga managers keep saga instances, their deadlines and their checkpoints.

    A store is safe to share between threads. Every method may be called from a worker
    thread (async managers do so, to keep I/O off the event loop).
    """

    def find(self, saga_type: str, key: str, value: str) -> list[SagaRecord]:
        """Return the live sagas of *saga_type* associated with ``(key, value)``, by id."""
        ...

    def load(self, saga_id: str) -> SagaRecord | None:
        """Return the saga stored under *saga_id*, or None."""
        ...

    def commit(self, writes: Sequence[Write], *, checkpoint: Advance | None = None) -> None:
        """Apply every write, and move the *checkpoint*, atomically.

        Write nothing and raise :class:`~busway.errors.LeaseLostError` if a writer with a
        later fencing token than the checkpoint's moved it, or
        :class:`~busway.errors.CheckpointMovedError` if it is not at ``checkpoint.expected``;
        raise SagaConcurrencyError if any saga is not at its write's expected version, or
        a live saga of its type holds the association a write :attr:`~Write.starts` on.
        Otherwise the checkpoint moves to its position with its token, and its event to
        park and to unpark are parked and unparked. A record that is
        :attr:`~SagaRecord.finished` is deleted.
        """
        ...

    def pending(self) -> list[SagaRecord]:
        """Return every saga with commands in its outbox."""
        ...

    def due(self, now: datetime) -> list[SagaRecord]:
        """Return every saga with a deadline due at or before *now*, earliest deadline first."""
        ...

    def checkpoint(self, name: str) -> int:
        """Return the position last committed under *name*; 0 if none was."""
        ...

    def checkpoints(self) -> dict[str, int]:
        """Return the position of every checkpoint committed, by name (sorted)."""
        ...

    def token(self, name: str) -> int:
        """Return the highest fencing token that moved checkpoint *name*; 0 if none did."""
        ...

    def parked(self, name: str) -> list[ParkedEvent]:
        """Return the events parked on checkpoint *name*, by position."""
        ...

    def close(self) -> None:
        """Release the store's resources; closing twice is harmless."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc_info: object) -> None: ...
