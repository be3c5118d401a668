"""A saga store in memory, for tests and programs whose sagas need not outlive them."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime
from typing import final

from .._closeable import Closeable
from .._time import aware
from ..errors import SagaConcurrencyError
from ..subscriptions import Advance, ParkedEvent
from ..subscriptions._tables import MemoryCheckpoints
from ._store import SagaRecord, Write, refused_start

__all__ = ["InMemorySagaStore"]


@final
class InMemorySagaStore(Closeable):
    """A :class:`SagaStore` in a dict, with the same checks as the SQLite store.

    Closing it refuses further use but forgets nothing.
    """

    _holds = "sagas"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: dict[str, SagaRecord] = {}
        self._index: dict[tuple[str, str, str], set[str]] = {}
        self._checkpoints = MemoryCheckpoints()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._records)} sagas"
        return f"<InMemorySagaStore {state}>"

    def find(self, saga_type: str, key: str, value: str) -> list[SagaRecord]:
        """Return the live sagas of *saga_type* associated with ``(key, value)``, by id."""
        with self._lock:
            self._check_open()
            ids = self._index.get((saga_type, key, value), ())
            return [self._records[i] for i in sorted(ids)]

    def load(self, saga_id: str) -> SagaRecord | None:
        """Return the saga stored under *saga_id*, or None."""
        with self._lock:
            self._check_open()
            return self._records.get(saga_id)

    def commit(self, writes: Sequence[Write], *, checkpoint: Advance | None = None) -> None:
        """Apply every write, and move *checkpoint*, atomically; raise if any is stale."""
        with self._lock:
            self._check_open()
            advance = None if checkpoint is None else self._checkpoints.check(checkpoint)
            started: dict[tuple[str, str, str], str] = {}
            for write in writes:
                record = write.record
                current = self._records.get(record.saga_id)
                actual = 0 if current is None else current.version
                if actual != write.expected_version:
                    raise SagaConcurrencyError(record.saga_id, write.expected_version, actual)
                if write.starts is not None:
                    entry = (record.saga_type, *write.starts)
                    holder = min(self._index.get(entry, ()), default=started.get(entry))
                    if holder is not None:
                        raise refused_start(write, holder)
                    started[entry] = record.saga_id
            for write in writes:
                record = write.record
                self._unindex(self._records.pop(record.saga_id, None))
                if not record.finished:
                    self._records[record.saga_id] = record
                    for key, value in record.associations:
                        self._index.setdefault((record.saga_type, key, value), set()).add(
                            record.saga_id
                        )
            if advance is not None:
                self._checkpoints.advance(advance)

    def _unindex(self, record: SagaRecord | None) -> None:
        if record is None:
            return
        for key, value in record.associations:
            entry = (record.saga_type, key, value)
            ids = self._index[entry]
            ids.discard(record.saga_id)
            if not ids:
                del self._index[entry]

    def pending(self) -> list[SagaRecord]:
        """Return every saga with commands in its outbox."""
        with self._lock:
            self._check_open()
            return [r for _, r in sorted(self._records.items()) if r.outbox]

    def due(self, now: datetime) -> list[SagaRecord]:
        """Return every saga with a deadline due at or before *now*, earliest deadline first."""
        now = aware(now, "now")
        with self._lock:
            self._check_open()
            found = [
                (min(d.due for d in r.deadlines), r.saga_id, r)
                for r in self._records.values()
                if any(d.due <= now for d in r.deadlines)
            ]
        return [r for _, _, r in sorted(found, key=lambda f: (f[0], f[1]))]

    def checkpoint(self, name: str) -> int:
        """Return the position last committed under *name*; 0 if none was."""
        with self._lock:
            self._check_open()
            return self._checkpoints.position(name)

    def checkpoints(self) -> dict[str, int]:
        """Return the position of every checkpoint committed, by name (sorted)."""
        with self._lock:
            self._check_open()
            return self._checkpoints.positions()

    def token(self, name: str) -> int:
        """Return the highest fencing token that moved checkpoint *name*; 0 if none did."""
        with self._lock:
            self._check_open()
            return self._checkpoints.token(name)

    def parked(self, name: str) -> list[ParkedEvent]:
        """Return the events parked on checkpoint *name*, by position."""
        with self._lock:
            self._check_open()
            return self._checkpoints.parked(name)
