"""Checkpoints in PostgreSQL: positions, fencing tokens and parked events, shared by machines.

A checkpoint transaction takes a transaction-scoped advisory lock on its name first, so
that it holds the checkpoint whether or not its row exists yet: a second transaction on the
name waits until the first one ends, then reads what it committed. The lock goes with the
transaction, also when its connection breaks, so no worker can leave one behind.

Handlers of a :class:`~busway.postgres.PostgresProjection` get the transaction's
connection. psycopg refuses ``conn.commit()`` and ``conn.rollback()`` inside the runner's
transaction; a ``COMMIT`` they execute themselves is refused at commit time by a deferred
constraint trigger on the checkpoint table, which fails while the runner's handlers run, so
PostgreSQL rolls the whole batch back, checkpoint and read model together.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC
from typing import Any, Final, final

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool

from .._closeable import Closeable
from ..errors import (
    ConnectionLostError,
    InvalidArgumentError,
    LeaseLostError,
    ProjectionError,
    StoreFormatError,
)
from ..projections import CheckpointTransaction
from ..subscriptions import ParkedEvent
from ..subscriptions._tables import (
    CHECKPOINT_COLUMNS,
    PARKED_COLUMNS,
    check_count,
    check_name,
    check_parked,
)
from ._db import Database, Flow, Layout, Statement, check_identifier, drive, quoted

__all__ = ["CheckpointRows", "PostgresCheckpointStore", "check_key", "checkpoint_layout"]

_HANDLING: Final = "busway.handling"
"""The setting that is 'on' while the runner's handlers run, which the guard refuses to commit."""


def check_key(name: object, argument: str = "name") -> str:
    """Return *name* if it can name a checkpoint or lease in PostgreSQL (its text has no NUL)."""
    name = check_name(name, argument)
    if "\x00" in name:
        raise InvalidArgumentError(argument, name, "text without NUL, which PostgreSQL refuses")
    return name


def checkpoint_layout(schema: str, table: str) -> Layout:
    """Return the layout of checkpoint table *table*, its parked table, and their guard.

    Text a parked event carries is kept as UTF-8 in ``bytea``: PostgreSQL's text cannot
    hold NUL, which stream ids, types and errors may.
    """
    t, p = quoted(schema, table), quoted(schema, f"{table}_parked")
    guard = quoted(schema, f"{table}_guard")
    return Layout(
        kind="a checkpoint store",
        tables=(table, f"{table}_parked"),
        create=(
            f"CREATE TABLE {t} (name TEXT PRIMARY KEY, "
            "position BIGINT NOT NULL CHECK (position >= 0), "
            "token BIGINT NOT NULL DEFAULT 0 CHECK (token >= 0))",
            f"""CREATE TABLE {p} (
                subscription TEXT NOT NULL,
                position BIGINT NOT NULL CHECK (position >= 1),
                stream_id BYTEA NOT NULL CHECK (octet_length(stream_id) > 0),
                version BIGINT NOT NULL CHECK (version >= 1),
                event_id BYTEA NOT NULL CHECK (octet_length(event_id) = 16),
                type BYTEA NOT NULL CHECK (octet_length(type) > 0),
                error BYTEA NOT NULL,
                attempts BIGINT NOT NULL CHECK (attempts >= 1),
                parked_at TIMESTAMPTZ NOT NULL,
                PRIMARY KEY (subscription, position)
            )""",
            f"""CREATE FUNCTION {guard}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF current_setting('{_HANDLING}', true) = 'on' THEN
                    RAISE EXCEPTION 'busway refused a COMMIT run while projection handlers '
                        'ran in the runner''s transaction; the batch is rolled back';
                END IF;
                RETURN NULL;
            END $$""",
            f"CREATE CONSTRAINT TRIGGER busway_guard AFTER INSERT OR UPDATE ON {t} "
            f"DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION {guard}()",
        ),
        columns=CHECKPOINT_COLUMNS,
        beside=((f"{table}_parked", PARKED_COLUMNS),),
        component="checkpoints",
    )


@final
class CheckpointRows:
    """What a store does with checkpoint table *table* and its parked table, as flows.

    Each flow runs in the caller's transaction; :meth:`hold` locks a name until it ends.
    """

    def __init__(self, db: Database, table: str) -> None:
        self._db = db
        self._key = f"busway checkpoint {db.schema}.{table} "
        t, p = db.table(table), db.table(f"{table}_parked")
        self._parked_table = f"{db.schema}.{table}_parked"
        self._sql_row = f"SELECT position, token FROM {t} WHERE name = %s"
        self._sql_names = f'SELECT name FROM {t} ORDER BY name COLLATE "C"'
        self._sql_save = (
            f"INSERT INTO {t} (name, position) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET position = excluded.position"
        )
        # One statement on the way that matters: it stores the token unless a higher one is.
        self._sql_fence = (
            f"INSERT INTO {t} AS c (name, position, token) VALUES (%s, 0, %s) "
            "ON CONFLICT (name) DO UPDATE SET token = excluded.token "
            "WHERE c.token <= excluded.token RETURNING 1"
        )
        columns = ", ".join(PARKED_COLUMNS)
        self._sql_park = (
            f"INSERT INTO {p} ({columns}) VALUES ({', '.join(['%s'] * len(PARKED_COLUMNS))}) "
            "ON CONFLICT (subscription, position) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in PARKED_COLUMNS[2:])
        )
        self._sql_unpark = f"DELETE FROM {p} WHERE subscription = %s AND position = %s RETURNING 1"
        utc = columns.replace("parked_at", "parked_at AT TIME ZONE 'UTC'")
        self._sql_parked = f"SELECT {utc} FROM {p} WHERE subscription = %s ORDER BY position"

    def hold(self, name: str) -> Flow[None]:
        """Lock checkpoint *name*, row or no row, until the transaction ends."""
        yield Statement(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (self._key + name,)
        )

    def _row(self, name: str) -> Flow[tuple[int, int]]:
        rows = yield Statement(self._sql_row, (check_key(name),))
        return (rows[0][0], rows[0][1]) if rows else (0, 0)

    def position(self, name: str) -> Flow[int]:
        return (yield from self._row(name))[0]

    def token(self, name: str) -> Flow[int]:
        return (yield from self._row(name))[1]

    def names(self) -> Flow[list[str]]:
        rows = yield Statement(self._sql_names)
        return [name for (name,) in rows]

    def save(self, name: str, position: int) -> Flow[None]:
        check_count("position", position, 0)
        yield Statement(self._sql_save, (check_key(name), position))

    def fence(self, name: str, token: int) -> Flow[None]:
        check_count("token", token, 0)
        if not (yield Statement(self._sql_fence, (check_key(name), token))):
            raise LeaseLostError(name, token, (yield from self.token(name)))

    def park(self, name: str, parked: ParkedEvent) -> Flow[None]:
        p = check_parked(parked, check_key(name))
        yield Statement(
            self._sql_park,
            (
                p.subscription,
                p.position,
                p.stream_id.encode(),
                p.version,
                p.event_id.bytes,
                p.type.encode(),
                p.error.encode(),
                p.attempts,
                p.parked_at,
            ),
        )

    def unpark(self, name: str, position: int) -> Flow[bool]:
        check_count("position", position, 1)
        return bool((yield Statement(self._sql_unpark, (check_key(name), position))))

    def parked(self, name: str) -> Flow[list[ParkedEvent]]:
        rows = yield Statement(self._sql_parked, (check_key(name),))
        return [self._parked_event(name, row) for row in rows]

    def _parked_event(self, name: str, row: tuple[Any, ...]) -> ParkedEvent:
        _, position, stream_id, version, event_id, type_, error, attempts, at = row

        def text(column: str, value: bytes) -> str:
            try:
                return value.decode()
            except UnicodeDecodeError:
                t = self._parked_table
                raise StoreFormatError(
                    self._db.location,
                    f"table {t} holds {value!r} as the {column} of the event {name!r} parked "
                    f"at position {position}, where busway writes UTF-8. Delete the row to "
                    f"forget the event (DELETE FROM {t} WHERE subscription = {name!r} AND "
                    f"position = {position}), or restore the table from a backup",
                    kind=self._db.layout.kind,
                ) from None

        return ParkedEvent(
            subscription=name,
            position=position,
            stream_id=text("stream_id", stream_id),
            version=version,
            event_id=uuid.UUID(bytes=bytes(event_id)),
            type=text("type", type_),
            error=text("error", error),
            attempts=attempts,
            parked_at=at.replace(tzinfo=UTC),
        )


@final
class PostgresCheckpointStore(Closeable):
    """A :class:`~busway.projections.CheckpointStore` in a table of a PostgreSQL database.

    Put it in the database of the read model it tracks: a runner then gives a
    :class:`~busway.postgres.PostgresProjection` each transaction's connection, and commits
    the projection's writes and its checkpoint together, so each event is applied exactly
    once, whatever number of workers on whatever machines run it, and across crashes.
    Given a DSN it opens (and on :meth:`close` closes) a pool of its own; given a pool, it
    borrows connections and leaves it open. Parked events are kept in a table beside,
    named after *table* with ``_parked`` added.
    """

    _holds = "checkpoints"
    table: str
    schema: str

    def __init__(
        self,
        dsn_or_pool: str | ConnectionPool[Any],
        *,
        schema: str = "public",
        table: str = "projection_checkpoints",
    ) -> None:
        # At most 56: the parked table beside takes its name and a suffix.
        self.table = t = check_identifier(table, "table", longest=56)
        self.schema = check_identifier(schema, "schema")
        self._db = Database(dsn_or_pool, checkpoint_layout(schema, t), schema=schema)
        self._rows = CheckpointRows(self._db, t)
        self._lock = threading.Lock()  # only closing takes it: the pool serves the threads

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<PostgresCheckpointStore {self._db.location}{state}>"

    def _run(self, flow: Flow[Any]) -> Any:
        self._check_open()
        self._db.ready()
        return self._db.run(flow)

    def load(self, name: str) -> int:
        """Return the position *name* has handled every event up to; 0 if none."""
        position: int = self._run(self._rows.position(name))
        return position

    def save(self, name: str, position: int) -> None:
        """Record that *name* has handled every event up to *position*."""
        with self.transaction(name) as checkpoint:
            checkpoint.save(position)

    def parked(self, name: str) -> list[ParkedEvent]:
        """Return the events parked on *name*, by position."""
        parked: list[ParkedEvent] = self._run(self._rows.parked(name))
        return parked

    def names(self) -> list[str]:
        """Return the name of every checkpoint stored, sorted."""
        names: list[str] = self._run(self._rows.names())
        return names

    def token(self, name: str) -> int:
        """Return the highest fencing token that wrote to *name*; 0 if none did."""
        token: int = self._run(self._rows.token(name))
        return token

    @contextlib.contextmanager
    def transaction(self, name: str) -> Iterator[CheckpointTransaction]:
        """Run the block in one transaction that holds checkpoint *name* until it ends.

        The read model's writes through the transaction's connection commit with it. From
        the first savepoint on, PostgreSQL refuses to commit what a handler's own
        ``COMMIT`` would (see :meth:`CheckpointTransaction.savepoint`).
        """
        name = check_key(name)
        self._check_open()
        self._db.ready()
        with self._db.transaction() as conn:
            drive(conn, self._rows.hold(name))
            checkpoint = _PostgresTransaction(conn, self._rows, name, self._db.location)
            yield checkpoint
            checkpoint.finish()

    def _release(self) -> None:
        self._db.close()


@final
class _PostgresTransaction:
    """A checkpoint of a :class:`PostgresCheckpointStore`, on the transaction's connection."""

    def __init__(
        self, conn: psycopg.Connection[Any], rows: CheckpointRows, name: str, location: str
    ) -> None:
        self.connection = conn
        self._rows = rows
        self._name = name
        self._location = location
        self._guarded = False

    def _run(self, flow: Flow[Any]) -> Any:
        return drive(self.connection, flow)

    def load(self) -> int:
        position: int = self._run(self._rows.position(self._name))
        return position

    def save(self, position: int) -> None:
        self._run(self._rows.save(self._name, position))

    def fence(self, token: int) -> None:
        self._run(self._rows.fence(self._name, token))

    def park(self, parked: ParkedEvent) -> None:
        self._run(self._rows.park(self._name, parked))

    def unpark(self, position: int) -> bool:
        unparked: bool = self._run(self._rows.unpark(self._name, position))
        return unparked

    def _guard(self, on: bool) -> None:
        # Set in the transaction, not the savepoint, whose rollback would undo it.
        self.connection.execute(
            "SELECT set_config(%s, %s, true)", (_HANDLING, "on" if on else "off")
        )
        self._guarded = on

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        if not self._guarded:
            self._guard(True)
        try:
            with self.connection.transaction():
                yield
        except BaseException as exc:
            self._check_connection(exc)
            problem = self._problem()
            if problem is None:  # what the block raised, its savepoint undone
                raise
            raise ProjectionError(self._name, problem) from exc
        self.check()

    def check(self) -> None:
        self._check_connection(None)
        problem = self._problem()
        if problem is not None:
            raise ProjectionError(self._name, problem)

    def finish(self) -> None:
        """Let the transaction commit, as the runner ends it."""
        if self._guarded:
            self._guard(False)

    def _check_connection(self, cause: BaseException | None) -> None:
        """Raise :class:`~busway.errors.ConnectionLostError` if the way to the server broke.

        No handler did that, and the batch may be tried again on another connection.
        """
        if self.connection.broken:
            raise ConnectionLostError(
                self._location,
                "the connection broke while the handlers ran; nothing of the batch was committed",
                committed=False,
            ) from cause

    def _problem(self) -> str | None:
        """Say how a handler broke the transaction, or return None if it is whole."""
        conn = self.connection
        if conn.closed:
            return (
                "has a handler that closed the runner's connection, which rolled back its "
                "transaction: fix the handler; it writes through the connection it gets and "
                "never commits, rolls back or closes it"
            )
        status = conn.info.transaction_status
        if status == TransactionStatus.INTRANS:
            return None
        if status == TransactionStatus.INERROR:
            return (
                "has a handler that went on after PostgreSQL refused one of its statements, "
                "which aborted the runner's transaction: let handlers raise what psycopg "
                "raises (or use a savepoint, conn.transaction(), around what may fail)"
            )
        return (
            "has a handler that ended the runner's transaction with a COMMIT or ROLLBACK of "
            "its own (busway refuses such a COMMIT, and PostgreSQL rolls the batch back). "
            "Whatever the handler wrote after it was committed on its own, without the "
            "checkpoint: fix the handler, which never commits, rolls back or closes the "
            "connection it gets, then rebuild the projection if it wrote on"
        )
