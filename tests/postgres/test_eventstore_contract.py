"""The PostgreSQL event stores pass the contract every event store passes."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from busway.eventstore import AsyncEventStore, EventStore, EventTypes
from busway.postgres import AsyncPostgresEventStore, PostgresEventStore
from busway.testing import AsyncEventStoreContract, EventStoreContract
from tests import _postgres


class TestPostgresEventStore(EventStoreContract):
    state_machine_examples = 10

    @pytest.fixture
    def store(self, postgres_dsn: str, pg_schema: str) -> Iterator[EventStore]:
        with PostgresEventStore(postgres_dsn, types=self.event_types(), schema=pg_schema) as s:
            yield s

    def reopen(self, store: EventStore, types: EventTypes) -> EventStore:
        assert isinstance(store, PostgresEventStore)
        store.close()
        return PostgresEventStore(_postgres.DSN, types=types, schema=store.schema)


class TestPostgresEventStoreSmallPages(EventStoreContract):
    """Pages of 7 events, in a table of another name, cross many page boundaries."""

    state_machine_examples = 5

    @pytest.fixture
    def store(self, postgres_dsn: str, pg_schema: str) -> Iterator[EventStore]:
        with PostgresEventStore(
            postgres_dsn, types=self.event_types(), schema=pg_schema, table="log", page_size=7
        ) as s:
            yield s

    def reopen(self, store: EventStore, types: EventTypes) -> EventStore:
        assert isinstance(store, PostgresEventStore)
        store.close()
        return PostgresEventStore(
            _postgres.DSN, types=types, schema=store.schema, table="log", page_size=7
        )


class TestPostgresEventStoreOnAPool(EventStoreContract):
    _pool: ConnectionPool[Any]

    """A store on a pool its caller owns behaves the same, and leaves the pool open."""

    state_machine_examples = 5

    @pytest.fixture
    def pool(self, postgres_dsn: str) -> Iterator[ConnectionPool[Any]]:
        with ConnectionPool(
            postgres_dsn, min_size=1, max_size=4, kwargs={"autocommit": True}
        ) as pool:
            yield pool

    @pytest.fixture
    def store(self, pool: ConnectionPool[Any], pg_schema: str) -> Iterator[EventStore]:
        self._pool = pool
        with PostgresEventStore(pool, types=self.event_types(), schema=pg_schema) as s:
            yield s
        assert not pool.closed

    def reopen(self, store: EventStore, types: EventTypes) -> EventStore:
        assert isinstance(store, PostgresEventStore)
        store.close()
        return PostgresEventStore(self._pool, types=types, schema=store.schema)


class TestPostgresEventStoreOnATransactionalPool(EventStoreContract):
    """A pool whose connections are not in autocommit mode serves the store as well."""

    state_machine_examples = 3

    @pytest.fixture
    def store(self, postgres_dsn: str, pg_schema: str) -> Iterator[EventStore]:
        with (
            ConnectionPool(postgres_dsn, min_size=1, max_size=4) as pool,
            PostgresEventStore(pool, types=self.event_types(), schema=pg_schema) as s,
        ):
            yield s


class TestAsyncPostgresEventStore(AsyncEventStoreContract):
    state_machine_examples = 5

    @pytest.fixture
    def async_store(self, postgres_dsn: str, pg_schema: str) -> AsyncEventStore:
        return AsyncPostgresEventStore(postgres_dsn, types=self.event_types(), schema=pg_schema)

    async def reopen_async(self, store: AsyncEventStore, types: EventTypes) -> AsyncEventStore:
        assert isinstance(store, AsyncPostgresEventStore)
        await store.aclose()
        return AsyncPostgresEventStore(_postgres.DSN, types=types, schema=store.schema)


class TestAsyncPostgresEventStoreOnAPool(AsyncEventStoreContract):
    _pool: AsyncConnectionPool[Any]

    """An async store on an async pool its caller owns, in a table of another name."""

    state_machine_examples = 3

    @pytest.fixture
    def async_store(
        self, postgres_dsn: str, pg_schema: str, runner: asyncio.Runner
    ) -> Iterator[AsyncEventStore]:
        pool = AsyncConnectionPool(
            postgres_dsn, min_size=1, max_size=4, kwargs={"autocommit": True}, open=False
        )
        runner.run(pool.open())
        self._pool = pool
        try:
            yield AsyncPostgresEventStore(
                pool, types=self.event_types(), schema=pg_schema, table="log", page_size=7
            )
            assert not pool.closed
        finally:
            runner.run(pool.close())

    async def reopen_async(self, store: AsyncEventStore, types: EventTypes) -> AsyncEventStore:
        assert isinstance(store, AsyncPostgresEventStore)
        await store.aclose()
        return AsyncPostgresEventStore(
            self._pool, types=types, schema=store.schema, table="log", page_size=7
        )
