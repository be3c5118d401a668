"""Checkpoints in PostgreSQL: positions, fencing tokens and parked events, shared by machines.

The store keeps the checkpoint tables that every PostgreSQL store following the log keeps
(``PostgresCheckpoints``), made with their guard. A checkpoint transaction first holds its
checkpoint: a second transaction on the name waits until the first one ends, then reads
what it committed.

Handlers of a :class:`~busway.postgres.PostgresProjection` get the transaction's
connection. psycopg refuses ``conn.commit()`` and ``conn.rollback()`` inside the runner's
transaction; a ``COMMIT`` they execute themselves is refused at commit time by a deferred
constraint trigger on the checkpoint table, which fails while the runner's handlers run, so
PostgreSQL rolls the whole batch back, checkpoint and read model together.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, TypeVar, final

import psycopg
from psycopg.pq import TransactionStatus
from psycopg_pool import ConnectionPool

from ..errors import ConnectionLostError, ProjectionError
from ..projections import CheckpointTransaction
from ..subscriptions import ParkedEvent
from ..subscriptions._tables import CHECKPOINT_COLUMNS, PARKED_COLUMNS
from ._db import Database, Flow, Layout, check_identifier, drive
from ._store import PostgresStore
from ._tables import PostgresCheckpoints, check_key, checkpoint_tables

__all__ = ["PostgresCheckpointStore"]

T = TypeVar("T")


def _layout(schema: str, table: str) -> Layout:
    parked = f"{table}_parked"
    return Layout(
        kind="a checkpoint store",
        tables=(table, parked),
        create=checkpoint_tables(schema, table, parked, guarded=True),
        columns=CHECKPOINT_COLUMNS,
        beside=((parked, PARKED_COLUMNS),),
        component="checkpoints",
    )


@final
class PostgresCheckpointStore(PostgresStore):
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
        super().__init__(Database(dsn_or_pool, _layout(schema, t), schema=schema))
        self._rows = PostgresCheckpoints(self._db, t, f"{t}_parked")

    def load(self, name: str) -> int:
        """Return the position *name* has handled every event up to; 0 if none."""
        return self._run(self._rows.position(name))

    def save(self, name: str, position: int) -> None:
        """Record that *name* has handled every event up to *position*."""
        with self.transaction(name) as checkpoint:
            checkpoint.save(position)

    def parked(self, name: str) -> list[ParkedEvent]:
        """Return the events parked on *name*, by position."""
        return self._run(self._rows.parked(name))

    def names(self) -> list[str]:
        """Return the name of every checkpoint stored, sorted."""
        return self._run(self._rows.names())

    def token(self, name: str) -> int:
        """Return the highest fencing token that wrote to *name*; 0 if none did."""
        return self._run(self._rows.token(name))

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


@final
class _PostgresTransaction:
    """A checkpoint of a :class:`PostgresCheckpointStore`, on the transaction's connection."""

    def __init__(
        self, conn: psycopg.Connection[Any], rows: PostgresCheckpoints, name: str, location: str
    ) -> None:
        self.connection = conn
        self._rows = rows
        self._name = name
        self._location = location
        self._guarded = False

    def _run(self, flow: Flow[T]) -> T:
        return drive(self.connection, flow)

    def load(self) -> int:
        return self._run(self._rows.position(self._name))

    def save(self, position: int) -> None:
        self._run(self._rows.save(self._name, position))

    def fence(self, token: int) -> None:
        self._run(self._rows.fence(self._name, token))

    def park(self, parked: ParkedEvent) -> None:
        self._run(self._rows.park(self._name, parked))

    def unpark(self, position: int) -> bool:
        return self._run(self._rows.unpark(self._name, position))

    def _guard(self, on: bool) -> None:
        self._run(self._rows.guard(on))
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
