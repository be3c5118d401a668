"""A saga store in PostgreSQL, shared by workers on many machines.

Five tables share the name given, as in SQLite: the sagas (state and outbox), their
associations (the index that routes events), their deadlines (indexed by due time), the
checkpoints of event-store subscriptions and the events those parked. A commit is one
transaction that first holds its checkpoint (a lock on its name), then takes a
transaction-scoped advisory lock for each saga it writes and each association a new saga
starts on, in one order for every transaction (so that two commits never wait on each
other in a circle), and only then reads the versions and holders it checks: the checks and
the writes are one step for every worker, while commits of other sagas and other
checkpoints go on beside it.

Reads of several rows run in one ``REPEATABLE READ`` snapshot, so that the records agree
with the index they were found by.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final, final

from psycopg_pool import ConnectionPool

from .._time import aware
from ..errors import SagaConcurrencyError
from ..sagas._rows import SagaRows, found, outbox_text, read_record
from ..sagas._store import SagaRecord, Write, refused_start
from ..subscriptions import Advance, ParkedEvent
from ..subscriptions._tables import CHECKPOINT_COLUMNS, PARKED_COLUMNS
from ._db import Database, Flow, Layout, Statement, check_identifier, quoted
from ._store import PostgresStore
from ._tables import PostgresCheckpoints, checkpoint_tables

__all__ = ["PostgresSagaStore"]

SCHEMA_VERSION: Final = 1
_SNAPSHOT: Final = Statement("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")


def _layout(schema: str, t: str) -> Layout:
    def q(name: str) -> str:
        return quoted(schema, name)

    checkpoints, parked = f"{t}_checkpoints", f"{t}_parked"
    return Layout(
        kind="a saga store",
        tables=(t, f"{t}_associations", f"{t}_deadlines", checkpoints, parked),
        create=(
            f"""CREATE TABLE {q(t)} (
                saga_id TEXT COLLATE "C" PRIMARY KEY,
                saga_type TEXT NOT NULL,
                version BIGINT NOT NULL CHECK (version >= 1),
                schema_version BIGINT NOT NULL,
                state TEXT NOT NULL,
                outbox TEXT NOT NULL,
                pending BOOLEAN NOT NULL,
                ended BOOLEAN NOT NULL
            )""",
            f'CREATE INDEX "{t}_pending_ix" ON {q(t)} (saga_id) WHERE pending',
            f"""CREATE TABLE {q(f"{t}_associations")} (
                saga_type TEXT COLLATE "C" NOT NULL,
                key TEXT COLLATE "C" NOT NULL,
                value TEXT COLLATE "C" NOT NULL,
                saga_id TEXT COLLATE "C" NOT NULL REFERENCES {q(t)} ON DELETE CASCADE,
                PRIMARY KEY (saga_type, key, value, saga_id)
            )""",
            f'CREATE INDEX "{t}_associations_ix" ON {q(f"{t}_associations")} (saga_id)',
            f"""CREATE TABLE {q(f"{t}_deadlines")} (
                saga_id TEXT COLLATE "C" NOT NULL REFERENCES {q(t)} ON DELETE CASCADE,
                seq INTEGER NOT NULL,
                deadline_id TEXT NOT NULL,
                due TIMESTAMPTZ NOT NULL,
                type TEXT NOT NULL,
                schema_version BIGINT NOT NULL,
                data TEXT NOT NULL,
                PRIMARY KEY (saga_id, seq)
            )""",
            f'CREATE INDEX "{t}_deadlines_due_ix" ON {q(f"{t}_deadlines")} (due)',
            *checkpoint_tables(schema, checkpoints, parked),
        ),
        beside=((checkpoints, CHECKPOINT_COLUMNS), (parked, PARKED_COLUMNS)),
        component="sagastore",
        version=SCHEMA_VERSION,
    )


@final
class PostgresSagaStore(PostgresStore):
    """A :class:`~busway.sagas.SagaStore` in tables of a PostgreSQL schema.

    Given a DSN it opens a pool of its own, which :meth:`close` closes; given a
    ``psycopg_pool.ConnectionPool``, it borrows connections and leaves the pool open. The
    tables are made in *schema* on first use. Threads may share it, and any number of
    processes on any number of machines may use the same tables.
    """

    _holds = "sagas"
    table: str
    schema: str

    def __init__(
        self,
        dsn_or_pool: str | ConnectionPool[Any],
        *,
        schema: str = "public",
        table: str = "sagas",
    ) -> None:
        # At most 40: the tables and indexes beside it take its name and a suffix.
        self.table = t = check_identifier(table, "table", longest=40)
        self.schema = check_identifier(schema, "schema")
        super().__init__(Database(dsn_or_pool, _layout(schema, t), schema=schema))
        db = self._db
        self._checkpoints = PostgresCheckpoints(db, f"{t}_checkpoints", f"{t}_parked")
        sagas, associations, deadlines = (
            db.table(t),
            db.table(f"{t}_associations"),
            db.table(f"{t}_deadlines"),
        )
        self._lock_prefix = f"{schema}.{t}"
        self._sql_sagas = (
            "SELECT saga_id, saga_type, version, schema_version, state, outbox, "
            f"pending::int, ended::int FROM {sagas} WHERE saga_id = ANY(%s)"
        )
        self._sql_associations = (
            f"SELECT saga_id, key, value FROM {associations} WHERE saga_id = ANY(%s)"
        )
        self._sql_deadlines = (
            "SELECT saga_id, seq, (extract(epoch FROM due) * 1000000)::bigint, deadline_id, "
            f"type, schema_version, data FROM {deadlines} WHERE saga_id = ANY(%s) "
            "ORDER BY saga_id, seq"
        )
        self._sql_find = (
            f"SELECT saga_id FROM {associations} WHERE saga_type = %s AND key = %s "
            "AND value = %s ORDER BY saga_id"
        )
        self._sql_pending = f"SELECT saga_id FROM {sagas} WHERE pending ORDER BY saga_id"
        self._sql_due = (
            f"SELECT saga_id, min(due) AS first FROM {deadlines} WHERE due <= %s "
            "GROUP BY saga_id ORDER BY first, saga_id"
        )
        self._sql_versions = f"SELECT saga_id, version FROM {sagas} WHERE saga_id = ANY(%s)"
        self._sql_holder = (
            f"SELECT min(saga_id) FROM {associations} WHERE saga_type = %s AND key = %s "
            "AND value = %s"
        )
        self._sql_delete = f"DELETE FROM {sagas} WHERE saga_id = %s"
        self._sql_forget = (
            f"WITH gone AS (DELETE FROM {associations} WHERE saga_id = %s) "
            f"DELETE FROM {deadlines} WHERE saga_id = %s"
        )
        self._sql_upsert = (
            f"INSERT INTO {sagas} (saga_id, saga_type, version, schema_version, state, outbox, "
            "pending, ended) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (saga_id) "
            "DO UPDATE SET version = excluded.version, schema_version = "
            "excluded.schema_version, state = excluded.state, outbox = excluded.outbox, "
            "pending = excluded.pending, ended = excluded.ended"
        )
        self._sql_associate = (
            f"INSERT INTO {associations} (saga_type, key, value, saga_id) "
            "SELECT %s, k, v, %s FROM unnest(%s::text[], %s::text[]) AS u(k, v)"
        )
        self._sql_schedule = (
            f"INSERT INTO {deadlines} (saga_id, seq, deadline_id, due, type, schema_version, "
            "data) SELECT %s, n - 1, i, d, tp, sv, data FROM unnest(%s::text[], "
            "%s::timestamptz[], %s::text[], %s::bigint[], %s::text[]) WITH ORDINALITY "
            "AS u(i, d, tp, sv, data, n)"
        )

    # -- reading -------------------------------------------------------------------------

    def _records(self, ids: list[str]) -> Flow[dict[str, SagaRecord]]:
        """Read the sagas stored under *ids*, by id; ids of none are left out."""
        if not ids:
            return {}
        rows = yield Statement(self._sql_sagas, (ids,))
        associations: dict[str, list[tuple[Any, ...]]] = {}
        for saga_id, *pair in (yield Statement(self._sql_associations, (ids,))):
            associations.setdefault(saga_id, []).append(tuple(pair))
        deadlines: dict[str, list[tuple[Any, ...]]] = {}
        for saga_id, *deadline in (yield Statement(self._sql_deadlines, (ids,))):
            deadlines.setdefault(saga_id, []).append(tuple(deadline))
        location = self._db.location
        return {
            row[0]: read_record(
                SagaRows(row[0], location, self.table),
                row,
                associations.get(row[0], ()),
                deadlines.get(row[0], ()),
            )
            for row in rows
        }

    def _listed(self, sql: str, params: Sequence[object] = ()) -> Flow[list[SagaRecord]]:
        """Return the sagas whose ids *sql* selects, in its order, all from one snapshot."""
        yield _SNAPSHOT
        ids = [row[0] for row in (yield Statement(sql, params))]
        records = yield from self._records(ids)
        return [records[saga_id] for saga_id in ids]

    def _loaded(self, saga_id: str) -> Flow[SagaRecord | None]:
        yield _SNAPSHOT
        return (yield from self._records([saga_id])).get(saga_id)

    def find(self, saga_type: str, key: str, value: str) -> list[SagaRecord]:
        """Return the live sagas of *saga_type* associated with ``(key, value)``, by id."""
        entry = (saga_type, key, value)
        records = self._run(self._listed(self._sql_find, entry))
        return found(records, entry, self._db.location, self.table)

    def load(self, saga_id: str) -> SagaRecord | None:
        """Return the saga stored under *saga_id*, or None."""
        return self._run(self._loaded(saga_id))

    def pending(self) -> list[SagaRecord]:
        """Return every saga with commands in its outbox."""
        return self._run(self._listed(self._sql_pending))

    def due(self, now: datetime) -> list[SagaRecord]:
        """Return every saga with a deadline due at or before *now*, earliest deadline first."""
        return self._run(self._listed(self._sql_due, (aware(now, "now"),)))

    def checkpoint(self, name: str) -> int:
        """Return the position last committed under *name*; 0 if none was."""
        return self._run(self._checkpoints.position(name))

    def checkpoints(self) -> dict[str, int]:
        """Return the position of every checkpoint committed, by name (sorted)."""
        return self._run(self._checkpoints.positions())

    def token(self, name: str) -> int:
        """Return the highest fencing token that moved checkpoint *name*; 0 if none did."""
        return self._run(self._checkpoints.token(name))

    def parked(self, name: str) -> list[ParkedEvent]:
        """Return the events parked on checkpoint *name*, by position."""
        return self._run(self._checkpoints.parked(name))

    # -- writing -------------------------------------------------------------------------

    def commit(self, writes: Sequence[Write], *, checkpoint: Advance | None = None) -> None:
        """Apply every write, and move *checkpoint*, in one transaction; raise if any is stale.

        Every check reads the database as it was before the commit, as the store in memory
        does: a commit's writes do not see each other.
        """
        self._run(self._commit(list(writes), checkpoint))

    def _key(self, *parts: str) -> int:
        """Return the advisory lock key of *parts* of this store's tables, the same everywhere."""
        text = "\x00".join((self._lock_prefix, *parts)).encode("utf-8", "surrogatepass")
        return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big", signed=True)

    def _commit(self, writes: list[Write], checkpoint: Advance | None) -> Flow[None]:
        advance = None if checkpoint is None else (yield from self._checkpoints.check(checkpoint))
        keys = {self._key("saga", w.record.saga_id) for w in writes}
        keys.update(
            self._key("start", w.record.saga_type, *w.starts)
            for w in writes
            if w.starts is not None
        )
        for key in sorted(keys):  # one order for every commit, so none waits in a circle
            yield Statement("SELECT pg_advisory_xact_lock(%s)", (key,))
        ids = [w.record.saga_id for w in writes]
        versions: dict[str, int] = dict((yield Statement(self._sql_versions, (ids,))))
        started: dict[tuple[str, str, str], str] = {}
        for write in writes:
            record = write.record
            actual = versions.get(record.saga_id, 0)
            if actual != write.expected_version:
                raise SagaConcurrencyError(record.saga_id, write.expected_version, actual)
            if write.starts is not None:
                entry = (record.saga_type, *write.starts)
                ((holder,),) = yield Statement(self._sql_holder, entry)
                holder = holder or started.get(entry)
                if holder is not None:
                    raise refused_start(write, holder)
                started[entry] = record.saga_id
        for write in writes:
            yield from self._write(write.record, existed=write.expected_version > 0)
        if advance is not None:
            yield from self._checkpoints.advance(advance)

    def _write(self, record: SagaRecord, *, existed: bool) -> Flow[None]:
        saga_id = record.saga_id
        if record.finished:  # its associations and deadlines go with it
            yield Statement(self._sql_delete, (saga_id,))
            return
        if existed:
            yield Statement(self._sql_forget, (saga_id, saga_id))
        yield Statement(
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
        if record.associations:
            pairs = sorted(record.associations)
            yield Statement(
                self._sql_associate,
                (record.saga_type, saga_id, [k for k, _ in pairs], [v for _, v in pairs]),
            )
        if record.deadlines:
            d = record.deadlines
            yield Statement(
                self._sql_schedule,
                (
                    saga_id,
                    [x.id for x in d],
                    [x.due for x in d],
                    [x.message.type for x in d],
                    [x.message.schema_version for x in d],
                    [x.message.data for x in d],
                ),
            )
