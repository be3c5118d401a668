"""PostgreSQL plumbing for every PostgreSQL store: connections, the schema, transactions, errors.

A store is given a DSN, and opens a connection pool of its own that :meth:`close` closes, or
a ``psycopg_pool`` pool, which it borrows connections from and leaves open. Every statement
is parameterized; the only names put into SQL text are the schema's and the tables', each
checked to be a plain identifier and quoted.

What a store does is written once, as a *flow*: a generator that yields each
:class:`Statement` and is sent back its rows, or has the server's error thrown into it.
:class:`Database` runs flows on psycopg's sync connections and :class:`AsyncDatabase` on its
async ones, a flow in one transaction (``run``) or each statement in one of its own
(``run_each``: no BEGIN or COMMIT round trips), so the sync and async stores share every
line of SQL and every decision.

Tables are made on first use, in one transaction under a transaction-scoped advisory lock
(so processes starting at once make them once), and registered in the schema's
``busway_schema`` table (table name, component, layout version). A table of the store's
name that is not registered as the store's, or has other columns, or was made by a later
layout, is refused with :class:`~busway.errors.StoreFormatError` and left as it was.

Whatever the server refuses leaves as a busway error naming the server, schema and table,
with psycopg's error as its cause: :class:`~busway.errors.ConnectionLostError` when the
connection broke (saying whether a write may have committed), else
:class:`~busway.errors.StoreUnavailableError` or :class:`~busway.errors.StoreLockedError`.
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import AsyncIterator, Generator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager, nullcontext
from typing import Any, Final, TypeAlias, TypeVar

import attrs
import psycopg
import psycopg.errors
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from .._sqlite import Layout
from ..errors import (
    ConnectionLostError,
    InvalidArgumentError,
    StoreFormatError,
    StoreLockedError,
    StoreUnavailableError,
)

__all__ = [
    "AsyncDatabase",
    "Database",
    "Flow",
    "Layout",
    "Rows",
    "Statement",
    "check_identifier",
    "connect_args",
    "drive",
    "quoted",
]

T = TypeVar("T")
P = TypeVar("P", ConnectionPool[Any], AsyncConnectionPool[Any])

_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SCHEMA_TABLE: Final = "busway_schema"
_SCHEMA_COLUMNS: Final = ("table_name", "component", "version")
_POOL_TIMEOUT: Final = 30.0  # seconds a call waits for a free connection of an owned pool


@attrs.frozen
class Statement:
    """One SQL statement of a flow, with its parameters (``%s`` placeholders)."""

    sql: str
    params: Sequence[object] = ()
    writes: bool = False
    """Whether it may change data: a connection lost while it runs on its own (see
    :meth:`Database.run_each`) leaves unknown whether it committed."""


Rows: TypeAlias = list[tuple[Any, ...]]
"""What a statement returns to its flow: its rows, or ``[]`` for one that returns none."""

Flow: TypeAlias = Generator[Statement, Rows, T]
"""A store's work in one transaction: it yields statements and is sent their rows."""


def check_identifier(value: object, argument: str, *, longest: int = 63) -> str:
    """Return *value* if it is a plain SQL identifier (PostgreSQL keeps up to 63 bytes)."""
    if (
        not isinstance(value, str)
        or len(value) > longest
        or not _IDENTIFIER.match(value)
        or value.lower().startswith("pg_")
        or value == _SCHEMA_TABLE
    ):
        raise InvalidArgumentError(
            argument,
            value,
            f"an SQL identifier of letters, digits and underscores (at most {longest}, not "
            f"starting with a digit or 'pg_', nor named {_SCHEMA_TABLE!r})",
        )
    return value


def quoted(schema: str, table: str) -> str:
    """Return ``"schema"."table"`` for two names :func:`check_identifier` accepted."""
    return f'"{schema}"."{table}"'


def _where(conninfo: str) -> str:
    """Name the server and database of *conninfo*, never its password."""
    try:
        info = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        return "PostgreSQL"
    host = str(info.get("host") or "localhost")
    port = str(info.get("port") or "5432")
    return f"postgresql://{host}:{port}/{info.get('dbname') or info.get('user') or ''}"


def _check_dsn(dsn: str) -> str:
    try:
        conninfo_to_dict(dsn)
    except psycopg.ProgrammingError as exc:
        raise InvalidArgumentError(
            "dsn", "<not shown>", f"a libpq connection string or postgresql:// URL ({exc})"
        ) from None
    return dsn


def connect_args(
    pool: ConnectionPool[Any] | AsyncConnectionPool[Any],
) -> tuple[str, dict[str, Any]]:
    """Return the conninfo and connection keywords *pool* connects with, to connect alike.

    A pool configured with callables (to compute them per connection) is taken to connect
    by the environment's defaults (``PG*`` variables).
    """
    conninfo = pool.conninfo if isinstance(pool.conninfo, str) else ""
    return conninfo, dict(pool.kwargs) if isinstance(pool.kwargs, dict) else {}


# -- making and checking the tables, as a flow both databases run -------------------------


def _set_up(layout: Layout, schema: str, location: str) -> Flow[None]:
    """Check the store's tables, making them (and the schema) if none is there yet."""
    try:
        if (yield from _inspect(layout, schema, location)):
            return
        found = False
    except StoreFormatError:
        # Its statements see the catalog at different moments: another process committing
        # the tables between them looks like a half-made store. Under the lock it is whole.
        found = True
    # One maker at a time per schema, for as long as this transaction lasts.
    yield Statement(
        "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (f"busway schema {schema}",)
    )
    if not found:  # with tables in it, the schema is there: a read-only session may go on
        yield Statement(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
    if (yield from _inspect(layout, schema, location)):  # another process made them meanwhile
        return
    yield Statement(
        f"CREATE TABLE IF NOT EXISTS {quoted(schema, _SCHEMA_TABLE)} (table_name TEXT PRIMARY "
        "KEY, component TEXT NOT NULL, version INTEGER NOT NULL)"
    )
    for create in layout.create:
        yield Statement(create)
    yield Statement(
        f"INSERT INTO {quoted(schema, _SCHEMA_TABLE)} (table_name, component, version) "
        "VALUES (%s, %s, %s)",
        (layout.tables[0], layout.component or layout.kind, layout.version),
    )


def _inspect(layout: Layout, schema: str, location: str) -> Flow[bool]:
    """Tell whether the store's tables are there (True) or none is yet (False); raise otherwise."""
    rows = yield Statement(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = %s ORDER BY table_name, ordinal_position",
        (schema,),
    )
    columns: dict[str, tuple[str, ...]] = {}
    for table, column in rows:
        columns[table] = (*columns.get(table, ()), column)

    def refuse(problem: str) -> StoreFormatError:
        return StoreFormatError(location, problem, kind=layout.kind)

    main = layout.tables[0]
    registered = None
    if _SCHEMA_TABLE in columns:
        if columns[_SCHEMA_TABLE] != _SCHEMA_COLUMNS:
            raise refuse(
                f"table {schema}.{_SCHEMA_TABLE} has columns "
                f"{', '.join(columns[_SCHEMA_TABLE])}, where busway expects "
                f"{', '.join(_SCHEMA_COLUMNS)}; pass another schema="
            )
        found = yield Statement(
            f"SELECT component, version FROM {quoted(schema, _SCHEMA_TABLE)} WHERE table_name = %s",
            (main,),
        )
        registered = found[0] if found else None
    if registered is None:
        taken = [t for t in layout.tables if t in columns]
        if taken:
            raise refuse(
                f"table {schema}.{taken[0]} exists but is not registered as {layout.kind}; "
                "pass another table= name or another schema="
            )
        return False
    component, version = registered
    if component != (layout.component or layout.kind):
        raise refuse(
            f"table {schema}.{main} holds a busway {component}, not {layout.kind}; pass "
            "another table= name or another schema="
        )
    if type(version) is not int or version > layout.version:
        raise refuse(
            f"it was written by a later busway (schema version {version}; this one reads up "
            f"to {layout.version}); upgrade busway to open it"
        )
    missing = [t for t in layout.tables if t not in columns]
    if missing:
        raise refuse(
            f"it is registered as {layout.kind} but table {schema}.{missing[0]} is gone; "
            "restore it from a backup, or pass another table= name"
        )
    expected = ((main, layout.columns),) if layout.columns is not None else ()
    for table, wanted in (*expected, *layout.beside):
        if columns[table] != tuple(wanted):
            raise refuse(
                f"table {schema}.{table} has columns {', '.join(columns[table])} where busway "
                f"expects {', '.join(wanted)}; pass another table= name or another schema="
            )
    return True


# -- what the server refused ---------------------------------------------------------------


def refused(  # noqa: PLR0911 - one return per kind of refusal reads best
    location: str, exc: psycopg.Error, *, committing: bool
) -> StoreUnavailableError:
    """Return the busway error for what the server (or the way to it) refused.

    *committing* tells whether the commit had been sent when it happened: a connection that
    broke then leaves the outcome unknown.
    """
    if isinstance(exc, PoolTimeout):
        return StoreUnavailableError(
            location,
            f"{exc}: no connection of the pool came free, or none could be opened; check that "
            "the server answers, or give the pool more connections (max_size=)",
        )
    if isinstance(exc, psycopg.errors.LockNotAvailable | psycopg.errors.QueryCanceled):
        return StoreLockedError(location, None)
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return StoreUnavailableError(
            location,
            f"{exc}: the role may not do this; GRANT it the rights on the schema and its "
            "tables, or connect as another role",
        )
    if isinstance(exc, psycopg.errors.DiskFull | psycopg.errors.OutOfMemory):
        return StoreUnavailableError(
            location, f"{exc}: the server ran out of room; nothing was written. Free some, retry"
        )
    if isinstance(exc, psycopg.errors.AdminShutdown | psycopg.errors.CannotConnectNow):
        return ConnectionLostError(location, str(exc), committed=None if committing else False)
    if isinstance(exc, psycopg.OperationalError) and exc.sqlstate is None:
        # No SQLSTATE: the client's side broke (a closed socket, a server gone away).
        return ConnectionLostError(location, str(exc), committed=None if committing else False)
    return StoreUnavailableError(
        location, f"{exc}: the server's error is the cause; retry once what it names is right"
    )


# -- the two databases ---------------------------------------------------------------------


def _drive(
    conn: psycopg.Connection[Any], flow: Flow[T], sent: list[Statement], *, each: bool = False
) -> T:
    """Run *flow* on *conn*: each statement it yields, its rows sent back.

    A statement the server refuses has its error thrown back into the flow, which may
    handle it (as an append does a unique violation) or let it go. *each*: every statement
    runs in a transaction of its own (for a connection not in autocommit mode). *sent*
    holds the statement last sent.
    """
    try:
        statement = next(flow)
        while True:
            sent[:] = (statement,)
            try:
                with conn.transaction() if each else nullcontext():
                    cursor = conn.execute(statement.sql, statement.params)
                    rows = cursor.fetchall() if cursor.description is not None else []
            except psycopg.Error as exc:
                statement = flow.throw(exc)
            else:
                statement = flow.send(rows)
    except StopIteration as done:
        result: T = done.value
        return result


def drive(conn: psycopg.Connection[Any], flow: Flow[T]) -> T:
    """Run *flow* on *conn*, in the transaction the caller holds open there."""
    return _drive(conn, flow, [])


async def _adrive(
    conn: psycopg.AsyncConnection[Any],
    flow: Flow[T],
    sent: list[Statement],
    *,
    each: bool = False,
) -> T:
    """Run *flow* on *conn* as :func:`_drive` does, awaiting each statement."""
    try:
        statement = next(flow)
        while True:
            sent[:] = (statement,)
            try:
                async with conn.transaction() if each else nullcontext():
                    cursor = await conn.execute(statement.sql, statement.params)
                    rows = await cursor.fetchall() if cursor.description is not None else []
            except psycopg.Error as exc:
                statement = flow.throw(exc)
            else:
                statement = flow.send(rows)
    except StopIteration as done:
        result: T = done.value
        return result


def _writing(sent: list[Statement]) -> bool:
    return bool(sent) and sent[0].writes


def _pool(dsn_or_pool: object, kind: type[P]) -> tuple[P, bool, str]:
    """Return the pool a store uses, whether it is the store's own, and what it connects to.

    Given a DSN, the store's own pool: up to 8 autocommit connections, each checked before
    it is lent, so that one the server dropped is replaced instead of failing a call.
    """
    if isinstance(dsn_or_pool, kind):
        return dsn_or_pool, False, connect_args(dsn_or_pool)[0]
    if not isinstance(dsn_or_pool, str):
        raise InvalidArgumentError(
            "dsn_or_pool", dsn_or_pool, f"a DSN (str) or a psycopg_pool.{kind.__name__}"
        )
    conninfo = _check_dsn(dsn_or_pool)
    pool = kind(
        conninfo,
        min_size=1,
        max_size=8,
        open=False,
        timeout=_POOL_TIMEOUT,
        check=kind.check_connection,
        kwargs={"autocommit": True},
        name="busway",
    )
    return pool, True, conninfo


class _Where:
    """What both databases know: the layout, the schema, and how to name where they are."""

    layout: Layout
    schema: str
    location: str
    owned: bool

    def _describe(self, conninfo: str, layout: Layout, schema: str) -> None:
        self.layout = layout
        self.schema = check_identifier(schema, "schema")
        self.location = f"{_where(conninfo)} (schema {schema}, table {layout.tables[0]})"

    def table(self, name: str) -> str:
        """Return the quoted, schema-qualified name of table *name*."""
        return quoted(self.schema, name)


class Database(_Where):
    """One store's way to the server: a pool it owns (given a DSN) or borrows (given a pool).

    The first call checks the store's tables and makes them if they are not there yet.
    """

    pool: ConnectionPool[Any]
    owned: bool

    def __init__(
        self, dsn_or_pool: str | ConnectionPool[Any], layout: Layout, *, schema: str
    ) -> None:
        self.pool, self.owned, conninfo = _pool(dsn_or_pool, ConnectionPool)
        self._describe(conninfo, layout, schema)
        self._ready = False
        self._opening = threading.Lock()

    def _open(self) -> None:
        if self.owned:
            try:
                self.pool.open(wait=True, timeout=_POOL_TIMEOUT)
            except psycopg.Error as exc:
                raise refused(self.location, exc, committing=False) from exc
        self.run(_set_up(self.layout, self.schema, self.location))
        self._ready = True

    def ready(self) -> None:
        """Check (and on first use make) the store's tables, once, whichever thread comes first."""
        if not self._ready:
            with self._opening:
                if not self._ready:
                    self._open()

    @contextmanager
    def transaction(self) -> Iterator[psycopg.Connection[Any]]:
        """Run the block in one transaction on a connection of the pool, committed on leaving.

        Whatever psycopg raises in or around the block leaves as a busway error.
        """
        committing = False
        try:
            with self.pool.connection() as conn, conn.transaction():
                yield conn
                committing = True
        except psycopg.Error as exc:
            raise refused(self.location, exc, committing=committing) from exc

    def run(self, flow: Flow[T]) -> T:
        """Run *flow* in one transaction and return what it returns."""
        with self.transaction() as conn:
            return _drive(conn, flow, [])

    def run_each(self, flow: Flow[T]) -> T:
        """Run *flow* with each statement a transaction of its own; return what it returns.

        No BEGIN or COMMIT goes to the server: a flow of one statement costs one round
        trip. On a borrowed pool whose connections are not in autocommit mode, each
        statement is wrapped in a transaction of its own.
        """
        sent: list[Statement] = []
        try:
            with self.pool.connection() as conn:
                return _drive(conn, flow, sent, each=not conn.autocommit)
        except psycopg.Error as exc:
            raise refused(self.location, exc, committing=_writing(sent)) from exc

    def close(self) -> None:
        """Close the pool if it was opened here; closing twice is harmless."""
        if self.owned:
            self.pool.close()


class AsyncDatabase(_Where):
    """:class:`Database` for asyncio, on a pool of async connections."""

    pool: AsyncConnectionPool[Any]
    owned: bool

    def __init__(
        self, dsn_or_pool: str | AsyncConnectionPool[Any], layout: Layout, *, schema: str
    ) -> None:
        self.pool, self.owned, conninfo = _pool(dsn_or_pool, AsyncConnectionPool)
        self._describe(conninfo, layout, schema)
        self._ready = False
        self._opening = asyncio.Lock()
        self._home: asyncio.AbstractEventLoop | None = None

    async def ready(self) -> None:
        """Check (and on first use make) the store's tables, once, whichever task comes first."""
        if self._ready:
            return
        async with self._opening:
            if not self._ready:
                await self._open()

    async def _open(self) -> None:
        self._home = asyncio.get_running_loop()
        if self.owned:
            try:
                await self.pool.open(wait=True, timeout=_POOL_TIMEOUT)
            except psycopg.Error as exc:
                raise refused(self.location, exc, committing=False) from exc
        await self.run(_set_up(self.layout, self.schema, self.location))
        self._ready = True

    @asynccontextmanager
    async def _connection(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """Lend a connection of the pool, or on another event loop, one made for the call.

        An asyncio pool serves the loop it was opened on; a call from a loop of another
        thread gets a connection of its own, closed afterwards, rather than a wait on the
        pool that could never end.
        """
        if asyncio.get_running_loop() is self._home:
            async with self.pool.connection() as conn:
                yield conn
        else:
            conninfo, kwargs = connect_args(self.pool)
            async with await psycopg.AsyncConnection.connect(conninfo, **kwargs) as conn:
                yield conn

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """Run the block in one transaction on a connection of the pool, committed on leaving."""
        committing = False
        try:
            async with self._connection() as conn, conn.transaction():
                yield conn
                committing = True
        except psycopg.Error as exc:
            raise refused(self.location, exc, committing=committing) from exc

    async def run(self, flow: Flow[T]) -> T:
        """Run *flow* in one transaction and return what it returns."""
        async with self.transaction() as conn:
            return await _adrive(conn, flow, [])

    async def run_each(self, flow: Flow[T]) -> T:
        """Run *flow* with each statement a transaction of its own, as in :class:`Database`."""
        sent: list[Statement] = []
        try:
            async with self._connection() as conn:
                return await _adrive(conn, flow, sent, each=not conn.autocommit)
        except psycopg.Error as exc:
            raise refused(self.location, exc, committing=_writing(sent)) from exc

    async def close(self) -> None:
        """Close the pool if it was opened here; closing twice is harmless."""
        if self.owned:
            await self.pool.close()
