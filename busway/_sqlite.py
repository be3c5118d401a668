"""SQLite plumbing for every SQLite store: its connection, the checks before use, transactions.

A store opens its own connection to a path (autocommit mode, so that transactions are
explicit; WAL, so that readers never block the writer) or borrows one it is given and
leaves it open. It looks before it touches: a file that is not a database, or that holds a
table of the store's name that is not the store's, is refused and left as it was.

The event and saga stores register their main table in ``busway_schema`` (table name,
component, layout version), so that a table of another component or of a later layout is
refused; the snapshot and checkpoint stores are known by their tables' columns alone.

Whatever SQLite refuses leaves as a busway error naming the file, with SQLite's error as its
cause. Opening waits for other connections up to the store's timeout, also where SQLite
itself would give up at once: the switch of a new file to WAL, and a lock that SQLite will
not wait for lest two connections wait on each other.
"""

from __future__ import annotations

import os
import random
import re
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from types import TracebackType
from typing import Final, Literal

import attrs

from ._closeable import Closeable
from .errors import (
    InvalidArgumentError,
    StoreFormatError,
    StoreLockedError,
    StoreUnavailableError,
)

__all__ = ["Database", "Layout", "SQLiteStore", "Synchronous", "check_table", "stored_position"]

Synchronous = Literal["extra", "full", "normal", "off"]
"""SQLite's ``PRAGMA synchronous``: how hard a commit insists that data reached the disk."""

_SYNCHRONOUS: Final = ("extra", "full", "normal", "off")
_SCHEMA_TABLE: Final = "busway_schema"
_SCHEMA_COLUMNS: Final = ("table_name", "component", "version")
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_BUSY: Final = frozenset({sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED})
_NOT_A_DATABASE: Final = frozenset({sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_CORRUPT})
_LONGEST_PAUSE: Final = 0.05  # seconds between tries to open a database others hold
_LONGEST_TIMEOUT: Final = 2_000_000  # seconds: SQLite counts its busy timeout in an int of ms


def check_table(table: object, *, longest: int = 63) -> str:
    """Return *table* if it is a plain SQL identifier that may be put into a statement."""
    if (
        not isinstance(table, str)
        or len(table) > longest
        or not _TABLE_NAME.match(table)
        or table.lower().startswith("sqlite_")
        or table.lower() == _SCHEMA_TABLE
    ):
        raise InvalidArgumentError(
            "table",
            table,
            f"an SQL identifier of letters, digits and underscores (at most {longest}, not "
            f"starting with a digit or 'sqlite_', nor named {_SCHEMA_TABLE!r})",
        )
    return table


def _primary_code(exc: sqlite3.Error) -> int | None:
    """Return SQLite's primary result code for *exc*; None for the sqlite3 module's own."""
    code: int | None = getattr(exc, "sqlite_errorcode", None)
    return None if code is None else code & 0xFF  # the low byte of an extended code


def _in_transaction(conn: sqlite3.Connection) -> bool:
    # A call, so that the type checker reads the flag afresh instead of the value seen last.
    try:
        return conn.in_transaction
    except sqlite3.ProgrammingError:  # closed, which rolled back what was open
        return False


@attrs.frozen
class Layout:
    """What a store keeps in a database, and how to tell that a table there is its own."""

    kind: str
    """What the store is, for errors: ``"an event store"``."""
    tables: tuple[str, ...]
    """Every table the store makes, its main one first."""
    create: tuple[str, ...]
    """The statements that make them, run in one transaction."""
    columns: tuple[str, ...] | None = None
    """The main table's columns, checked when it is opened; None: not checked."""
    beside: tuple[tuple[str, tuple[str, ...]], ...] = ()
    """The columns of other tables of the store, as ``(table, columns)``, checked likewise."""
    component: str | None = None
    """Its name in ``busway_schema``; None: the main table is not registered there."""
    version: int = 1
    """The layout's version in ``busway_schema``: a later one is refused."""


class Database:
    """One store's connection, checked and set up: opened on a path (owned) or given (borrowed).

    Given a path, the connection runs in WAL mode with ``synchronous`` (default ``"full"``:
    a commit survives a power cut), waits up to *timeout* seconds for other connections'
    locks in every statement, and is closed by :meth:`close`; given a connection, it is used
    as configured (``synchronous`` is applied if given) and left open. Opening waits up to
    *timeout* seconds in all, whichever step SQLite refuses while others hold the file.
    """

    path: Path | None
    location: str
    owned: bool
    conn: sqlite3.Connection

    def __init__(
        self,
        path_or_connection: str | os.PathLike[str] | sqlite3.Connection,
        layout: Layout,
        *,
        timeout: float,
        synchronous: Synchronous | None = None,
    ) -> None:
        if synchronous is not None and synchronous not in _SYNCHRONOUS:
            raise InvalidArgumentError(
                "synchronous", synchronous, "one of 'extra', 'full', 'normal', 'off'"
            )
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, int | float)
            or not 0 <= timeout < _LONGEST_TIMEOUT
        ):
            raise InvalidArgumentError(
                "timeout", timeout, f"a number of seconds from 0 to {_LONGEST_TIMEOUT:,}"
            )
        self.layout = layout
        self.timeout = timeout
        table = layout.tables[0]
        if isinstance(path_or_connection, sqlite3.Connection):
            self.path = None
            self.location = f"the connection given for table {table!r}"
            self.owned = False
            self.conn = path_or_connection
        else:
            name = os.fspath(path_or_connection)
            self.path = None if name == ":memory:" else Path(name)
            self.location = f"{name} (table {table!r})"
            self.owned = True
            try:
                self.conn = sqlite3.connect(
                    name, timeout=timeout, isolation_level=None, check_same_thread=False
                )
            except sqlite3.Error as exc:
                raise self.refused(exc) from exc
            synchronous = synchronous or "full"
        try:
            self._open(synchronous)
        except BaseException:
            self.close()
            raise

    def _open(self, synchronous: Synchronous | None) -> None:
        """Set the database up, trying again while others hold it, until the timeout is up."""
        deadline = time.monotonic() + self.timeout
        pause = 0.001
        while True:
            try:
                if self.owned:  # no single try may wait past the deadline
                    self._wait_at_most(deadline - time.monotonic())
                self._set_up(synchronous)
                if self.owned:
                    self._wait_at_most(self.timeout)
                return
            except sqlite3.Error as exc:
                # In the caller's transaction waiting cannot help: it keeps what it has read.
                if (
                    _primary_code(exc) not in _BUSY
                    or _in_transaction(self.conn)
                    or time.monotonic() >= deadline
                ):
                    raise self.refused(exc, waited=self.timeout) from exc
            # Random pauses, so that processes opening one file at once do not retry in step.
            time.sleep(max(0.0, min(random.uniform(pause / 2, pause), deadline - time.monotonic())))
            pause = min(2 * pause, _LONGEST_PAUSE)

    def _wait_at_most(self, seconds: float) -> None:
        """Let each statement wait up to *seconds* for other connections' locks."""
        self.conn.execute(f"PRAGMA busy_timeout = {max(0, round(seconds * 1000))}")

    def _set_up(self, synchronous: Synchronous | None) -> None:
        # Look before touching anything: a file that is not the store's must stay as it was.
        # One read, so that tables another process makes meanwhile are seen whole or not at all.
        with self._reading():
            ready = self._inspect()
        if self.owned:
            self.conn.execute("PRAGMA journal_mode = WAL")
        if synchronous is not None:
            self.conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")
        if not ready:
            with self.transaction():
                if not self._inspect():  # another process may have just made the tables
                    self._create()

    @contextmanager
    def _reading(self) -> Iterator[None]:
        """Run the block in one read transaction: the caller's, if one is open."""
        conn = self.conn
        if conn.in_transaction:
            yield
            return
        conn.execute("BEGIN")
        try:
            yield
        finally:
            conn.rollback()  # it only read

    def _inspect(self) -> bool:
        """Tell whether the store's tables are there (True) or not yet (False); raise otherwise."""
        layout, conn = self.layout, self.conn
        try:
            tables = {
                name
                for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
        except sqlite3.DatabaseError as exc:
            if _primary_code(exc) not in _NOT_A_DATABASE:
                raise
            raise self._format_error(
                f"it is not an SQLite database ({exc}); check the path, or pass another database"
            ) from exc
        main = layout.tables[0]
        if layout.component is not None:
            registered = None
            if _SCHEMA_TABLE in tables:
                self._check_columns(_SCHEMA_TABLE, _SCHEMA_COLUMNS)
                registered = conn.execute(
                    f"SELECT component, version FROM {_SCHEMA_TABLE} WHERE table_name = ?",
                    (main,),
                ).fetchone()
            if registered is None:
                taken = [t for t in layout.tables if t in tables]
                if taken:
                    raise self._format_error(
                        f"table {taken[0]!r} exists but is not registered as {layout.kind}; "
                        "pass another table= name or another database"
                    )
                return False
            self._check_registration(*registered)
            missing = [t for t in layout.tables if t not in tables]
            if missing:
                raise self._format_error(
                    f"it is registered as {layout.kind} but table {missing[0]!r} is gone; "
                    "restore it from a backup, or pass another table= name"
                )
        checked = ((main, layout.columns),) if layout.columns is not None else ()
        for table, columns in (*checked, *layout.beside):
            if table in tables:
                self._check_columns(table, columns)
        # An unregistered store makes what is missing (its statements say IF NOT EXISTS),
        # also a table beside the main one that a later layout added.
        return all(t in tables for t in layout.tables)

    def _check_registration(self, component: object, version: object) -> None:
        layout = self.layout
        if component != layout.component:
            raise self._format_error(
                f"table {layout.tables[0]!r} holds a busway {component}, not {layout.kind}; "
                "pass another table= name or another database"
            )
        if type(version) is not int or version > layout.version:
            raise self._format_error(
                f"it was written by a later busway (schema version {version}; this one "
                f"reads up to {layout.version}); upgrade busway to open it"
            )

    def _check_columns(self, table: str, expected: Sequence[str]) -> None:
        columns = tuple(row[1] for row in self.conn.execute(f"PRAGMA table_info({table})"))
        if columns != tuple(expected):
            raise self._format_error(
                f"table {table!r} has columns {', '.join(columns)} where busway expects "
                f"{', '.join(expected)}; pass another table= name or another database"
            )

    def _create(self) -> None:
        layout = self.layout
        if layout.component is not None:
            self.conn.execute(
                f"CREATE TABLE IF NOT EXISTS {_SCHEMA_TABLE} ("
                "table_name TEXT PRIMARY KEY, component TEXT NOT NULL, version INTEGER NOT NULL)"
            )
        for statement in layout.create:
            self.conn.execute(statement)
        if layout.component is not None:
            self.conn.execute(
                f"INSERT INTO {_SCHEMA_TABLE} (table_name, component, version) VALUES (?, ?, ?)",
                (layout.tables[0], layout.component, layout.version),
            )

    def _format_error(self, problem: str) -> StoreFormatError:
        """Return the error saying why the database cannot be opened as this store."""
        return StoreFormatError(self.location, problem, kind=self.layout.kind)

    def refused(self, exc: sqlite3.Error, *, waited: float | None = None) -> StoreUnavailableError:
        """Return the error to raise, from *exc*, for what SQLite refused to do.

        *waited* is how long a lock was waited for, if not the connection's busy timeout.
        """
        code = _primary_code(exc)
        if code in _BUSY:
            if waited is None and self.owned:
                waited = self.timeout  # what its busy timeout was set to
            return StoreLockedError(
                self.location,
                waited,
                in_transaction=not self.owned and _in_transaction(self.conn),
            )
        if code == sqlite3.SQLITE_READONLY:
            if getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_READONLY_DIRECTORY:
                why = "its folder is read-only, and SQLite must make its -wal and -shm files there"
            else:
                why = (
                    "the file, or its folder (where SQLite makes its -wal and -shm files), is "
                    "read-only, or the connection was opened read-only"
                )
            advice = (
                f"busway cannot write to it: {why}; make them writable, or copy the file to "
                "where they are"
            )
        elif code == sqlite3.SQLITE_FULL:
            advice = (
                "the disk is full, or the database reached its size limit (PRAGMA "
                "max_page_count); free some space and retry. SQLite rolled back what was "
                "being written"
            )
            if not self.owned:
                advice += (
                    ", and perhaps the whole transaction of the connection given "
                    "(see conn.in_transaction)"
                )
        elif code == sqlite3.SQLITE_CANTOPEN:
            advice = self._path_problem()
        elif code == sqlite3.SQLITE_IOERR:
            advice = (
                "the operating system could not read or write the file; check the disk and "
                "the file system, then retry"
            )
        elif code in _NOT_A_DATABASE:
            advice = "the file is damaged; restore it from a backup"
        else:
            advice = "SQLite's error is the cause; retry once what it names is put right"
        return StoreUnavailableError(self.location, f"{exc}: {advice}")

    def _path_problem(self) -> str:
        """Say what keeps SQLite from opening the file at the store's path."""
        path = self.path
        if path is not None and os.path.isdir(path):
            return "the path is a folder, not a file; pass the path of a database file"
        if path is not None and not os.path.isdir(path.parent):
            return f"folder {path.parent} does not exist; create it first, or pass another path"
        return (
            "SQLite cannot open or create the file; check that its folder exists and that "
            "both may be read and written"
        )

    def transaction(self) -> _Transaction:
        """Run the block in a write transaction, or in a savepoint of the caller's one.

        Savepoints nest: a block inside a block undoes only its own writes when it raises.
        A block that ended the transaction itself (a commit, a rollback, or closing the
        connection) is left to say so.
        """
        return _Transaction(self.conn)

    def close(self) -> None:
        """Close the connection if it was opened here; closing twice is harmless."""
        if self.owned:
            self.conn.close()


class _Transaction:
    """:meth:`Database.transaction`'s block: a class, not a generator: every write runs in it."""

    __slots__ = ("_conn", "_savepoint")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn = conn

    def __enter__(self) -> sqlite3.Connection:
        conn = self._conn
        self._savepoint = conn.in_transaction
        # IMMEDIATE takes the write lock before anything is read, so that what the block
        # checks still holds when it writes, for every thread and process.
        conn.execute("SAVEPOINT busway" if self._savepoint else "BEGIN IMMEDIATE")
        return conn

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        conn = self._conn
        if not _in_transaction(conn):
            return  # the block ended it, and says so itself (or SQLite rolled back)
        if self._savepoint:
            if error is not None:
                conn.execute("ROLLBACK TO busway")
            conn.execute("RELEASE busway")
            return
        try:
            if error is None:
                conn.execute("COMMIT")
                return
        except BaseException:
            if _in_transaction(conn):  # a commit SQLite refused leaves nothing half done
                conn.rollback()
            raise
        conn.rollback()


class _Turns(AbstractContextManager[None]):
    """The lock a store's threads take turns on; what SQLite refuses leaves as busway's error."""

    path: Path | None

    def __init__(self, db: Database) -> None:
        self._lock = threading.RLock()
        self._db = db

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._lock.release()
        if isinstance(error, sqlite3.Error):
            raise self._db.refused(error) from error


class SQLiteStore(Closeable):
    """A store on a :class:`Database`, whose threads take turns on its connection.

    Every operation runs under ``self._lock``, which also turns any ``sqlite3.Error`` that
    leaves it into a :class:`~busway.errors.StoreUnavailableError` naming the file.
    """

    path: Path | None
    """The database file, or None for an in-memory database or a given connection."""

    def __init__(self, db: Database) -> None:
        self._lock = _Turns(db)
        self._db = db
        self._conn = db.conn
        self.path = db.path

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<{type(self).__name__} {self._db.location}{state}>"

    def _release(self) -> None:
        self._db.close()


def stored_position(db: Database, value: object, *, table: str, name: str, advice: str) -> int:
    """Return *value*, the position *table* holds for *name*, if a busway store could write it.

    Anything else (text, a float, NULL, a negative number) was put there by other hands, and
    no position can be read from it safely: it is refused, with *advice* on what to do.
    """
    if type(value) is int and value >= 0:
        return value
    raise StoreFormatError(
        db.location,
        f"table {table!r} holds {value!r} ({type(value).__name__}) as the position of "
        f"{name!r}, where busway writes an int of 0 or more. Set it to the last position "
        f"handled (UPDATE {table} SET position = ... WHERE name = {name!r}), or {advice}",
        kind=db.layout.kind,
    )
