"""The PostgreSQL snapshot store: the shipped contract, and the damage it refuses."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest

from busway.aggregates import Snapshot, SnapshotStore
from busway.errors import SerializationError
from busway.postgres import PostgresSnapshotStore
from busway.testing import SnapshotStoreContract


class TestPostgresSnapshotStore(SnapshotStoreContract):
    @pytest.fixture
    def store(self, postgres_dsn: str, pg_schema: str) -> Iterator[SnapshotStore]:
        with PostgresSnapshotStore(postgres_dsn, schema=pg_schema) as store:
            yield store


@pytest.mark.parametrize(
    ("column", "value"), [("state", "[1]"), ("event_id", b"\x01\x02")], ids=["state", "event_id"]
)
def test_a_damaged_snapshot_is_refused(
    postgres_dsn: str, pg_schema: str, column: str, value: object
) -> None:
    """A row edited into no snapshot busway writes loads as SerializationError naming the stream."""
    with PostgresSnapshotStore(postgres_dsn, schema=pg_schema, table="snaps") as store:
        store.save(Snapshot("order-1", 3, uuid.uuid4(), 1, "{}"))
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(f'UPDATE "{pg_schema}".snaps SET {column} = %s', (value,))
        with pytest.raises(SerializationError, match="snapshot of stream 'order-1' in postgresql"):
            store.load("order-1")
        assert repr(store).startswith(
            f"<PostgresSnapshotStore postgresql://127.0.0.1:5432/test (schema {pg_schema}"
        )
