"""Event stores in PostgreSQL, sync and async, over one set of flows.

Global order without gaps: an append takes a transaction-scoped advisory lock (one key per
table) right before it inserts, and holds it through its commit; positions come from the
table's identity column, drawn under that lock. So appends commit in position order, and
PostgreSQL releases the lock only once the commit is visible: a reader that sees an event
sees every event with a lower position too, and never later meets one it skipped. The
version read, the checks and the encoding all happen before the lock is taken.

An append is one statement, sent alone in autocommit mode: the version read, the check of
the expected version, the lock, the insert of every event (as arrays, unnested) and the
notification of listeners, with no BEGIN or COMMIT round trip. The unique constraints on
``(stream_id, version)`` and on ``event_id`` are the guards: a violation sends the append
round again (another writer got there first) or finds the batch already stored (a retry).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, Self, final

import psycopg
import psycopg.errors
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from .._closeable import Closeable
from .._signal import Signal
from ..errors import StoreClosedError
from ..eventstore._core import (
    ROW_COLUMNS,
    Pending,
    Row,
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
)
from ..eventstore._live import AsyncLiveEvents, LiveEvents
from ..eventstore._serialization import EventTypes
from ..eventstore._types import ANY, STREAM_EXISTS, ExpectedVersion, RecordedEvent
from ._db import AsyncDatabase, Database, Flow, Layout, Statement, check_identifier, quoted
from ._listen import Listener, listener_for

__all__ = ["SCHEMA_VERSION", "AsyncPostgresEventStore", "PostgresEventStore"]

SCHEMA_VERSION: Final = 1
"""The layout this release writes; recorded per table in ``busway_schema``."""

_MAX_INT: Final = 2**63 - 1
_COLUMNS: Final = ", ".join(ROW_COLUMNS)


def _layout(schema: str, table: str) -> Layout:
    t = quoted(schema, table)
    return Layout(
        kind="an event store",
        tables=(table,),
        create=(
            # Stream ids sort by code point (collation "C"), as streams() promises.
            f"""CREATE TABLE {t} (
                position BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
                stream_id TEXT COLLATE "C" NOT NULL,
                version BIGINT NOT NULL CHECK (version >= 1),
                event_id BYTEA NOT NULL CHECK (length(event_id) = 16),
                type TEXT NOT NULL,
                schema_version INTEGER NOT NULL,
                data TEXT NOT NULL,
                metadata TEXT NOT NULL,
                recorded_at TEXT NOT NULL,
                CONSTRAINT "{table}_stream_version" UNIQUE (stream_id, version),
                CONSTRAINT "{table}_event_id" UNIQUE (event_id)
            )""",
        ),
        columns=ROW_COLUMNS,
        component="eventstore",
        version=SCHEMA_VERSION,
    )


def _channel(schema: str, table: str) -> str:
    """Name the NOTIFY channel of a table: short enough for any schema and table name."""
    return "busway_" + hashlib.sha256(f"{schema}.{table}".encode()).hexdigest()[:32]


def _bounds(expected: ExpectedVersion) -> tuple[int, int]:
    """Return the versions a stream may be at for *expected*, as the append's SQL checks it."""
    if expected is ANY:
        return 0, _MAX_INT
    if expected is STREAM_EXISTS:
        return 1, _MAX_INT
    assert isinstance(expected, int)
    return expected, expected


class _Flows:
    """Every statement the stores send, and the decisions around them: no I/O here."""

    def __init__(self, schema: str, table: str) -> None:
        t = quoted(schema, table)
        self.channel = _channel(schema, table)
        self._lock_key = f"busway events {schema}.{table}"
        self._id_constraint = f"{table}_event_id"
        self._version = f"SELECT coalesce(max(version), 0) FROM {t} WHERE stream_id = %s"
        # The lock is taken only where the check passed, after the version was read (in
        # the statement's snapshot) and before the first position is drawn.
        self._append = f"""WITH current AS (
                SELECT coalesce(max(version), 0) AS version FROM {t} WHERE stream_id = %s
            ), locked AS MATERIALIZED (
                SELECT version, pg_advisory_xact_lock(hashtextextended(%s, 0))
                FROM current WHERE version BETWEEN %s AND %s
            ), added AS (
                INSERT INTO {t} (stream_id, version, event_id, type, schema_version, data,
                    metadata, recorded_at)
                SELECT %s, locked.version + e.n, e.event_id, e.type, e.schema_version, e.data,
                    e.metadata, %s
                FROM locked, unnest(%s::bytea[], %s::text[], %s::int[], %s::text[],
                    %s::text[]) WITH ORDINALITY AS e(event_id, type, schema_version, data,
                    metadata, n)
                ORDER BY e.n
                RETURNING 1
            ), told AS MATERIALIZED (
                SELECT pg_notify(%s, '') FROM locked
            )
            SELECT (SELECT version FROM current), (SELECT count(*) FROM told)"""
        self._find = (
            f"SELECT event_id, stream_id, version FROM {t} WHERE event_id = ANY(%s::bytea[])"
        )
        self._forwards = (
            f"SELECT {_COLUMNS} FROM {t} WHERE stream_id = %s AND version >= %s "
            "ORDER BY version LIMIT %s"
        )
        self._backwards = (
            f"SELECT {_COLUMNS} FROM {t} WHERE stream_id = %s AND version <= %s "
            "ORDER BY version DESC LIMIT %s"
        )
        self._all = f"SELECT {_COLUMNS} FROM {t} WHERE position >= %s ORDER BY position LIMIT %s"
        self._all_of = (
            f"SELECT {_COLUMNS} FROM {t} WHERE position >= %s "
            "AND type = ANY(%s::text[]) ORDER BY position LIMIT %s"
        )
        self._head = f"SELECT coalesce(max(position), 0) FROM {t}"
        self._streams = (
            f"SELECT stream_id, max(version) FROM {t} WHERE stream_id > %s "
            "GROUP BY stream_id ORDER BY stream_id LIMIT %s"
        )

    def append(
        self, stream: str, expected: ExpectedVersion, pending: Sequence[Pending]
    ) -> Flow[int]:
        """Append *pending* to *stream* if it is at *expected*; return the new version."""
        if not pending:  # nothing to write, nor to lock: the check alone
            current = (yield Statement(self._version, (stream,)))[0][0]
            if not matches(expected, current):
                raise concurrency_error(stream, expected, current)
            return int(current)
        ids = [p[0] for p in pending]
        low, high = _bounds(expected)
        params = (
            stream,
            self._lock_key,
            low,
            high,
            stream,
            now(),
            ids,
            [p[1] for p in pending],
            [p[2] for p in pending],
            [p[3] for p in pending],
            [p[4] for p in pending],
            self.channel,
        )
        while True:
            try:
                ((current, written),) = yield Statement(self._append, params, writes=True)
            except psycopg.errors.UniqueViolation as exc:
                if exc.diag.constraint_name == self._id_constraint:
                    found = yield from self._found(ids)
                    return resolve_existing(stream, expected, ids, found)
                continue  # another append took the version since ours read it: look again
            if written:
                return int(current) + len(pending)
            found = yield from self._found(ids)
            if found:
                return resolve_existing(stream, expected, ids, found)
            raise concurrency_error(stream, expected, current)

    def _found(self, ids: list[bytes]) -> Flow[dict[bytes, tuple[str, int]]]:
        rows = yield Statement(self._find, (ids,))
        return {bytes(eid): (stream, version) for eid, stream, version in rows}

    def version(self, stream: str) -> Flow[int]:
        """Return the version of *stream*'s last event; 0 if it has none."""
        return int((yield Statement(self._version, (stream,)))[0][0])

    def head(self) -> Flow[int]:
        """Return the position of the last event; 0 if there is none."""
        return int((yield Statement(self._head))[0][0])

    def read_stream(
        self, stream: str, start: int | None, count: int | None, backwards: bool
    ) -> Flow[list[Row]]:
        """Return the rows of ``read_stream``, or none past the last possible version."""
        if backwards:
            top = _MAX_INT if start is None else min(start, _MAX_INT)
            statement = Statement(self._backwards, (stream, top, _limit(count)))
        elif start is not None and start > _MAX_INT:
            return []
        else:
            statement = Statement(self._forwards, (stream, start or 1, _limit(count)))
        return (yield statement)

    def page(self, position: int, names: list[str] | None, size: int) -> Flow[list[Row]]:
        """Return up to *size* rows from *position* on, of the type *names* if given."""
        if names is None:
            return (yield Statement(self._all, (position, size)))
        return (yield Statement(self._all_of, (position, names, size)))

    def streams(self, after: str, size: int) -> Flow[list[tuple[str, int]]]:
        """Return up to *size* ``(stream_id, version)`` after *after*, by id."""
        return (yield Statement(self._streams, (after, size)))


def _limit(count: int | None) -> int | None:
    return None if count is None else min(count, _MAX_INT)


class _Store:
    """What both stores hold and do alike: their flows, their listener, their paging."""

    types: EventTypes
    schema: str
    table: str
    _page_size: int
    _closed: bool
    _db: Database | AsyncDatabase

    def _set_up(self, types: EventTypes, schema: str, table: str, page_size: int) -> Layout:
        """Check the arguments and return the table's layout, for the store's database."""
        self.types = check_types(types)
        self.schema = check_identifier(schema, "schema")
        self.table = check_identifier(table, "table")
        self._page_size = min(check_count("page_size", page_size, 1), _MAX_INT)
        self._flows = _Flows(schema, table)
        self._listening = False
        self._starting = threading.Lock()
        return _layout(schema, table)

    def _join_listener(self) -> None:
        """Share this process's listener of the store's table; it listens from first use."""
        self._listener: Listener = listener_for(self._db.pool, self._flows.channel)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._db.location}{' closed' if self._closed else ''}>"

    def _listen(self) -> None:
        with self._starting:
            if not self._listening and not self._closed:
                self._listening = True
                self._listener.start()

    def _stop_listening(self) -> None:
        if self._listening:
            self._listener.stop()
        self._listener.signal.notify()  # live streams waiting on the store wake, to end

    @property
    def appended(self) -> Signal:
        """The signal notified after each commit of new events, by any process."""
        self._listen()
        return self._listener.signal

    def _read_all_args(
        self, from_position: int, limit: int | None, types: Iterable[type | str] | None
    ) -> tuple[int, int | None, frozenset[str] | None, list[str] | None]:
        start = check_position(from_position)
        count = check_limit(limit)
        names = type_names(self.types, types)
        return start, count, names, None if names is None else sorted(names)

    def _size(self, count: int | None) -> int:
        return self._page_size if count is None else min(count, self._page_size)


@final
class PostgresEventStore(_Store, Closeable):
    """An :class:`~busway.eventstore.EventStore` in PostgreSQL, shared by many processes.

    Given a DSN, the store opens a pool of its own, which :meth:`close` closes; given a
    ``psycopg_pool.ConnectionPool``, it borrows connections and leaves the pool open. Its
    table (and *schema*) is made on first use. Appends commit one at a time per table, in
    position order, so readers never skip an event; the store is safe to share between
    threads. :attr:`appended` wakes this process's readers for appends from anywhere,
    through ``LISTEN``.
    """

    _db: Database
    types: EventTypes
    schema: str
    table: str

    def __init__(
        self,
        dsn_or_pool: str | ConnectionPool[Any],
        *,
        types: EventTypes,
        schema: str = "public",
        table: str = "events",
        page_size: int = 1000,
    ) -> None:
        layout = self._set_up(types, schema, table, page_size)
        self._db = Database(dsn_or_pool, layout, schema=schema)
        self._join_listener()
        self._lock = threading.Lock()

    def _ready(self) -> Database:
        self._check_open()
        self._db.ready()
        if not self._listening:
            self._listen()
        return self._db

    def _release(self) -> None:
        try:
            self._db.close()
        finally:
            self._stop_listening()

    def append(
        self,
        stream_id: str,
        events: Iterable[object],
        *,
        expected_version: ExpectedVersion = ANY,
        metadata: Mapping[str, Any] | None = None,
    ) -> int:
        """Append *events* atomically; return the stream's new version.

        If the connection breaks, :class:`~busway.errors.ConnectionLostError` says whether
        the append may have committed; retry it with the same NewEvent ids to find out.
        """
        stream, expected, pending = prepare(
            self.types, stream_id, events, expected_version, metadata
        )
        version = self._ready().run_each(self._flows.append(stream, expected, pending))
        if pending:
            self._listener.signal.notify()  # this process's readers need not wait for NOTIFY
        return version

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
        rows = self._ready().run_each(self._flows.read_stream(stream, start, count, backwards))
        return decode(self.types, rows)

    def read_all(
        self,
        *,
        from_position: int = 1,
        limit: int | None = None,
        types: Iterable[type | str] | None = None,
    ) -> Iterator[RecordedEvent]:
        """Iterate over every stream's events in position order, a page at a time."""
        start, count, names, in_sql = self._read_all_args(from_position, limit, types)
        self._check_open()
        return self._iter_all(start, count, names, in_sql)

    def _iter_all(
        self,
        position: int,
        count: int | None,
        names: frozenset[str] | None,
        in_sql: list[str] | None,
    ) -> Iterator[RecordedEvent]:
        if (names is not None and not names) or position > _MAX_INT:
            return
        while count is None or count > 0:
            rows = self._ready().run_each(self._flows.page(position, in_sql, self._size(count)))
            if not rows:
                return
            position = rows[-1][0] + 1
            if count is not None:
                count -= len(rows)
            yield from decode_page(self.types, rows)

    def subscribe(
        self,
        *,
        from_position: int = 1,
        types: Iterable[type | str] | None = None,
        poll_interval: float = 0.5,
    ) -> LiveEvents:
        """Follow the store: every event from *from_position* on, then each new one as it commits.

        Appends from any process wake the stream within milliseconds (``LISTEN``); should
        the listening connection be down, new events are found within *poll_interval*.
        """
        return LiveEvents(
            self, from_position=from_position, types=types, poll_interval=poll_interval
        )

    def stream_version(self, stream_id: str) -> int:
        """Return the version of a stream's last event; 0 if it has none."""
        stream = check_stream_id(stream_id)
        return self._ready().run_each(self._flows.version(stream))

    def head_position(self) -> int:
        """Return the position of the last event in the store; 0 if it is empty."""
        return self._ready().run_each(self._flows.head())

    def streams(
        self, *, after: str | None = None, limit: int | None = None
    ) -> Iterator[tuple[str, int]]:
        """Iterate over ``(stream_id, version)`` of every stream, ordered by id, paging."""
        if after is not None:
            check_stream_id(after)
        count = check_limit(limit)
        self._check_open()
        return self._iter_streams("" if after is None else after, count)

    def _iter_streams(self, after: str, count: int | None) -> Iterator[tuple[str, int]]:
        while count is None or count > 0:
            rows = self._ready().run_each(self._flows.streams(after, self._size(count)))
            if not rows:
                return
            yield from rows
            after = rows[-1][0]
            if count is not None:
                count -= len(rows)


@final
class AsyncPostgresEventStore(_Store):
    """:class:`PostgresEventStore` for asyncio, on psycopg's async connections.

    It takes a DSN or a ``psycopg_pool.AsyncConnectionPool``, and reaches the server on
    first use, so ``async with`` is where a server that does not answer, or a table that
    is not a store, fails.
    """

    _db: AsyncDatabase
    types: EventTypes
    schema: str
    table: str

    def __init__(
        self,
        dsn_or_pool: str | AsyncConnectionPool[Any],
        *,
        types: EventTypes,
        schema: str = "public",
        table: str = "events",
        page_size: int = 1000,
    ) -> None:
        self._closed = False
        layout = self._set_up(types, schema, table, page_size)
        self._db = AsyncDatabase(dsn_or_pool, layout, schema=schema)
        self._join_listener()

    async def _ready(self) -> AsyncDatabase:
        if self._closed:
            raise StoreClosedError(self)
        await self._db.ready()
        if not self._listening:
            self._listen()
        return self._db

    async def append(
        self,
        stream_id: str,
        events: Iterable[object],
        *,
        expected_version: ExpectedVersion = ANY,
        metadata: Mapping[str, Any] | None = None,
    ) -> int:
        """Append *events* atomically; return the stream's new version.

        If the connection breaks or the awaiting task is cancelled, the append may still
        have committed: retry it with the same NewEvent ids to find out, idempotently.
        """
        stream, expected, pending = prepare(
            self.types, stream_id, events, expected_version, metadata
        )
        db = await self._ready()
        version = await db.run_each(self._flows.append(stream, expected, pending))
        if pending:
            self._listener.signal.notify()
        return version

    async def read_stream(
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
        db = await self._ready()
        rows = await db.run_each(self._flows.read_stream(stream, start, count, backwards))
        return decode(self.types, rows)

    def read_all(
        self,
        *,
        from_position: int = 1,
        limit: int | None = None,
        types: Iterable[type | str] | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        """Iterate over every stream's events in position order, fetching a page per await."""
        start, count, names, in_sql = self._read_all_args(from_position, limit, types)
        return self._iter_all(start, count, names, in_sql)

    async def _iter_all(
        self,
        position: int,
        count: int | None,
        names: frozenset[str] | None,
        in_sql: list[str] | None,
    ) -> AsyncIterator[RecordedEvent]:
        if (names is not None and not names) or position > _MAX_INT:
            return
        while count is None or count > 0:
            db = await self._ready()
            rows = await db.run_each(self._flows.page(position, in_sql, self._size(count)))
            if not rows:
                return
            position = rows[-1][0] + 1
            if count is not None:
                count -= len(rows)
            for recorded in decode_page(self.types, rows):
                yield recorded

    def subscribe(
        self,
        *,
        from_position: int = 1,
        types: Iterable[type | str] | None = None,
        poll_interval: float = 0.5,
    ) -> AsyncLiveEvents:
        """Follow the store: every event from *from_position* on, then each new one as it commits.

        Appends from any process wake the stream within milliseconds, without a thread
        per stream; should the listening connection be down, within *poll_interval*.
        """
        return AsyncLiveEvents(
            self, from_position=from_position, types=types, poll_interval=poll_interval
        )

    async def stream_version(self, stream_id: str) -> int:
        """Return the version of a stream's last event; 0 if it has none."""
        stream = check_stream_id(stream_id)
        return await (await self._ready()).run_each(self._flows.version(stream))

    async def head_position(self) -> int:
        """Return the position of the last event in the store; 0 if it is empty."""
        return await (await self._ready()).run_each(self._flows.head())

    def streams(
        self, *, after: str | None = None, limit: int | None = None
    ) -> AsyncIterator[tuple[str, int]]:
        """Iterate over ``(stream_id, version)`` of every stream, ordered by id."""
        if after is not None:
            check_stream_id(after)
        return self._iter_streams("" if after is None else after, check_limit(limit))

    async def _iter_streams(self, after: str, count: int | None) -> AsyncIterator[tuple[str, int]]:
        while count is None or count > 0:
            db = await self._ready()
            rows = await db.run_each(self._flows.streams(after, self._size(count)))
            if not rows:
                return
            for item in rows:
                yield item
            after = rows[-1][0]
            if count is not None:
                count -= len(rows)

    async def aclose(self) -> None:
        """Close the store (and its pool, if it opened one); closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        try:
            await self._db.close()
        finally:
            self._stop_listening()

    async def __aenter__(self) -> Self:
        try:
            await self._ready()
        except BaseException:
            await self.aclose()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
