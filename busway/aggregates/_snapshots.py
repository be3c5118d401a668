"""Snapshots of aggregates: the state at a version, so loading need not replay every event.

A snapshot is a cache. It holds the aggregate's annotated attributes as JSON, made by the
same cattrs converter as the events, the aggregate's ``snapshot_version``, so that a class
whose state changed shape ignores the old snapshots instead of misreading them, and the id
of the event it was taken after, so that a load can tell that the stream still holds the
events the snapshot sums up.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import uuid
from collections.abc import Sequence
from typing import Any, Final, Protocol, final, runtime_checkable

import attrs

from .._closeable import Closeable
from .._sqlite import Database, Layout, SQLiteStore, check_table
from ..errors import InvalidArgumentError, SerializationError, StoreFormatError

__all__ = [
    "COLUMNS",
    "InMemorySnapshotStore",
    "SQLiteSnapshotStore",
    "Snapshot",
    "SnapshotStore",
    "stored_snapshot",
]

COLUMNS: Final = ("stream_id", "version", "event_id", "schema_version", "state")
_FIRST_COLUMNS: Final = ("stream_id", "version", "schema_version", "state")
"""The first layout, whose snapshots do not say which event they were taken after."""

_log = logging.getLogger("busway.aggregates")


@final
@attrs.frozen
class Snapshot:
    """An aggregate's state as of *version* of its stream, taken after the event *event_id*.

    It is checked when made, so that no store is ever given one it could not give back:
    a state that is not the text of a JSON object raises ``SerializationError``, another
    field of the wrong type ``InvalidArgumentError``.
    """

    stream_id: str
    version: int
    event_id: uuid.UUID
    """The id of the stream's event at *version*: loads use the snapshot only while the
    stream holds that very event there."""
    schema_version: int
    """The aggregate class's ``snapshot_version`` when the snapshot was taken."""
    state: str
    """The annotated attributes, as a JSON object."""

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.stream_id, str) or not self.stream_id:
            raise InvalidArgumentError("Snapshot.stream_id", self.stream_id, "a non-empty str")
        if type(self.version) is not int or self.version < 1:
            raise InvalidArgumentError("Snapshot.version", self.version, "an int of 1 or more")
        if not isinstance(self.event_id, uuid.UUID):
            raise InvalidArgumentError("Snapshot.event_id", self.event_id, "a uuid.UUID")
        if type(self.schema_version) is not int:
            raise InvalidArgumentError("Snapshot.schema_version", self.schema_version, "an int")
        if not isinstance(self.state, str):
            raise InvalidArgumentError("Snapshot.state", type(self.state), "a str of JSON")
        where = f"the state of the snapshot of stream {self.stream_id!r} at version {self.version}"
        try:
            data = json.loads(self.state)
        except (ValueError, RecursionError) as exc:
            raise SerializationError(
                f"{where} is not JSON ({exc}); it must be the JSON object of the aggregate's "
                "annotated attributes"
            ) from exc
        if not isinstance(data, dict):
            raise SerializationError(
                f"{where} is not a JSON object but a {type(data).__name__}; it must be the "
                "JSON object of the aggregate's annotated attributes"
            )


def stored_snapshot(stream_id: str, row: Sequence[Any], location: str) -> Snapshot:
    """Return the snapshot a store's *row* holds; raise SerializationError if it is damaged.

    *row* is ``(stream_id, version, event_id, schema_version, state)``, the event id as
    16 bytes.
    """
    stream, version, event_id, schema_version, state = row
    try:
        return Snapshot(stream, version, uuid.UUID(bytes=event_id), schema_version, state)
    except (TypeError, ValueError, InvalidArgumentError, SerializationError) as exc:
        raise SerializationError(
            f"the snapshot of stream {stream_id!r} in {location} is damaged ({exc}); delete "
            "its row: a snapshot is a cache, and the next saves take a new one"
        ) from exc


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
    connection, it uses it and leaves it open. A table of the first layout, whose
    snapshots name no event and so can never be checked against their stream, is made
    anew, empty (a snapshot is a cache: the next saves take new ones).
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
        create = (
            f"CREATE TABLE IF NOT EXISTS {t} (stream_id TEXT PRIMARY KEY, "
            "version INTEGER NOT NULL, event_id BLOB NOT NULL, "
            "schema_version INTEGER NOT NULL, state TEXT NOT NULL)"
        )
        # The columns are checked here, not by the Database, which would refuse a table of
        # the first layout instead of replacing it.
        layout = Layout(kind="a snapshot store", tables=(t,), create=(create,))
        super().__init__(Database(path_or_connection, layout, timeout=timeout))
        try:
            with self._lock:
                self._upgrade(create)
        except BaseException:
            self.close()
            raise
        self._sql_load = f"SELECT {', '.join(COLUMNS)} FROM {t} WHERE stream_id = ?"
        self._sql_save = (
            f"INSERT INTO {t} ({', '.join(COLUMNS)}) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, "
            "event_id = excluded.event_id, schema_version = excluded.schema_version, "
            f"state = excluded.state WHERE excluded.version >= {t}.version"
        )

    def _columns(self) -> tuple[str, ...]:
        return tuple(row[1] for row in self._conn.execute(f"PRAGMA table_info({self.table})"))

    def _upgrade(self, create: str) -> None:
        """Remake a table of the first layout; refuse a table that is not a snapshot store's."""
        columns = self._columns()
        if columns == _FIRST_COLUMNS:
            dropped = None
            with self._db.transaction() as conn:
                columns = self._columns()
                if columns == _FIRST_COLUMNS:  # else another process has just remade it
                    (dropped,) = conn.execute(f"SELECT count(*) FROM {self.table}").fetchone()
                    conn.execute(f"DROP TABLE {self.table}")
                    conn.execute(create)
                    columns = COLUMNS
            if dropped is not None:
                _log.warning(
                    "dropped %d snapshot(s) of %s, kept in busway's first layout: they do not "
                    "say which event they were taken after, so no load could use them; the "
                    "next saves take new ones",
                    dropped,
                    self._db.location,
                )
        if columns != COLUMNS:
            raise StoreFormatError(
                self._db.location,
                f"table {self.table!r} has columns {', '.join(columns)} where busway expects "
                f"{', '.join(COLUMNS)}; pass another table= name or another database",
                kind="a snapshot store",
            )

    def load(self, stream_id: str) -> Snapshot | None:
        """Return the latest snapshot of *stream_id*, or ``None``.

        Raise ``SerializationError`` if its row is damaged.
        """
        with self._lock:
            self._check_open()
            row = self._conn.execute(self._sql_load, (stream_id,)).fetchone()
        return None if row is None else stored_snapshot(stream_id, row, self._db.location)

    def save(self, snapshot: Snapshot) -> None:
        """Keep *snapshot* unless one of a later version is already kept."""
        with self._lock:
            self._check_open()
            with self._db.transaction() as conn:
                conn.execute(
                    self._sql_save,
                    (
                        snapshot.stream_id,
                        snapshot.version,
                        snapshot.event_id.bytes,
                        snapshot.schema_version,
                        snapshot.state,
                    ),
                )
