"""The PostgreSQL event stores pass the contract every event store passes."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import pytest
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from busway.eventstore import AsyncEventStore, EventStore, EventTypes
from busway.postgres import AsyncPostgresEventStore, PostgresEventStore
from busway.testing import AsyncEventStoreContract, EventStoreContract
from tests import _postgres

# The variants run the tests their variation touches, so the suite stays quick; the
# default stores run every test.
PAGING = frozenset(
    {
        "test_behaves_like_the_model",
        "test_bounds_beyond_any_store",
        "test_events_survive_reopening",
        "test_read_all_by_type",
        "test_read_all_from_position_and_limit",
        "test_read_all_pages_through_many_events",
        "test_streams",
        "test_subscribe_by_type",
        "test_subscribe_pages_through_a_long_history",
    }
)
POOLING = frozenset(
    {
        "test_append_then_read",
        "test_behaves_like_the_model",
        "test_close_twice",
        "test_closing_the_store_ends_its_live_streams",
        "test_empty_batch",
        "test_event_id_in_another_stream",
        "test_events_survive_reopening",
        "test_retry_is_idempotent",
        "test_retry_of_a_middle_batch",
        "test_subscribe_follows_many_writers_in_order",
        "test_subscribe_wakes_for_an_append_in_another_thread",
        "test_wrong_expected_version",
    }
)


C = TypeVar("C", bound=type)


def running(tests: frozenset[str]) -> Callable[[C], C]:
    """Keep only *tests* (and an async store's own) of a contract subclass."""

    def keep(cls: C) -> C:
        for name in dir(cls):
            if (
                name.startswith("test_")
                and name not in tests
                and not name.startswith("test_async_")
            ):
                setattr(cls, name, None)
        return cls

    return keep


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


@running(PAGING)
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


@running(POOLING)
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


@running(POOLING)
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


@running(POOLING | PAGING)
class TestAsyncPostgresEventStoreOnAPool(AsyncEventStoreContract):
    _pool: AsyncConnectionPool[Any]

    """An async store on an async pool its caller owns, in a table of another name."""

    state_machine_examples = 3

    @pytest.fixture
    def async_store(
        self,
        postgres_dsn: str,
        pg_schema: str,
        runner: asyncio.Runner,
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
