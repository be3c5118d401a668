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
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, final

from .._sqlite import Database, Layout, SQLiteStore, Synchronous, check_table, stored_position
from ..errors import SagaConcurrencyError, StoreClosedError
from ._store import Deadline, SagaRecord, StoredMessage, Write

__all__ = ["SQLiteSagaStore"]

SCHEMA_VERSION: Final = 1
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND: Final = timedelta(microseconds=1)


def _micros(moment: datetime) -> int:
    return (moment - _EPOCH) // _MICROSECOND


def _moment(micros: int) -> datetime:
    return _EPOCH + micros * _MICROSECOND


def _layout(t: str) -> Layout:
    return Layout(
        kind="a saga store",
        tables=(t, f"{t}_associations", f"{t}_deadlines", f"{t}_checkpoints"),
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
            f"""CREATE TABLE {t}_checkpoints (
                name TEXT PRIMARY KEY,
                position INTEGER NOT NULL
            )""",
        ),
        component="sagastore",
        version=SCHEMA_VERSION,
    )


@final
class SQLiteSagaStore(SQLiteStore):
    """A :class:`SagaStore` in an SQLite database file, kept across restarts.

    The store opens its own connection in WAL mode (readers never wait for the writer),
    with a busy *timeout* in seconds and ``synchronous`` durability (default ``"full"``: a
    committed saga survives a power cut), and closes it on :meth:`close`. It may share a
    database file with an :class:`~busway.eventstore.SQLiteEventStore`; threads may share
    it, and several processes may use the same file.
    """

    _holds = "sagas"
    table: str

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        table: str = "sagas",
        synchronous: Synchronous = "full",
        timeout: float = 10.0,
    ) -> None:
        # At most 40: the tables beside it take its name and a suffix.
        self.table = check_table(table, longest=40)
        super().__init__(Database(path, _layout(table), timeout=timeout, synchronous=synchronous))
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
        table = f"{self.table}_checkpoints"
        with self._lock:
            self._check_open()
            row = self._conn.execute(
                f"SELECT position FROM {table} WHERE name = ?", (name,)
            ).fetchone()
        if row is None:
            return 0
        return stored_position(
            self._db,
            row[0],
            table=table,
            name=name,
            advice="restore the table from a backup",
        )

    # -- writing -------------------------------------------------------------------------

    def commit(self, writes: Sequence[Write], *, checkpoint: tuple[str, int] | None = None) -> None:
        """Apply every write, and set *checkpoint*, in one transaction; raise if any is stale."""
        t = self.table
        with self._lock:
            self._check_open()
            with self._db.transaction():
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

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(self, holds="sagas")
