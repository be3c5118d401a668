"""Checkpoints: how far each projection has got in the store's global order of positions.

A checkpoint ``p`` says every event at a position up to ``p`` has been handled, so the
projection goes on at ``p + 1``. A runner works in a store's transactions
(:meth:`CheckpointStore.transaction`): it reads the checkpoint, hands the read model the
transaction's connection, and saves the new position, all committed together. The SQLite
store keeps its table in the read model's database, so that the transaction holds both.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Final, Protocol, final, runtime_checkable

from .._closeable import Closeable
from .._sqlite import Database, Layout, SQLiteStore, check_table, stored_position
from ..errors import InvalidArgumentError, ProjectionError

__all__ = [
    "CheckpointStore",
    "CheckpointTransaction",
    "InMemoryCheckpointStore",
    "SQLiteCheckpointStore",
]

_COLUMNS: Final = ("name", "position")


def _check_position(position: object) -> int:
    if type(position) is not int or position < 0:
        raise InvalidArgumentError("position", position, "an int of 0 or more")
    return position


@runtime_checkable
class CheckpointTransaction(Protocol):
    """One projection's checkpoint inside a transaction of its store.

    What the runner reads and saves here, and what the read model writes through
    :attr:`connection`, commit together when the transaction's block ends.
    """

    @property
    def connection(self) -> object:
        """What the read model writes through to commit with the checkpoint.

        The :class:`sqlite3.Connection` of an :class:`SQLiteCheckpointStore`, which
        :class:`~busway.projections.SQLiteProjection` handlers get; None for a store that
        shares no database with a read model.
        """
        ...

    def load(self) -> int:
        """Return the stored position; no other transaction moves it before this one ends."""
        ...

    def save(self, position: int) -> None:
        """Record that every event up to *position* has been handled, when this commits."""
        ...

    def savepoint(self) -> AbstractContextManager[None]:
        """Run the block in a nested transaction: if it raises, only its writes are undone.

        Raise :class:`~busway.errors.ProjectionError` if the block ended the transaction
        itself (a commit or a rollback on the connection), which would break exactly-once.
        """
        ...


@runtime_checkable
class CheckpointStore(Protocol):
    """Keeps each projection's position, by name.

    ``busway.testing.CheckpointStoreContract`` checks that a backend keeps these promises.
    """

    def load(self, name: str) -> int:
        """Return the position *name* has handled every event up to; 0 if none."""
        ...

    def save(self, name: str, position: int) -> None:
        """Record that *name* has handled every event up to *position*."""
        ...

    def transaction(self, name: str) -> AbstractContextManager[CheckpointTransaction]:
        """Open a transaction on *name*'s checkpoint, holding off every other until it ends.

        Leaving the block commits what was saved and written through the transaction's
        connection; an exception undoes it all. A store in memory, which cannot undo, keeps
        each save at once, as the read model in memory it serves keeps its changes.
        """
        ...

    def close(self) -> None:
        """Release the store's resources; closing twice is harmless."""
        ...


@final
class InMemoryCheckpointStore(Closeable):
    """A :class:`CheckpointStore` in memory: for read models that live in memory too."""

    _holds = "checkpoints"

    def __init__(self) -> None:
        self._lock = threading.RLock()  # a transaction's holder may load and save too
        self._positions: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"<InMemoryCheckpointStore {self._positions!r}>"

    def load(self, name: str) -> int:
        """Return the position *name* has handled every event up to; 0 if none."""
        with self._lock:
            self._check_open()
            return self._positions.get(name, 0)

    def save(self, name: str, position: int) -> None:
        """Record that *name* has handled every event up to *position*."""
        _check_position(position)
        with self._lock:
            self._check_open()
            self._positions[name] = position

    @contextlib.contextmanager
    def transaction(self, name: str) -> Iterator[CheckpointTransaction]:
        """Hold off every other transaction and save until the block ends.

        Each save is kept at once: nothing in memory can be undone.
        """
        with self._lock:
            self._check_open()
            yield _InMemoryTransaction(self, name)

    def _release(self) -> None:
        self._positions = {}  # nothing can read them any more


@final
class _InMemoryTransaction:
    """A checkpoint of an :class:`InMemoryCheckpointStore`, under the store's lock."""

    connection: None = None

    def __init__(self, store: InMemoryCheckpointStore, name: str) -> None:
        self._store = store
        self._name = name

    def load(self) -> int:
        return self._store.load(self._name)

    def save(self, position: int) -> None:
        self._store.save(self._name, position)

    def savepoint(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()


@final
class SQLiteCheckpointStore(SQLiteStore):
    """A :class:`CheckpointStore` in a table of an SQLite database.

    Put it in the database of the read model it tracks: a runner then gives an
    :class:`~busway.projections.SQLiteProjection` this store's connection, and commits the
    projection's writes and its checkpoint together, so each event is applied exactly once,
    even across crashes. Given a path it opens (and on :meth:`close` closes) its own
    connection; given a connection, it uses it and leaves it open.
    """

    _holds = "checkpoints"
    table: str

    def __init__(
        self,
        path_or_connection: str | os.PathLike[str] | sqlite3.Connection,
        *,
        table: str = "projection_checkpoints",
        timeout: float = 10.0,
    ) -> None:
        self.table = t = check_table(table)
        layout = Layout(
            kind="a checkpoint store",
            tables=(t,),
            create=(
                f"CREATE TABLE IF NOT EXISTS {t} "
                "(name TEXT PRIMARY KEY, position INTEGER NOT NULL)",
            ),
            columns=_COLUMNS,
        )
        super().__init__(Database(path_or_connection, layout, timeout=timeout))
        self._sql_load = f"SELECT position FROM {t} WHERE name = ?"
        self._sql_save = (
            f"INSERT INTO {t} (name, position) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET position = excluded.position"
        )

    def load(self, name: str) -> int:
        """Return the position *name* has handled every event up to; 0 if none."""
        with self._lock:
            self._check_open()
            return self._transaction(name).load()

    def save(self, name: str, position: int) -> None:
        """Record that *name* has handled every event up to *position*."""
        with self.transaction(name) as checkpoint:
            checkpoint.save(position)

    @contextlib.contextmanager
    def transaction(self, name: str) -> Iterator[CheckpointTransaction]:
        """Run the block in a write transaction that the read model's writes join.

        ``BEGIN IMMEDIATE`` takes the database's write lock first, so the position read
        inside stays true until the commit, for every thread and process. On a given
        connection already in a transaction, the block is a savepoint of that one.
        """
        with self._lock:
            self._check_open()
            with self._db.transaction():
                yield self._transaction(name)

    def _transaction(self, name: str) -> _SQLiteTransaction:
        return _SQLiteTransaction(self, name)


@final
class _SQLiteTransaction:
    """A checkpoint of an :class:`SQLiteCheckpointStore`, on the store's connection."""

    def __init__(self, store: SQLiteCheckpointStore, name: str) -> None:
        self._db = store._db
        self._table = store.table
        self._name = name
        self._sql_load = store._sql_load
        self._sql_save = store._sql_save
        self.connection: sqlite3.Connection = store._db.conn

    def load(self) -> int:
        row = self.connection.execute(self._sql_load, (self._name,)).fetchone()
        if row is None:
            return 0
        return stored_position(
            self._db,
            row[0],
            table=self._table,
            name=self._name,
            advice="delete the row and rebuild the projection",
        )

    def save(self, position: int) -> None:
        self.connection.execute(self._sql_save, (self._name, _check_position(position)))

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        with self._db.transaction() as conn:
            yield
            if not conn.in_transaction:
                raise ProjectionError(
                    self._name,
                    "has a handler that ended the runner's transaction; handlers write "
                    "through the connection they get and never commit or roll back",
                )
