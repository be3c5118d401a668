"""The PostgreSQL saga store: the shipped contract, and what it keeps across workers."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from busway.errors import InvalidArgumentError, SagaRecordError, StoreFormatError
from busway.postgres import PostgresSagaStore
from busway.sagas import Deadline, SagaStore, Write
from busway.subscriptions import Advance
from busway.testing import SagaStoreContract
from tests import _postgres

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
record, message = SagaStoreContract.record, SagaStoreContract.message
parked = SagaStoreContract.parked_event


class TestPostgresSagaStore(SagaStoreContract):
    @pytest.fixture
    def store(self, postgres_dsn: str, pg_schema: str) -> Iterator[SagaStore]:
        with PostgresSagaStore(postgres_dsn, schema=pg_schema) as store:
            yield store

    def open_another(self, store: SagaStore) -> SagaStore:
        assert isinstance(store, PostgresSagaStore)
        return PostgresSagaStore(_postgres.DSN, schema=store.schema)


def test_a_store_on_a_borrowed_pool_keeps_sagas_for_the_next(
    postgres_dsn: str, pg_schema: str
) -> None:
    """Stores on a pool of the caller's leave it open, and a later store reads what they kept."""
    saved = record(deadlines=(Deadline(T0, message(1)),), outbox=(message(2),))
    with ConnectionPool(postgres_dsn, kwargs={"autocommit": True}, open=True) as pool:
        with PostgresSagaStore(pool, schema=pg_schema, table="bookings") as first:
            first.commit(
                [Write(saved, 0)],
                checkpoint=Advance("sagas", 0, 3, token=4, park=parked("sagas", 2)),
            )
        assert not pool.closed
        with PostgresSagaStore(pool, schema=pg_schema, table="bookings") as second:
            assert (saved, [saved], [saved], 3, 4, [parked("sagas", 2)]) == (
                second.load("s-1"),
                second.due(T0),
                second.pending(),
                second.checkpoint("sagas"),
                second.token("sagas"),
                second.parked("sagas"),
            )
            assert repr(second) == (
                f"<PostgresSagaStore postgresql://127.0.0.1:5432/test (schema {pg_schema}, "
                "table bookings)>"
            )


def test_a_damaged_outbox_is_refused(postgres_dsn: str, pg_schema: str) -> None:
    """An outbox edited into no JSON list reads back as SagaRecordError naming the saga."""
    with PostgresSagaStore(postgres_dsn, schema=pg_schema) as store:
        store.commit([Write(record(outbox=(message(1),)), 0)])
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(f'UPDATE "{pg_schema}".sagas SET outbox = %s', ("{}",))
        with pytest.raises(SagaRecordError, match=r"saga 's-1' .* sagas.outbox is dict JSON"):
            store.pending()


def test_a_table_of_other_hands_is_refused(postgres_dsn: str, pg_schema: str) -> None:
    """A table of the store's name that busway did not make is left alone: StoreFormatError."""
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{pg_schema}"')
        conn.execute(f'CREATE TABLE "{pg_schema}".sagas_deadlines (id int)')
    with (
        PostgresSagaStore(postgres_dsn, schema=pg_schema) as store,
        pytest.raises(StoreFormatError, match="sagas_deadlines exists but is not registered"),
    ):
        store.load("s-1")


@pytest.mark.parametrize("table", ["x" * 41, "pg_sagas", "1st"])
def test_a_table_name_the_tables_beside_cannot_take_is_refused(table: str) -> None:
    """The name must leave room for the suffixes of the tables beside it: InvalidArgumentError."""
    with pytest.raises(InvalidArgumentError, match="table"):
        PostgresSagaStore("postgresql://nowhere/none", table=table)
