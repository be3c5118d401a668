"""A snapshot store in a PostgreSQL table."""

from __future__ import annotations

from typing import Any, Final, final

from psycopg_pool import ConnectionPool

from ..aggregates._snapshots import COLUMNS, Snapshot, stored_snapshot
from ._db import Database, Flow, Layout, Statement, check_identifier, quoted
from ._store import PostgresStore

__all__ = ["PostgresSnapshotStore"]

SCHEMA_VERSION: Final = 1


@final
class PostgresSnapshotStore(PostgresStore):
    """A :class:`~busway.aggregates.SnapshotStore` in a table of a PostgreSQL schema.

    Given a DSN it opens a pool of its own, which :meth:`close` closes; given a
    ``psycopg_pool.ConnectionPool``, it borrows connections and leaves the pool open. The
    table is made in *schema* on first use. A save of an older version than the one kept
    leaves the kept one, also when two processes save at once.
    """

    _holds = "snapshots"
    table: str
    schema: str

    def __init__(
        self,
        dsn_or_pool: str | ConnectionPool[Any],
        *,
        schema: str = "public",
        table: str = "snapshots",
    ) -> None:
        self.table = check_identifier(table, "table")
        self.schema = check_identifier(schema, "schema")
        t = quoted(schema, table)
        layout = Layout(
            kind="a snapshot store",
            tables=(table,),
            create=(
                f"CREATE TABLE {t} (stream_id TEXT PRIMARY KEY, version BIGINT NOT NULL, "
                "event_id BYTEA NOT NULL, schema_version BIGINT NOT NULL, state TEXT NOT NULL)",
            ),
            columns=COLUMNS,
            component="snapshotstore",
            version=SCHEMA_VERSION,
        )
        super().__init__(Database(dsn_or_pool, layout, schema=schema))
        self._sql_load = f"SELECT {', '.join(COLUMNS)} FROM {t} WHERE stream_id = %s"
        self._sql_save = (
            f"INSERT INTO {t} AS kept ({', '.join(COLUMNS)}) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, "
            "event_id = excluded.event_id, schema_version = excluded.schema_version, "
            "state = excluded.state WHERE excluded.version >= kept.version"
        )

    def _load(self, stream_id: str) -> Flow[Snapshot | None]:
        rows = yield Statement(self._sql_load, (stream_id,))
        return stored_snapshot(stream_id, rows[0], self._db.location) if rows else None

    def _save(self, snapshot: Snapshot) -> Flow[None]:
        yield Statement(
            self._sql_save,
            (
                snapshot.stream_id,
                snapshot.version,
                snapshot.event_id.bytes,
                snapshot.schema_version,
                snapshot.state,
            ),
        )

    def load(self, stream_id: str) -> Snapshot | None:
        """Return the latest snapshot of *stream_id*, or ``None``.

        Raise ``SerializationError`` if its row is damaged.
        """
        return self._run(self._load(stream_id))

    def save(self, snapshot: Snapshot) -> None:
        """Keep *snapshot* unless one of a later version is already kept."""
        self._run(self._save(snapshot))
