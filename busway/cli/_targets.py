"""Opening what the command looks at: SQLite files and PostgreSQL schemas, read-only if it can.

A path that does not exist is refused before SQLite would create it, and a file or schema
without a busway event store is refused before any store could make its tables there.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import attrs

from ..errors import StoreFormatError, StoreUnavailableError
from ..eventstore import EventStore, EventTypes, SQLiteEventStore
from ..projections import CheckpointStore, SQLiteCheckpointStore
from ..sagas import SagaStore, SQLiteSagaStore
from ..subscriptions import LeaseStore, SQLiteLeaseStore
from ._exit import NO_STORE, Failure

if TYPE_CHECKING:
    import psycopg

_POSTGRES = ("postgresql://", "postgres://")


class _Closable(Protocol):
    def close(self) -> None: ...


S = TypeVar("S", bound=_Closable)


def is_dsn(location: str) -> bool:
    """Tell whether *location* names a PostgreSQL server rather than an SQLite file."""
    return location.startswith(_POSTGRES) or ("=" in location and not os.path.exists(location))


@attrs.frozen
class Target:
    """Where the stores are, and the names of their tables."""

    location: str
    types: EventTypes
    schema: str = "public"
    events: str = "events"
    checkpoints: str = "projection_checkpoints"
    leases: str = "subscription_leases"
    checkpoints_at: str | None = None
    """Where the checkpoints, sagas and leases are, if not beside the events."""
    sagas: str = "sagas"

    @property
    def postgres(self) -> bool:
        """Whether the events are in PostgreSQL."""
        return is_dsn(self.location)

    @property
    def subscriptions(self) -> str:
        """Where the checkpoint, saga and lease stores are."""
        return self.checkpoints_at or self.location

    # -- event store -----------------------------------------------------------------------

    @contextlib.contextmanager
    def event_store(self, *, writable: bool = False) -> Iterator[EventStore]:
        """Open the event store: read-only unless *writable* (it must exist either way)."""
        if self.postgres:
            from ..postgres import PostgresEventStore

            self._check_table(self.location, self.events, "event store")
            dsn = self.location if writable else read_only(self.location)
            with PostgresEventStore(
                dsn, types=self.types, schema=self.schema, table=self.events
            ) as pg:
                yield pg
            return
        path = existing(self.location)
        with _sqlite(path) as conn:
            try:
                store = SQLiteEventStore(conn, types=self.types, table=self.events)
            except StoreFormatError as exc:
                raise Failure(NO_STORE, f"{path}: {exc.problem}") from exc
            except StoreUnavailableError as exc:  # its tables are missing: it tried to make them
                raise Failure(
                    NO_STORE,
                    f"{path} holds no busway event store in table {self.events!r}; check the "
                    "path, or name the table with --events-table",
                ) from exc
            if not writable:
                with store:
                    yield store
                return
            store.close()
        with SQLiteEventStore(path, types=self.types, table=self.events) as store:
            yield store

    def size(self) -> int:
        """Return the bytes the events take: the files, or the table with its indexes."""
        if not self.postgres:
            path = Path(self.location)
            return sum(
                p.stat().st_size for p in (path, path.with_name(f"{path.name}-wal")) if p.exists()
            )
        with self._connect(self.location) as conn:
            row = conn.execute(
                "SELECT pg_total_relation_size(%s::regclass)", (self._qualified(conn, self.events),)
            ).fetchone()
        return int(row[0]) if row else 0

    # -- subscriptions ---------------------------------------------------------------------

    @contextlib.contextmanager
    def checkpoint_store(self, *, writable: bool = False) -> Iterator[CheckpointStore | None]:
        """Open the checkpoint store; None if there is none and *writable* is false."""
        where = self.subscriptions
        if is_dsn(where):
            from ..postgres import PostgresCheckpointStore

            if not writable and not self._exists(where, self.checkpoints):
                yield None
                return
            dsn = where if writable else read_only(where)
            with PostgresCheckpointStore(dsn, schema=self.schema, table=self.checkpoints) as pg:
                yield pg
            return
        path = existing(where)
        if writable:
            with SQLiteCheckpointStore(path, table=self.checkpoints) as store:
                yield store
            return
        with _sqlite(path) as conn:
            try:
                store = SQLiteCheckpointStore(conn, table=self.checkpoints)
            except StoreUnavailableError:  # no table, which a read-only file cannot get
                yield None
                return
            with store:
                yield store

    def lease_store(
        self, *, writable: bool = False
    ) -> contextlib.AbstractContextManager[LeaseStore | None]:
        """Open the lease store, read-only unless *writable*; None if there is none."""

        def postgres(dsn: str) -> LeaseStore:
            from ..postgres import PostgresLeaseStore

            return PostgresLeaseStore(dsn, schema=self.schema, table=self.leases)

        return self._store(
            self.leases,
            postgres,
            lambda where: SQLiteLeaseStore(where, table=self.leases),
            writable=writable,
        )

    def saga_store(
        self, *, writable: bool = False
    ) -> contextlib.AbstractContextManager[SagaStore | None]:
        """Open the saga store, read-only unless *writable*; None if there is none."""

        def postgres(dsn: str) -> SagaStore:
            from ..postgres import PostgresSagaStore

            return PostgresSagaStore(dsn, schema=self.schema, table=self.sagas)

        return self._store(
            self.sagas,
            postgres,
            lambda where: SQLiteSagaStore(where, table=self.sagas),
            writable=writable,
        )

    @contextlib.contextmanager
    def _store(
        self,
        table: str,
        postgres: Callable[[str], S],
        sqlite: Callable[[sqlite3.Connection | Path], S],
        *,
        writable: bool,
    ) -> Iterator[S | None]:
        """Open a store beside the subscriptions, read-only unless *writable*; None if none."""
        where = self.subscriptions
        if is_dsn(where):
            if not self._exists(where, table):
                yield None
                return
            with contextlib.closing(postgres(where if writable else read_only(where))) as pg:
                yield pg
            return
        path = existing(where)
        with _sqlite(path) as conn:
            try:
                store = sqlite(conn)
            except StoreUnavailableError:  # no table, which a read-only file cannot get
                yield None
                return
            with contextlib.closing(store):
                if not writable:
                    yield store
                    return
        with contextlib.closing(sqlite(path)) as store:
            yield store

    # -- PostgreSQL ------------------------------------------------------------------------

    def _check_table(self, dsn: str, table: str, kind: str) -> None:
        if not self._exists(dsn, table):
            raise Failure(
                NO_STORE,
                f"schema {self.schema!r} holds no busway {kind} in table {table!r}; "
                "check --schema and the table option",
            )

    def _exists(self, dsn: str, table: str) -> bool:
        with self._connect(dsn) as conn:
            row = conn.execute(
                "SELECT to_regclass(%s) IS NOT NULL", (self._qualified(conn, table),)
            ).fetchone()
        return bool(row and row[0])

    def _qualified(self, conn: psycopg.Connection[Any], table: str) -> str:
        from psycopg import sql

        return sql.Identifier(self.schema, table).as_string(conn)

    @staticmethod
    def _connect(dsn: str) -> psycopg.Connection[Any]:
        import psycopg

        try:
            return psycopg.connect(read_only(dsn), connect_timeout=10)
        except psycopg.Error as exc:
            raise StoreUnavailableError(
                "PostgreSQL",
                f"the server at the DSN given refused ({str(exc).strip()}); "
                "check the DSN and that the server runs",
            ) from exc


def read_only(dsn: str) -> str:
    """Return *dsn* with every transaction of its sessions read-only."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    options = str(conninfo_to_dict(dsn).get("options") or "")
    return make_conninfo(dsn, options=f"{options} -c default_transaction_read_only=on".strip())


def existing(location: str) -> Path:
    """Return *location* as a path, if a file is there (SQLite would create a missing one)."""
    path = Path(location)
    if not path.is_file():
        what = "is not a file" if path.exists() else "does not exist"
        raise Failure(NO_STORE, f"{location} {what}; give the path of an SQLite event store")
    return path


@contextlib.contextmanager
def _sqlite(path: Path) -> Iterator[sqlite3.Connection]:
    """Open *path* read-only: no store on it can create a table or change a byte."""
    conn = sqlite3.connect(
        f"{path.resolve().as_uri()}?mode=ro",
        uri=True,
        isolation_level=None,
        check_same_thread=False,
    )
    try:
        yield conn
    finally:
        conn.close()
