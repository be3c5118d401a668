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
    """Store *record* if its saga is still at *expected_version* (0: it does not exist yet)."""

    record: SagaRecord
    expected_version: int


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

    def commit(self, writes: Sequence[Write], *, checkpoint: tuple[str, int] | None = None) -> None:
        """Apply every write, and set the named *checkpoint*, atomically.

        If any saga is not at its write's expected version, raise SagaConcurrencyError and
        write nothing. A record that is :attr:`~SagaRecord.finished` is deleted.
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

    def close(self) -> None:
        """Release the store's resources; closing twice is harmless."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc_info: object) -> None: ...
