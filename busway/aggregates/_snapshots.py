"""Snapshots of aggregates: the state at a version, so loading need not replay every event.

A snapshot is a cache. It holds the aggregate's annotated attributes as JSON, made by the
same cattrs converter as the events, and the aggregate's ``snapshot_version``, so that a
class whose state changed shape ignores the old snapshots instead of misreading them.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from typing import Final, Protocol, final, runtime_checkable

import attrs

from .._closeable import Closeable
from .._sqlite import Database, Layout, SQLiteStore, check_table

__all__ = ["InMemorySnapshotStore", "SQLiteSnapshotStore", "Snapshot", "SnapshotStore"]

_COLUMNS: Final = ("stream_id", "version", "schema_version", "state")


@final
@attrs.frozen
class Snapshot:
    """An aggregate's state as of *version* of its stream."""

    stream_id: str
    version: int
    schema_version: int
    """The aggregate class's ``snapshot_version`` when the snapshot was taken."""
    state: str
    """The annotated attributes, as a JSON object."""


@runtime_checkable
class SnapshotStore(Protocol):
    """Keeps the latest snapshot of each stream."""

    def load(self, stream_id: str) -> Snapshot | None:
        """Return the latest snapshot of *stream_id*, or ``None``."""
        ...

    def save(self, snapshot: Snapshot) -> None:
        """Keep *snapshot* unless one of a later version is already kept."""
        ...

    def close(self) -> None:
        """Release the store's resources; closing twice is harmless."""
        ...


@final
class InMemorySnapshotStore(Closeable):
    """A :class:`SnapshotStore` in memory, safe to share between threads."""

    _holds = "snapshots"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshots: dict[str, Snapshot] = {}

    def __repr__(self) -> str:
        return f"<InMemorySnapshotStore {len(self._snapshots)} snapshots>"

    def load(self, stream_id: str) -> Snapshot | None:
        """Return the latest snapshot of *stream_id*, or ``None``."""
        with self._lock:
            self._check_open()
            return self._snapshots.get(stream_id)

    def save(self, snapshot: Snapshot) -> None:
        """Keep *snapshot* unless one of a later version is already kept."""
        json.loads(snapshot.state)  # what SQLite would store must be JSON here too
        with self._lock:
            self._check_open()
            kept = self._snapshots.get(snapshot.stream_id)
            if kept is None or kept.version <= snapshot.version:
                self._snapshots[snapshot.stream_id] = snapshot

    def _release(self) -> None:
        self._snapshots = {}  # nothing can read them any more


@final
class SQLiteSnapshotStore(SQLiteStore):
    """A :class:`SnapshotStore` in a table of an SQLite database, the event store's file or not.

    Given a path it opens (and on :meth:`close` closes) its own connection; given a
    connection, it uses it and leaves it open.
    """

    _holds = "snapshots"
    table: str

    def __init__(
        self,
        path_or_connection: str | os.PathLike[str] | sqlite3.Connection,
        *,
        table: str = "snapshots",
        timeout: float = 10.0,
    ) -> None:
        self.table = t = check_table(table)
        layout = Layout(
            kind="a snapshot store",
            tables=(t,),
            create=(
                f"CREATE TABLE IF NOT EXISTS {t} (stream_id TEXT PRIMARY KEY, "
                "version INTEGER NOT NULL, schema_version INTEGER NOT NULL, "
                "state TEXT NOT NULL)",
            ),
            columns=_COLUMNS,
        )
        super().__init__(Database(path_or_connection, layout, timeout=timeout))
        self._sql_load = f"SELECT {', '.join(_COLUMNS)} FROM {t} WHERE stream_id = ?"
        self._sql_save = (
            f"INSERT INTO {t} ({', '.join(_COLUMNS)}) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, "
            "schema_version = excluded.schema_version, state = excluded.state "
            f"WHERE excluded.version >= {t}.version"
        )

    def load(self, stream_id: str) -> Snapshot | None:
        """Return the latest snapshot of *stream_id*, or ``None``."""
        with self._lock:
            self._check_open()
            row = self._conn.execute(self._sql_load, (stream_id,)).fetchone()
        return None if row is None else Snapshot(*row)

    def save(self, snapshot: Snapshot) -> None:
        """Keep *snapshot* unless one of a later version is already kept."""
        with self._lock:
            self._check_open()
            with self._db.transaction() as conn:
                conn.execute(
                    self._sql_save,
                    (snapshot.stream_id, snapshot.version, snapshot.schema_version, snapshot.state),
                )
