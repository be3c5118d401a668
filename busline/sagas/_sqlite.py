"""A saga store in an SQLite database, with the standard library's sqlite3.

Four tables share the name given: the sagas themselves (state and outbox), their
associations (the index that routes events), their deadlines (indexed by due time) and the
checkpoints of event-store subscriptions. A commit runs in ``BEGIN IMMEDIATE``, which takes
the write lock before any version is read, so the version check and the write are one step
for every thread and process; a checkpoint is written in the same transaction as the sagas
its event changed.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, Literal, Self, final

from ..errors import (
    InvalidArgumentError,
    SagaConcurrencyError,
    StoreClosedError,
    StoreFormatError,
)
from ._store import Deadline, SagaRecord, StoredMessage, Write

__all__ = ["SQLiteSagaStore"]

SCHEMA_VERSION: Final = 1
_COMPONENT: Final = "sagastore"
_SCHEMA_TABLE: Final = "busline_schema"
_TABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,39}\Z")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)
_SUFFIXES: Final = ("", "_associations", "_deadlines", "_checkpoints")


def _check_table(table: object) -> str:
    if (
        not isinstance(table, str)
        or not _TABLE_NAME.match(table)
        or table.lower().startswith("sqlite_")
        or table.lower().startswith(_SCHEMA_TABLE)
    ):
        raise InvalidArgumentError(
            "table",
            table,
            "an SQL identifier of letters, digits and underscores (at most 40, not starting "
            f"with a digit, 'sqlite_' or {_SCHEMA_TABLE!r})",
        )
    return table


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _moment(micros: int) -> datetime:
    return _EPOCH + micros * _MICROSECOND


def _format_error(location: str, problem: str) -> StoreFormatError:
    error = StoreFormatError(location, problem)
    error.args = (f"{location} cannot be opened as a saga store: {problem}",)
    return error


@final
class SQLiteSagaStore:
    """A :class:`SagaStore` in an SQLite database file, kept across restarts.

    The store opens its own connection in WAL mode (readers never wait for the writer),
    with a busy *timeout* in seconds and ``synchronous`` durability (default ``"full"``: a
    committed saga survives a power cut), and closes it on :meth:`close`. It may share a
    database file with an :class:`~busline.eventstore.SQLiteEventStore`; threads may share
    it, and several processes may use the same file.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        table: str = "sagas",
        synchronous: Literal["extra", "full", "normal", "off"] = "full",
        timeout: float = 10.0,
    ) -> None:
        self.table = _check_table(table)
        if synchronous not in ("extra", "full", "normal", "off"):
            raise InvalidArgumentError(
                "synchronous", synchronous, "one of 'extra', 'full', 'normal', 'off'"
            )
        name = os.fspath(path)
        self.path = None if name == ":memory:" else Path(name)
        self._location = f"{name} (table {table!r})"
        self._lock = threading.RLock()
        self._closed = False
        self._conn = sqlite3.connect(
            name, timeout=timeout, isolation_level=None, check_same_thread=False
        )
        try:
            self._open(synchronous)
        except BaseException:
            self._conn.close()
            raise
        t = self.table
        self._sql_saga = (
            f"SELECT saga_id, saga_type, version, schema_version, state, outbox, ended "
            f"FROM {t} WHERE saga_id = ?"
        )
        self._sql_version = f"SELECT version FROM {t} WHERE saga_id = ?"
        self._sql_upsert = (
            f"INSERT INTO {t} (saga_id, saga_type, version, schema_version, state, outbox, "
            "pending, ended) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (saga_id) DO UPDATE SET "
            "version = excluded.version, schema_version = excluded.schema_version, "
            "state = excluded.state, outbox = excluded.outbox, pending = excluded.pending, "
            "ended = excluded.ended"
        )
        self._sql_find = (
            f"SELECT saga_id FROM {t}_associations WHERE saga_type = ? AND key = ? AND value = ? "
            "ORDER BY saga_id"
        )
        self._sql_associations = f"SELECT key, value FROM {t}_associations WHERE saga_id = ?"
        self._sql_deadlines = (
            f"SELECT due, deadline_id, type, schema_version, data FROM {t}_deadlines "
            "WHERE saga_id = ? ORDER BY seq"
        )
        self._sql_due = (
            f"SELECT saga_id, min(due) AS first FROM {t}_deadlines WHERE due <= ? "
            "GROUP BY saga_id ORDER BY first, saga_id"
        )

    def __repr__(self) -> str:
        return f"<SQLiteSagaStore {self._location}{' closed' if self._closed else ''}>"

    # -- opening -------------------------------------------------------------------------

    def _open(self, synchronous: str) -> None:
        if self._inspect() == "missing":
            self._conn.execute("PRAGMA journal_mode = WAL")
            with self._transaction():
                if self._inspect() == "missing":  # another process may have just created it
                    self._create()
        else:
            self._conn.execute("PRAGMA journal_mode = WAL")
        self._conn.execute(f"PRAGMA synchronous = {synchronous.upper()}")

    def _inspect(self) -> Literal["ready", "missing"]:
        """Tell whether the tables are a current saga store or absent; raise otherwise."""
        try:
            tables = {
                row[0]
                for row in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
        except sqlite3.DatabaseError as exc:
            raise _format_error(self._location, f"it is not an SQLite database ({exc})") from exc
        registered = None
        if _SCHEMA_TABLE in tables:
            registered = self._conn.execute(
                f"SELECT component, version FROM {_SCHEMA_TABLE} WHERE table_name = ?",
                (self.table,),
            ).fetchone()
        ours = {self.table + suffix for suffix in _SUFFIXES}
        if registered is None:
            taken = sorted(ours & tables)
            if taken:
                raise _format_error(
                    self._location,
                    f"table {taken[0]!r} exists and is not part of a busline saga store; pass "
                    "another table= name or another database",
                )
            return "missing"
        component, version = registered
        if component != _COMPONENT:
            raise _format_error(self._location, f"table {self.table!r} holds a busline {component}")
        if type(version) is not int or version > SCHEMA_VERSION:
            raise _format_error(
                self._location,
                f"it was written by a later busline (schema version {version}; this one reads "
                f"up to {SCHEMA_VERSION}); upgrade busline to open it",
            )
        missing = sorted(ours - tables)
        if missing:
            raise _format_error(self._location, f"table {missing[0]!r} is gone")
        return "ready"

    def _create(self) -> None:
        t = self.table
        for sql in (
            f"CREATE TABLE IF NOT EXISTS {_SCHEMA_TABLE} ("
            "table_name TEXT PRIMARY KEY, component TEXT NOT NULL, version INTEGER NOT NULL)",
            f"""CREATE TABLE {t} (
                saga_id TEXT PRIMARY KEY,
                saga_type TEXT NOT NULL,
                version INTEGER NOT NULL CHECK (version >= 1),
                schema_version INTEGER NOT NULL,
                state TEXT NOT NULL,
                outbox TEXT NOT NULL,
                pending INTEGER NOT NULL,
                ended INTEGER NOT NULL
            )""",
            f"CREATE INDEX {t}_pending_ix ON {t} (saga_id) WHERE pending",
            f"""CREATE TABLE {t}_associations (
                saga_type TEXT NOT NULL,
                key TEXT NOT NULL,
                value TEXT NOT NULL,
                saga_id TEXT NOT NULL,
                PRIMARY KEY (saga_type, key, value, saga_id)
            )""",
            f"CREATE INDEX {t}_associations_ix ON {t}_associations (saga_id)",
            f"""CREATE TABLE {t}_deadlines (
                saga_id TEXT NOT NULL,
                seq INTEGER NOT NULL,
                deadline_id TEXT NOT NULL,
                due INTEGER NOT NULL,
                type TEXT NOT NULL,
                schema_version INTEGER NOT NULL,
                data TEXT NOT NULL,
                PRIMARY KEY (saga_id, seq)
            )""",
            f"CREATE INDEX {t}_deadlines_due_ix ON {t}_deadlines (due)",
            f"""CREATE TABLE {t}_checkpoints (
                name TEXT PRIMARY KEY,
                position INTEGER NOT NULL
            )""",
        ):
            self._conn.execute(sql)
        self._conn.execute(
            f"INSERT INTO {_SCHEMA_TABLE} (table_name, component, version) VALUES (?, ?, ?)",
            (t, _COMPONENT, SCHEMA_VERSION),
        )

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
            self._conn.execute("COMMIT")
        except BaseException:
            self._conn.rollback()
            raise

    # -- reading -------------------------------------------------------------------------

    def _record(self, saga_id: str) -> SagaRecord | None:
        row = self._conn.execute(self._sql_saga, (saga_id,)).fetchone()
        if row is None:
            return None
        saga_id, saga_type, version, schema_version, state, outbox, ended = row
        associations = frozenset(
            (k, v) for k, v in self._conn.execute(self._sql_associations, (saga_id,))
        )
        deadlines = tuple(
            Deadline(_moment(due), StoredMessage(i, tp, sv, data))
            for due, i, tp, sv, data in self._conn.execute(self._sql_deadlines, (saga_id,))
        )
        return SagaRecord(
            saga_id=saga_id,
            saga_type=saga_type,
            version=version,
            schema_version=schema_version,
            state=state,
            associations=associations,
            deadlines=deadlines,
            outbox=tuple(StoredMessage(*m) for m in json.loads(outbox)),
            ended=bool(ended),
        )

    def _records(self, sql: str, params: Sequence[Any]) -> list[SagaRecord]:
        with self._lock:
            self._check_open()
            # One read transaction, so that the records agree with the ids found.
            self._conn.execute("BEGIN")
            try:
                ids = [row[0] for row in self._conn.execute(sql, params).fetchall()]
                found = [self._record(i) for i in ids]
            finally:
                self._conn.execute("COMMIT")
        return [r for r in found if r is not None]

    def find(self, saga_type: str, key: str, value: str) -> list[SagaRecord]:
        """Return the live sagas of *saga_type* associated with ``(key, value)``, by id."""
        return self._records(self._sql_find, (saga_type, key, value))

    def load(self, saga_id: str) -> SagaRecord | None:
        """Return the saga stored under *saga_id*, or None."""
        with self._lock:
            self._check_open()
            self._conn.execute("BEGIN")
            try:
                return self._record(saga_id)
            finally:
                self._conn.execute("COMMIT")

    def pending(self) -> list[SagaRecord]:
        """Return every saga with commands in its outbox."""
        return self._records(f"SELECT saga_id FROM {self.table} WHERE pending ORDER BY saga_id", ())

    def due(self, now: datetime) -> list[SagaRecord]:
        """Return every saga with a deadline due at or before *now*, earliest deadline first."""
        return self._records(self._sql_due, (_micros(now),))

    def checkpoint(self, name: str) -> int:
        """Return the position last committed under *name*; 0 if none was."""
        with self._lock:
            self._check_open()
            row = self._conn.execute(
                f"SELECT position FROM {self.table}_checkpoints WHERE name = ?", (name,)
            ).fetchone()
        return 0 if row is None else int(row[0])

    # -- writing -------------------------------------------------------------------------

    def commit(self, writes: Sequence[Write], *, checkpoint: tuple[str, int] | None = None) -> None:
        """Apply every write, and set *checkpoint*, in one transaction; raise if any is stale."""
        t = self.table
        with self._lock:
            self._check_open()
            with self._transaction():
                for write in writes:
                    record = write.record
                    row = self._conn.execute(self._sql_version, (record.saga_id,)).fetchone()
                    actual = 0 if row is None else row[0]
                    if actual != write.expected_version:
                        raise SagaConcurrencyError(record.saga_id, write.expected_version, actual)
                    self._write(record)
                if checkpoint is not None:
                    self._conn.execute(
                        f"INSERT INTO {t}_checkpoints (name, position) VALUES (?, ?) "
                        "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                        checkpoint,
                    )

    def _write(self, record: SagaRecord) -> None:
        t, saga_id = self.table, record.saga_id
        self._conn.execute(f"DELETE FROM {t}_associations WHERE saga_id = ?", (saga_id,))
        self._conn.execute(f"DELETE FROM {t}_deadlines WHERE saga_id = ?", (saga_id,))
        if record.finished:
            self._conn.execute(f"DELETE FROM {t} WHERE saga_id = ?", (saga_id,))
            return
        outbox = json.dumps(
            [[m.id, m.type, m.schema_version, m.data] for m in record.outbox],
            ensure_ascii=False,
            separators=(",", ":"),
        )
        self._conn.execute(
            self._sql_upsert,
            (
                saga_id,
                record.saga_type,
                record.version,
                record.schema_version,
                record.state,
                outbox,
                bool(record.outbox),
                record.ended,
            ),
        )
        self._conn.executemany(
            f"INSERT INTO {t}_associations (saga_type, key, value, saga_id) VALUES (?, ?, ?, ?)",
            [(record.saga_type, k, v, saga_id) for k, v in sorted(record.associations)],
        )
        self._conn.executemany(
            f"INSERT INTO {t}_deadlines (deadline_id, saga_id, seq, due, type, schema_version, "
            "data) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    d.id,
                    saga_id,
                    seq,
                    _micros(d.due),
                    d.message.type,
                    d.message.schema_version,
                    d.message.data,
                )
                for seq, d in enumerate(record.deadlines)
            ],
        )

    # -- closing -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the store's connection; closing twice is harmless."""
        with self._lock:
            self._closed = True
            self._conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            error = StoreClosedError(self)
            error.args = (f"{self!r} is closed; open a new SQLiteSagaStore to use its sagas",)
            raise error
