"""Checkpoints: how far each projection has got in the store's global order of positions.

A checkpoint ``p`` says every event at a position up to ``p`` has been handled, so the
projection goes on at ``p + 1``. The SQLite store keeps them in a table of the read
model's database, and lets a runner write a projection's changes and its checkpoint in
one transaction.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from typing import Final, Protocol, final, runtime_checkable

from .._closeable import Closeable
from .._sqlite import Database, Layout, SQLiteStore, check_table
from ..errors import InvalidArgumentError

__all__ = ["CheckpointStore", "InMemoryCheckpointStore", "SQLiteCheckpointStore"]

_COLUMNS: Final = ("name", "position")


def _check_position(position: object) -> int:
    if type(position) is not int or position < 0:
        raise InvalidArgumentError("position", position, "an int of 0 or more")
    return position


@runtime_checkable
class CheckpointStore(Protocol):
    """Keeps each projection's position, by name."""

    def load(self, name: str) -> int:
        """Return the position *name* has handled every event up to; 0 if none."""
        ...

    def save(self, name: str, position: int) -> None:
        """Record that *name* has handled every event up to *position*."""
        ...

    def close(self) -> None:
        """Release the store's resources; closing twice is harmless."""
        ...


@final
class InMemoryCheckpointStore(Closeable):
    """A :class:`CheckpointStore` in memory: for read models that live in memory too."""

    _holds = "checkpoints"

    def __init__(self) -> None:
        self._lock = threading.Lock()
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

    def _release(self) -> None:
        self._positions = {}  # nothing can read them any more


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
            return self._load(self._conn, name)

    def save(self, name: str, position: int) -> None:
        """Record that *name* has handled every event up to *position*."""
        _check_position(position)
        with self._lock:
            self._check_open()
            with self._db.transaction() as conn:
                self._save(conn, name, position)

    # -- for the runner, inside its transaction ----------------------------------------------

    def _load(self, conn: sqlite3.Connection, name: str) -> int:
        row = conn.execute(self._sql_load, (name,)).fetchone()
        return 0 if row is None else int(row[0])

    def _save(self, conn: sqlite3.Connection, name: str, position: int) -> None:
        conn.execute(self._sql_save, (name, position))
