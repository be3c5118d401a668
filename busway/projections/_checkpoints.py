"""Checkpoints: how far each projection has got in the store's global order of positions.

A checkpoint ``p`` says every event at a position up to ``p`` has been handled, so the
projection goes on at ``p + 1``. A runner works in a store's transactions
(:meth:`CheckpointStore.transaction`): it reads the checkpoint, hands the read model the
transaction's connection, and saves the new position, all committed together. The SQLite
store keeps its table in the read model's database, so that the transaction holds both.

Beside its position, a checkpoint keeps the highest fencing token of the leases that wrote
it, so that a worker whose lease was taken over cannot write any more, and the events its
subscription parked after their handlers kept failing.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager
from typing import Protocol, final, runtime_checkable

from .._closeable import Closeable
from .._sqlite import Database, Layout, SQLiteStore, check_table
from ..errors import ProjectionError
from ..subscriptions import ParkedEvent
from ..subscriptions._tables import (
    CHECKPOINT_COLUMNS,
    PARKED_COLUMNS,
    MemoryCheckpoints,
    SQLiteCheckpoints,
    check_name,
    checkpoint_tables,
)

__all__ = [
    "CheckpointStore",
    "CheckpointTransaction",
    "InMemoryCheckpointStore",
    "SQLiteCheckpointStore",
]


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

    def fence(self, token: int) -> None:
        """Refuse to go on if a worker with a later lease wrote here; else keep *token*.

        Raise :class:`~busway.errors.LeaseLostError` if the stored fencing token is higher
        than *token* (an int of 0 or more; 0: no lease); otherwise store the higher of the
        two, so that from this commit on, writers with an earlier token are refused. Call
        it before the handlers run.
        """
        ...

    def park(self, parked: ParkedEvent) -> None:
        """Set *parked* aside on this checkpoint, when this commits.

        Parked events are keyed by position: parking one again replaces it. Its
        ``subscription`` must be this checkpoint's name.
        """
        ...

    def unpark(self, position: int) -> bool:
        """Remove the event parked at *position*, when this commits; return whether one was."""
        ...

    def savepoint(self) -> AbstractContextManager[None]:
        """Run the block in a nested transaction: if it raises, only its writes are undone.

        The runner runs an :class:`~busway.projections.SQLiteProjection`'s batch in one: if
        a handler raises, the savepoint undoes the batch, and the runner handles the events
        before the failing one again in another. A projection in memory, which nothing
        undoes, gets one savepoint an event. Raise :class:`~busway.errors.ProjectionError`
        if the transaction can no longer be trusted (the block committed, rolled back or
        closed the connection, or tried to): the runner then saves nothing more and leaves
        the transaction with that error, so that the store undoes the whole batch. What the
        block itself raised passes through.
        """
        ...

    def check(self) -> None:
        """Raise :class:`~busway.errors.ProjectionError` if the transaction is not whole.

        The test :meth:`savepoint` makes on leaving, made inside one: the runner calls
        it after each event of a batch, so that it stops at the event whose handler ended
        the transaction, or tried to, before the next one writes. It runs once an event, so
        it must be cheap; where no handler can end the transaction, it does nothing.
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

    def parked(self, name: str) -> list[ParkedEvent]:
        """Return the events parked on *name*, by position."""
        ...

    def names(self) -> list[str]:
        """Return the name of every checkpoint stored, sorted."""
        ...

    def token(self, name: str) -> int:
        """Return the highest fencing token that wrote to *name*; 0 if none did."""
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
        self._rows = MemoryCheckpoints()

    def __repr__(self) -> str:
        return f"<InMemoryCheckpointStore {self._rows.positions()!r}>"

    @contextlib.contextmanager
    def _open(self) -> Iterator[MemoryCheckpoints]:
        with self._lock:
            self._check_open()
            yield self._rows

    def load(self, name: str) -> int:
        """Return the position *name* has handled every event up to; 0 if none."""
        with self._open() as rows:
            return rows.position(name)

    def save(self, name: str, position: int) -> None:
        """Record that *name* has handled every event up to *position*."""
        with self._open() as rows:
            rows.save(name, position)

    def parked(self, name: str) -> list[ParkedEvent]:
        """Return the events parked on *name*, by position."""
        with self._open() as rows:
            return rows.parked(name)

    def names(self) -> list[str]:
        """Return the name of every checkpoint stored, sorted."""
        with self._open() as rows:
            return rows.names()

    def token(self, name: str) -> int:
        """Return the highest fencing token that wrote to *name*; 0 if none did."""
        with self._open() as rows:
            return rows.token(name)

    @contextlib.contextmanager
    def transaction(self, name: str) -> Iterator[CheckpointTransaction]:
        """Hold off every other transaction and save until the block ends.

        Each save, fence and parking is kept at once: nothing in memory can be undone.
        """
        with self._open():
            yield _InMemoryTransaction(self, check_name(name))

    def _release(self) -> None:
        self._rows = MemoryCheckpoints()  # nothing can read them any more


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

    def fence(self, token: int) -> None:
        with self._store._open() as rows:
            rows.fence(self._name, token)

    def park(self, parked: ParkedEvent) -> None:
        with self._store._open() as rows:
            rows.park(self._name, parked)

    def unpark(self, position: int) -> bool:
        with self._store._open() as rows:
            return rows.unpark(self._name, position)

    def savepoint(self) -> AbstractContextManager[None]:
        return contextlib.nullcontext()

    def check(self) -> None:
        pass  # nothing a handler does ends a transaction in memory


@final
class SQLiteCheckpointStore(SQLiteStore):
    """A :class:`CheckpointStore` in a table of an SQLite database.

    Put it in the database of the read model it tracks: a runner then gives an
    :class:`~busway.projections.SQLiteProjection` this store's connection, and commits the
    projection's writes and its checkpoint together, so each event is applied exactly once,
    even across crashes. Given a path it opens (and on :meth:`close` closes) its own
    connection; given a connection, it uses it and leaves it open. While a batch's handlers
    run, it sets an SQLite authorizer on the connection (replacing any set before, and
    removed after), so that no handler can commit or roll back the batch. Parked events
    are kept in a table beside, named after *table* with ``_parked`` added.
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
        # At most 56: the parked table beside takes its name and a suffix.
        self.table = t = check_table(table, longest=56)
        parked = f"{t}_parked"
        layout = Layout(
            kind="a checkpoint store",
            tables=(t, parked),
            create=checkpoint_tables(t, parked),
            columns=CHECKPOINT_COLUMNS,
            beside=((parked, PARKED_COLUMNS),),
        )
        super().__init__(Database(path_or_connection, layout, timeout=timeout))
        self._rows = SQLiteCheckpoints(
            self._db, t, parked, advice="delete the row and rebuild the projection"
        )

    @contextlib.contextmanager
    def _open(self) -> Iterator[SQLiteCheckpoints]:
        with self._lock:
            self._check_open()
            yield self._rows

    def load(self, name: str) -> int:
        """Return the position *name* has handled every event up to; 0 if none."""
        with self._open() as rows:
            return rows.position(name)

    def save(self, name: str, position: int) -> None:
        """Record that *name* has handled every event up to *position*."""
        with self.transaction(name) as checkpoint:
            checkpoint.save(position)

    def parked(self, name: str) -> list[ParkedEvent]:
        """Return the events parked on *name*, by position."""
        with self._open() as rows:
            return rows.parked(name)

    def names(self) -> list[str]:
        """Return the name of every checkpoint stored, sorted."""
        with self._open() as rows:
            return rows.names()

    def token(self, name: str) -> int:
        """Return the highest fencing token that wrote to *name*; 0 if none did."""
        with self._open() as rows:
            return rows.token(name)

    @contextlib.contextmanager
    def transaction(self, name: str) -> Iterator[CheckpointTransaction]:
        """Run the block in a write transaction that the read model's writes join.

        ``BEGIN IMMEDIATE`` takes the database's write lock first, so the position read
        inside stays true until the commit, for every thread and process. On a given
        connection already in a transaction, the block is a savepoint of that one. From
        the first savepoint on, SQLite refuses what would end the transaction early (see
        :meth:`CheckpointTransaction.savepoint`).
        """
        with self._open() as rows:
            transaction = _SQLiteTransaction(self._db, rows, check_name(name))
            try:
                with self._db.transaction():
                    try:
                        yield transaction
                    finally:
                        transaction.finish()
            finally:
                if transaction.closed:  # by a handler: nothing can use this store any more
                    self.close()


@final
class _SQLiteTransaction:
    """A checkpoint of an :class:`SQLiteCheckpointStore`, on the store's connection.

    From its first savepoint to its end, an authorizer on the connection makes SQLite refuse
    what would end the transaction before the checkpoint is saved: ``BEGIN``, ``COMMIT``
    and ``ROLLBACK`` (so ``conn.commit()``, ``conn.rollback()`` and ``executescript()``),
    and, while a handler runs, a release or rollback of a savepoint it did not open. SQLite
    still rolls the transaction back by itself on some errors, and a handler may close the
    connection, which rolls it back too: :meth:`savepoint` and :meth:`check` look for it.
    """

    closed = False
    """Whether a handler closed the connection."""

    def __init__(self, db: Database, rows: SQLiteCheckpoints, name: str) -> None:
        self._db = db
        self._rows = rows
        self._name = name
        self.connection: sqlite3.Connection = db.conn
        self._guarded = False  # whether the authorizer is on the connection, to take it off
        self._armed = False  # whether it was set since the runner last prepared a rollback
        self._handling = False
        self._opened: set[str] = set()  # savepoints the handlers opened, which they may end
        self._refused: str | None = None

    def load(self) -> int:
        return self._rows.position(self._name)

    def save(self, position: int) -> None:
        self._rows.save(self._name, position)

    def fence(self, token: int) -> None:
        self._rows.fence(self._name, token)

    def park(self, parked: ParkedEvent) -> None:
        self._rows.park(self._name, parked)

    def unpark(self, position: int) -> bool:
        return self._rows.unpark(self._name, position)

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        # Refusing beats repairing: once a handler has committed part of an event, no
        # checkpoint describes the read model (the event is neither applied nor not), so
        # the commit must not happen at all. The authorizer is set once per transaction,
        # not per event, because setting one makes SQLite prepare every statement again;
        # it refuses BEGIN, COMMIT and ROLLBACK throughout, as none of them is the runner's
        # until the transaction ends, so that no statement prepared in between slips by.
        if not self._armed:
            self.connection.set_authorizer(self._authorize)
            self._armed = self._guarded = True
        raised: BaseException | None = None
        try:
            with self._db.transaction():
                self._handling = True
                try:
                    yield
                except BaseException as exc:
                    raised = exc
                    raise
                finally:
                    self._handling = False
        except BaseException as exc:
            # The ROLLBACK TO and RELEASE just run stay prepared, as allowed to the runner:
            # a handler of a later savepoint running the same text would be handed them
            # without the authorizer being asked. Setting it again at the next savepoint
            # has SQLite prepare every statement anew, and ask.
            self._armed = False
            problem = self._problem()
            if problem is None and exc is not raised:  # the savepoint's own statement failed
                problem = (
                    f"lost the runner's savepoint ({type(exc).__name__}: {exc}); a handler "
                    "may RELEASE or ROLLBACK TO only the savepoints it opens"
                )
            if problem is None:
                raise
            raise ProjectionError(self._name, problem) from exc
        self.check()

    def check(self) -> None:
        problem = self._problem()
        if problem is not None:
            raise ProjectionError(self._name, problem)

    def finish(self) -> None:
        """Let the connection take every statement again, as the transaction ends."""
        if self._guarded and not self.closed:
            self.connection.set_authorizer(None)

    def _authorize(
        self,
        action: int,
        arg1: str | None,
        arg2: str | None,
        database: str | None,
        trigger: str | None,
    ) -> int:
        if action == sqlite3.SQLITE_SAVEPOINT and self._handling:
            name = (arg2 or "").casefold()  # SQLite's savepoint names ignore case
            if arg1 == "BEGIN":
                self._opened.add(name)
            if arg1 == "BEGIN" or name in self._opened:
                return sqlite3.SQLITE_OK
            refused = f"{arg1} savepoint {arg2!r}, which it did not open"
        elif action == sqlite3.SQLITE_TRANSACTION:
            refused = f"{arg1} the runner's transaction"
        else:
            return sqlite3.SQLITE_OK
        self._refused = self._refused or refused  # the first says what went wrong
        return sqlite3.SQLITE_DENY

    def _problem(self) -> str | None:
        """Say how a handler broke the transaction, or return None if it is whole."""
        if self._refused is not None:
            return (
                f"has a handler that tried to {self._refused}, which SQLite refused: fix the "
                "handler; it writes through the connection it gets and never commits, rolls "
                "back or closes it (nor calls executescript(), which commits first), so that "
                "the runner commits its writes with the checkpoint"
            )
        try:
            if self.connection.in_transaction:
                return None
        except sqlite3.ProgrammingError:
            self.closed = True
            return (
                "has a handler that closed the runner's connection, which rolled back its "
                "transaction, and the checkpoint store is closed with it: fix the handler, "
                "then open a new SQLiteCheckpointStore and a new runner to go on"
            )
        return (
            "lost the runner's transaction in a handler: SQLite rolled it back, as it does "
            "on some errors (an interrupt, a full disk). If the handler carried on past that "
            "error, the writes it made after it were committed on their own, without the "
            "checkpoint: let handlers raise what SQLite raises, or rebuild the projection"
        )
