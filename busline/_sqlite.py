"""SQLite plumbing shared by the snapshot and checkpoint stores.

Each store opens its own connection to a path (WAL, busy timeout, autocommit mode so that
transactions are explicit) or uses a connection it is given, and creates its table if it
is missing, refusing a table of the same name that has other columns.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .errors import InvalidArgumentError, StoreFormatError

__all__ = ["Database", "check_table"]

_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}\Z")


def check_table(table: object) -> str:
    """Return *table* if it is a plain SQL identifier that may be put into a statement."""
    if (
        not isinstance(table, str)
        or not _TABLE_NAME.match(table)
        or table.lower().startswith("sqlite_")
    ):
        raise InvalidArgumentError(
            "table",
            table,
            "an SQL identifier of letters, digits and underscores (at most 63, not starting "
            "with a digit or 'sqlite_')",
        )
    return table


def _in_transaction(conn: sqlite3.Connection) -> bool:
    return conn.in_transaction


class Database:
    """A connection to a path (owned: WAL, closed by :meth:`close`) or one given (borrowed)."""

    def __init__(
        self, path_or_connection: str | os.PathLike[str] | sqlite3.Connection, timeout: float
    ) -> None:
        self.path: Path | None
        if isinstance(path_or_connection, sqlite3.Connection):
            self.path = None
            self.location = "the connection given"
            self.owned = False
            self.conn = path_or_connection
        else:
            name = os.fspath(path_or_connection)
            self.path = None if name == ":memory:" else Path(name)
            self.location = name
            self.owned = True
            self.conn = sqlite3.connect(
                name, timeout=timeout, isolation_level=None, check_same_thread=False
            )
            try:
                # Look before changing anything: a file that is not a database stays as it was.
                self.conn.execute("SELECT name FROM sqlite_master LIMIT 1").fetchall()
                self.conn.execute("PRAGMA journal_mode = WAL")
            except sqlite3.DatabaseError as exc:
                self.conn.close()
                raise StoreFormatError(name, f"it is not an SQLite database ({exc})") from exc
            except BaseException:  # pragma: no cover - an interrupt while opening
                self.conn.close()
                raise

    def ensure_table(self, table: str, columns: Sequence[str], create: Sequence[str]) -> None:
        """Run the *create* statements unless *table* exists; check its columns if it does."""
        try:
            found = tuple(row[1] for row in self.conn.execute(f"PRAGMA table_info({table})"))
        except sqlite3.DatabaseError as exc:
            raise StoreFormatError(self.location, f"it is not an SQLite database ({exc})") from exc
        if found and found != tuple(columns):
            raise StoreFormatError(
                self.location,
                f"table {table!r} has columns {', '.join(found)} where busline expects "
                f"{', '.join(columns)}; pass another table= name or another database",
            )
        if not found:
            with self.transaction() as conn:
                for statement in create:
                    conn.execute(statement)

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """Run the block in a write transaction, or in a savepoint of the caller's one."""
        conn = self.conn
        if conn.in_transaction:
            conn.execute("SAVEPOINT busline")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK TO busline")
                conn.execute("RELEASE busline")
                raise
            conn.execute("RELEASE busline")
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            if _in_transaction(conn):  # else the block ended it, and says so itself
                conn.execute("COMMIT")
        except BaseException:
            conn.rollback()  # a no-op if SQLite already rolled back
            raise

    def close(self) -> None:
        """Close the connection if it was opened here; closing twice is harmless."""
        if self.owned:
            self.conn.close()
