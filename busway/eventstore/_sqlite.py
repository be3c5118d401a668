"""An event store in an SQLite database, with the standard library's sqlite3.

One writer at a time, across threads and processes: every append runs in ``BEGIN
IMMEDIATE``, which takes SQLite's write lock before the stream's version is read, so the
version check, the positions given out and the commit happen in one order for everybody.
Positions come from an AUTOINCREMENT key assigned under that lock, so commits happen in
position order and a reader never meets an event with a lower position than one it has
already read. The database runs in WAL mode: readers never block the writer, nor it them.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, final

from .._signal import Signal, signal_for
from .._sqlite import Database, Layout, SQLiteStore, Synchronous, check_table
from ._core import (
    ROW_COLUMNS,
    Pending,
    check_count,
    check_limit,
    check_position,
    check_stream_id,
    check_types,
    concurrency_error,
    decode,
    decode_page,
    matches,
    now,
    prepare,
    resolve_existing,
    type_names,
    wanted,
)
from ._live import LiveEvents
from ._serialization import EventTypes
from ._types import ANY, ExpectedVersion, RecordedEvent

__all__ = ["SCHEMA_VERSION", "SQLiteEventStore", "Synchronous"]

SCHEMA_VERSION: Final = 1
"""The layout this release writes; recorded per table in ``busway_schema``."""

_MAX_INT: Final = 2**63 - 1
_IN_CHUNK: Final = 500  # well below SQLite's limit on bound parameters
_TYPE_FILTER_MAX: Final = 64  # more type names than this are filtered in Python
_COLUMNS: Final = ", ".join(ROW_COLUMNS)
_ROW_PARAMETERS: Final = 8
_MOST_ROWS_PER_INSERT: Final = 256


def _layout(t: str) -> Layout:
    return Layout(
        kind="an event store",
        tables=(t,),
        create=(
            f"""CREATE TABLE {t} (
                position INTEGER PRIMARY KEY AUTOINCREMENT,
                stream_id TEXT NOT NULL,
                version INTEGER NOT NULL CHECK (version >= 1),
                event_id BLOB NOT NULL,
                type TEXT NOT NULL,
                schema_version INTEGER NOT NULL,
                data TEXT NOT NULL,
                metadata TEXT NOT NULL,
                recorded_at TEXT NOT NULL,
                CONSTRAINT {t}_stream_version UNIQUE (stream_id, version),
                CONSTRAINT {t}_event_id UNIQUE (event_id)
            )""",
        ),
        columns=ROW_COLUMNS,
        component="eventstore",
        version=SCHEMA_VERSION,
    )


class _IdTaken(Exception):
    """An event id of the batch is already stored; leave the transaction to look at it."""


@final
class SQLiteEventStore(SQLiteStore):
    """An :class:`EventStore` in an SQLite database file (or a connection you own).

    Given a path, the store opens its own connection in WAL mode with the given durability
    (``synchronous``, default ``"full"``: a committed append survives a power cut) and busy
    *timeout* in seconds, and closes it on :meth:`close`. Given a ``sqlite3.Connection``, it
    uses it as configured and never closes it; an append made while that connection is in a
    transaction joins it (as a savepoint) and lasts only if the transaction commits.

    The store is safe to share between threads (they take turns on its connection) and the
    same file may be written by many processes at once. Every store on one file in a
    process shares one :attr:`appended` signal, so its live streams wake at once for appends
    through any of them; appends from other processes are found by polling.
    """

    types: EventTypes
    table: str

    def __init__(
        self,
        path_or_connection: str | os.PathLike[str] | sqlite3.Connection,
        *,
        types: EventTypes,
        table: str = "events",
        synchronous: Synchronous | None = None,
        timeout: float = 10.0,
        page_size: int = 1000,
    ) -> None:
        self.types = check_types(types)
        self.table = check_table(table)
        self._page_size = min(check_count("page_size", page_size, 1), _MAX_INT)
        super().__init__(
            Database(path_or_connection, _layout(table), timeout=timeout, synchronous=synchronous)
        )
        self._appended = signal_for(self.path)
        # On a connection it is given, an append may join the caller's transaction, which
        # commits later or never: then nobody is told, and live streams find it by polling.
        self._notify = self._appended.notify if self._db.owned else self._notify_if_committed
        t = self.table
        self._sql_version = (
            f"SELECT version FROM {t} WHERE stream_id = ? ORDER BY version DESC LIMIT 1"
        )
        self._sql_insert = (
            f"INSERT INTO {t} (stream_id, version, event_id, type, schema_version, data, "
            "metadata, recorded_at) VALUES "
        )
        # Rows go in by the statement-full: one statement costs SQLite far less than a row
        # each. Statements hold a power of two of rows, so a handful of them serve every batch.
        rows = self._conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER) // _ROW_PARAMETERS
        self._rows_per_insert = 1 << (min(rows, _MOST_ROWS_PER_INSERT).bit_length() - 1)
        self._inserts: dict[int, str] = {}
        self._sql_forwards = (
            f"SELECT {_COLUMNS} FROM {t} WHERE stream_id = ? AND version >= ? "
            "ORDER BY version LIMIT ?"
        )
        self._sql_backwards = (
            f"SELECT {_COLUMNS} FROM {t} WHERE stream_id = ? AND version <= ? "
            "ORDER BY version DESC LIMIT ?"
        )
        self._sql_all = f"SELECT {_COLUMNS} FROM {t} WHERE position >= ? ORDER BY position LIMIT ?"
        self._sql_head = f"SELECT max(position) FROM {t}"
        self._sql_streams = (
            f"SELECT stream_id, max(version) FROM {t} WHERE stream_id > ? "
            "GROUP BY stream_id ORDER BY stream_id LIMIT ?"
        )

    # -- writing -----------------------------------------------------------------------------

    def append(
        self,
        stream_id: str,
        events: Iterable[object],
        *,
        expected_version: ExpectedVersion = ANY,
        metadata: Mapping[str, Any] | None = None,
    ) -> int:
        """Append *events* atomically; return the stream's new version."""
        stream, expected, pending = prepare(
            self.types, stream_id, events, expected_version, metadata
        )
        try:
            with self._lock:
                self._check_open()
                with self._db.transaction():
                    row = self._conn.execute(self._sql_version, (stream,)).fetchone()
                    current = 0 if row is None else row[0]
                    if not matches(expected, current):
                        ids = [p[0] for p in pending]
                        found = self._find(ids)
                        if found:
                            return resolve_existing(stream, expected, ids, found)
                        raise concurrency_error(stream, expected, current)
                    if not pending:
                        return current
                    try:
                        self._insert(stream, current, pending)
                    except sqlite3.IntegrityError as exc:
                        if "event_id" not in str(exc):
                            raise
                        raise _IdTaken from exc
        except _IdTaken:
            # The partial batch is rolled back; stored ids are never removed, so they are there.
            ids = [p[0] for p in pending]
            with self._lock:
                self._check_open()
                found = self._find(ids)
            return resolve_existing(stream, expected, ids, found)
        self._notify()  # committed: readers may now see the events
        return current + len(pending)

    def _notify_if_committed(self) -> None:
        if not self._conn.in_transaction:
            self._appended.notify()

    @property
    def appended(self) -> Signal:
        """The signal notified after each commit of new events (shared by the file's stores)."""
        return self._appended

    def _release(self) -> None:
        super()._release()
        self._appended.notify()  # live streams waiting on the store wake, to find it closed

    def _insert(self, stream: str, current: int, pending: Sequence[Pending]) -> None:
        at = now()
        done = 0
        while done < len(pending):
            count = min(self._rows_per_insert, 1 << ((len(pending) - done).bit_length() - 1))
            sql = self._inserts.get(count)
            if sql is None:
                sql = self._inserts[count] = self._sql_insert + ", ".join(
                    ["(?, ?, ?, ?, ?, ?, ?, ?)"] * count
                )
            params: list[object] = []
            for version, (eid, name, schema, data, meta) in enumerate(
                pending[done : done + count], start=current + done + 1
            ):
                # A bytearray binds as a BLOB, skipping the adapter lookup sqlite3 makes for
                # bytes: that lookup costs more than the rest of the row's binding.
                params += (stream, version, bytearray(eid), name, schema, data, meta, at)
            self._conn.execute(sql, params)
            done += count

    def _find(self, ids: Sequence[bytes]) -> dict[bytes, tuple[str, int]]:
        found: dict[bytes, tuple[str, int]] = {}
        for i in range(0, len(ids), _IN_CHUNK):
            chunk = ids[i : i + _IN_CHUNK]
            marks = ", ".join("?" * len(chunk))
            for eid, stream, version in self._conn.execute(
                f"SELECT event_id, stream_id, version FROM {self.table} "
                f"WHERE event_id IN ({marks})",
                chunk,
            ):
                found[eid] = (stream, version)
        return found

    # -- reading -----------------------------------------------------------------------------

    def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int | None = None,
        limit: int | None = None,
        backwards: bool = False,
    ) -> list[RecordedEvent]:
        """Return a stream's events from *from_version* on, inclusive, at most *limit*."""
        stream = check_stream_id(stream_id)
        start = None if from_version is None else check_count("from_version", from_version, 1)
        count = check_limit(limit)
        # SQLite's integers stop at 2**63 - 1: no version or limit can be beyond that.
        if backwards:
            top = _MAX_INT if start is None else min(start, _MAX_INT)
            sql, params = self._sql_backwards, (stream, top)
        elif start is not None and start > _MAX_INT:
            return []
        else:
            sql, params = self._sql_forwards, (stream, 1 if start is None else start)
        rows = self._fetch(sql, (*params, -1 if count is None else min(count, _MAX_INT)))
        return decode(self.types, rows)

    def read_all(
        self,
        *,
        from_position: int = 1,
        limit: int | None = None,
        types: Iterable[type | str] | None = None,
    ) -> Iterator[RecordedEvent]:
        """Iterate over every stream's events in position order, a page at a time."""
        start = check_position(from_position)
        count = check_limit(limit)
        names = type_names(self.types, types)
        with self._lock:
            self._check_open()
        return self._iter_all(start, count, names)

    def _iter_all(
        self, position: int, count: int | None, names: frozenset[str] | None
    ) -> Iterator[RecordedEvent]:
        if (names is not None and not names) or position > _MAX_INT:
            return
        sql, extra = self._sql_all, tuple[str, ...]()
        in_sql = names is not None and len(names) <= _TYPE_FILTER_MAX
        if in_sql and names is not None:
            extra = tuple(sorted(names))
            sql = (
                f"SELECT {_COLUMNS} FROM {self.table} WHERE position >= ? AND type IN "
                f"({', '.join('?' * len(extra))}) ORDER BY position LIMIT ?"
            )
        while count is None or count > 0:
            page = self._page_size if count is None else min(count, self._page_size)
            rows = self._fetch(sql, (position, *extra, page))
            if not rows:
                return
            position = rows[-1][0] + 1
            kept = wanted(rows, None if in_sql else names, count)
            if count is not None:
                count -= len(kept)
            yield from decode_page(self.types, kept)

    def subscribe(
        self,
        *,
        from_position: int = 1,
        types: Iterable[type | str] | None = None,
        poll_interval: float = 0.5,
    ) -> LiveEvents:
        """Follow the store: every event from *from_position* on, then each new one as it commits.

        Appends in this process wake the stream at once; other processes' appends are found
        within *poll_interval* seconds.
        """
        return LiveEvents(
            self, from_position=from_position, types=types, poll_interval=poll_interval
        )

    def _fetch(self, sql: str, params: Sequence[object]) -> list[Any]:
        with self._lock:
            self._check_open()
            return self._conn.execute(sql, params).fetchall()

    def stream_version(self, stream_id: str) -> int:
        """Return the version of a stream's last event; 0 if it has none."""
        stream = check_stream_id(stream_id)
        rows = self._fetch(self._sql_version, (stream,))
        return int(rows[0][0]) if rows else 0

    def head_position(self) -> int:
        """Return the position of the last event in the store; 0 if it is empty."""
        (row,) = self._fetch(self._sql_head, ())
        return int(row[0] or 0)

    def streams(
        self, *, after: str | None = None, limit: int | None = None
    ) -> Iterator[tuple[str, int]]:
        """Iterate over ``(stream_id, version)`` of every stream, ordered by id, paging."""
        if after is not None:
            check_stream_id(after)
        count = check_limit(limit)
        with self._lock:
            self._check_open()
        return self._iter_streams("" if after is None else after, count)

    def _iter_streams(self, after: str, count: int | None) -> Iterator[tuple[str, int]]:
        while count is None or count > 0:
            page = self._page_size if count is None else min(count, self._page_size)
            rows = self._fetch(self._sql_streams, (after, page))
            if not rows:
                return
            yield from rows
            after = rows[-1][0]
            if count is not None:
                count -= len(rows)
