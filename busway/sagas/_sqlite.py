"""A saga store in an SQLite database, with the standard library's sqlite3.

Five tables share the name given: the sagas themselves (state and outbox), their
associations (the index that routes events), their deadlines (indexed by due time), the
checkpoints of event-store subscriptions (position and fencing token) and the events those
parked. A commit runs in ``BEGIN IMMEDIATE``, which takes the write lock before any version
or checkpoint is read, so the checks and the writes are one step for every thread and
process; a checkpoint moves in the same transaction as the sagas its event changed.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, final

from .._sqlite import Database, Layout, SQLiteStore, Synchronous, check_table
from .._time import aware, micros
from ..errors import SagaConcurrencyError, StoreClosedError
from ..subscriptions import Advance, ParkedEvent
from ..subscriptions._tables import (
    CHECKPOINT_COLUMNS,
    PARKED_COLUMNS,
    SQLiteCheckpoints,
    checkpoint_tables,
)
from ._rows import SagaRows, found, outbox_text, read_record
from ._store import SagaRecord, Write, refused_start

__all__ = ["SQLiteSagaStore"]

SCHEMA_VERSION: Final = 1


def _layout(t: str) -> Layout:
    checkpoints, parked = f"{t}_checkpoints", f"{t}_parked"
    return Layout(
        kind="a saga store",
        tables=(t, f"{t}_associations", f"{t}_deadlines", checkpoints, parked),
        create=(
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
            *checkpoint_tables(checkpoints, parked),
        ),
        beside=((checkpoints, CHECKPOINT_COLUMNS), (parked, PARKED_COLUMNS)),
        component="sagastore",
        version=SCHEMA_VERSION,
    )


@final
class SQLiteSagaStore(SQLiteStore):
    """A :class:`SagaStore` in an SQLite database file, kept across restarts.

    Given a path, the store opens its own connection in WAL mode (readers never wait for
    the writer), with a busy *timeout* in seconds and ``synchronous`` durability (default
    ``"full"``: a committed saga survives a power cut), and closes it on :meth:`close`;
    given a connection (a read-only one, say, to look at a saga store another process
    writes), it uses it and leaves it open. It may share a database file with an
    :class:`~busway.eventstore.SQLiteEventStore`; threads may share it, and several
    processes may use the same file.
    """

    _holds = "sagas"
    table: str

    def __init__(
        self,
        path_or_connection: str | os.PathLike[str] | sqlite3.Connection,
        *,
        table: str = "sagas",
        synchronous: Synchronous = "full",
        timeout: float = 10.0,
    ) -> None:
        # At most 40: the tables beside it take its name and a suffix.
        self.table = check_table(table, longest=40)
        super().__init__(
            Database(path_or_connection, _layout(table), timeout=timeout, synchronous=synchronous)
        )
        t = self.table
        self._checkpoints = SQLiteCheckpoints(
            self._db, f"{t}_checkpoints", f"{t}_parked", advice="restore the table from a backup"
        )
        self._sql_holder = (
            f"SELECT min(saga_id) FROM {t}_associations WHERE saga_type = ? AND key = ? "
            "AND value = ?"
        )
        self._sql_saga = (
            f"SELECT saga_id, saga_type, version, schema_version, state, outbox, pending, "
            f"ended FROM {t} WHERE saga_id = ?"
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
            f"SELECT seq, due, deadline_id, type, schema_version, data FROM {t}_deadlines "
            "WHERE saga_id = ? ORDER BY seq"
        )
        self._sql_due = (
            f"SELECT saga_id, min(due) AS first FROM {t}_deadlines WHERE due <= ? "
            "GROUP BY saga_id ORDER BY first, saga_id"
        )

    # -- reading -------------------------------------------------------------------------

    def _record(self, saga_id: str) -> SagaRecord | None:
        row = self._conn.execute(self._sql_saga, (saga_id,)).fetchone()
        if row is None:
            return None
        return read_record(
            SagaRows(row[0], self._db.location, self.table),
            row,
            self._conn.execute(self._sql_associations, (saga_id,)),
            self._conn.execute(self._sql_deadlines, (saga_id,)),
        )

    def _records(self, sql: str, params: Sequence[Any], index: str) -> list[SagaRecord]:
        """Return the sagas whose ids *sql* selects from the *index* table, in its order."""
        with self._lock:
            self._check_open()
            # One read transaction, so that the records agree with the ids found.
            self._conn.execute("BEGIN")
            try:
                found = []
                for saga_id, *_ in self._conn.execute(sql, params).fetchall():
                    record = self._record(saga_id)
                    if record is None:
                        raise SagaRows(saga_id, self._db.location, self.table).damaged(
                            f"{index}.saga_id",
                            f"points to no row of {self.table} (the saga's own row is gone)",
                        )
                    found.append(record)
            finally:
                self._conn.execute("COMMIT")
        return found

    def find(self, saga_type: str, key: str, value: str) -> list[SagaRecord]:
        """Return the live sagas of *saga_type* associated with ``(key, value)``, by id."""
        records = self._records(self._sql_find, (saga_type, key, value), "_associations")
        return found(records, (saga_type, key, value), self._db.location, self.table)

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
        return self._records(
            f"SELECT saga_id FROM {self.table} WHERE pending ORDER BY saga_id", (), ""
        )

    def due(self, now: datetime) -> list[SagaRecord]:
        """Return every saga with a deadline due at or before *now*, earliest deadline first."""
        return self._records(self._sql_due, (micros(aware(now, "now")),), "_deadlines")

    def checkpoint(self, name: str) -> int:
        """Return the position last committed under *name*; 0 if none was."""
        with self._lock:
            self._check_open()
            return self._checkpoints.position(name)

    def checkpoints(self) -> dict[str, int]:
        """Return the position of every checkpoint committed, by name (sorted)."""
        with self._lock:
            self._check_open()
            return self._checkpoints.positions()

    def token(self, name: str) -> int:
        """Return the highest fencing token that moved checkpoint *name*; 0 if none did."""
        with self._lock:
            self._check_open()
            return self._checkpoints.token(name)

    def parked(self, name: str) -> list[ParkedEvent]:
        """Return the events parked on checkpoint *name*, by position."""
        with self._lock:
            self._check_open()
            return self._checkpoints.parked(name)

    # -- writing -------------------------------------------------------------------------

    def commit(self, writes: Sequence[Write], *, checkpoint: Advance | None = None) -> None:
        """Apply every write, and move *checkpoint*, in one transaction; raise if any is stale.

        Every check reads the database as it was before the commit, as the store in memory
        does: a commit's writes do not see each other.
        """
        with self._lock:
            self._check_open()
            with self._db.transaction():
                advance = None if checkpoint is None else self._checkpoints.check(checkpoint)
                started: dict[tuple[str, str, str], str] = {}
                for write in writes:
                    self._check(write, started)
                for write in writes:
                    self._write(write.record)
                if advance is not None:
                    self._checkpoints.advance(advance)

    def _check(self, write: Write, started: dict[tuple[str, str, str], str]) -> None:
        """Raise if *write* is stale, or starts on an association a saga holds already."""
        record = write.record
        row = self._conn.execute(self._sql_version, (record.saga_id,)).fetchone()
        actual = 0 if row is None else row[0]
        if actual != write.expected_version:
            raise SagaConcurrencyError(record.saga_id, write.expected_version, actual)
        if write.starts is not None:
            entry = (record.saga_type, *write.starts)
            (holder,) = self._conn.execute(self._sql_holder, entry).fetchone()
            holder = holder or started.get(entry)
            if holder is not None:
                raise refused_start(write, holder)
            started[entry] = record.saga_id

    def _write(self, record: SagaRecord) -> None:
        t, saga_id = self.table, record.saga_id
        self._conn.execute(f"DELETE FROM {t}_associations WHERE saga_id = ?", (saga_id,))
        self._conn.execute(f"DELETE FROM {t}_deadlines WHERE saga_id = ?", (saga_id,))
        if record.finished:
            self._conn.execute(f"DELETE FROM {t} WHERE saga_id = ?", (saga_id,))
            return
        self._conn.execute(
            self._sql_upsert,
            (
                saga_id,
                record.saga_type,
                record.version,
                record.schema_version,
                record.state,
                outbox_text(record),
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
                    micros(d.due),
                    d.message.type,
                    d.message.schema_version,
                    d.message.data,
                )
                for seq, d in enumerate(record.deadlines)
            ],
        )

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(self, holds="sagas")
