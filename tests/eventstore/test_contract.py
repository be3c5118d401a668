"""Every store shipped with busway passes the contract third-party backends must pass."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from busway.eventstore import (
    AsyncEventStore,
    AsyncEventStoreAdapter,
    AsyncInMemoryEventStore,
    AsyncSQLiteEventStore,
    EventStore,
    EventTypes,
    InMemoryEventStore,
    SQLiteEventStore,
)
from busway.testing import AsyncEventStoreContract, EventStoreContract


class TestInMemoryEventStore(EventStoreContract):
    @pytest.fixture
    def store(self) -> Iterator[EventStore]:
        with InMemoryEventStore(types=self.event_types()) as store:
            yield store


class TestSQLiteEventStore(EventStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[EventStore]:
        with SQLiteEventStore(tmp_path / "events.db", types=self.event_types()) as store:
            yield store

    def reopen(self, store: EventStore, types: EventTypes) -> EventStore:
        assert isinstance(store, SQLiteEventStore)
        assert store.path is not None
        store.close()
        return SQLiteEventStore(store.path, types=types)


class TestSQLiteEventStoreSmallPages(EventStoreContract):
    """Pages of 7 events make read_all and streams cross many page boundaries."""

    state_machine_examples = 10

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[EventStore]:
        with SQLiteEventStore(
            tmp_path / "events.db", types=self.event_types(), table="log", page_size=7
        ) as store:
            yield store

    def reopen(self, store: EventStore, types: EventTypes) -> EventStore:
        assert isinstance(store, SQLiteEventStore)
        assert store.path is not None
        store.close()
        return SQLiteEventStore(store.path, types=types, table="log", page_size=7)


class TestSQLiteEventStoreOnAConnection(EventStoreContract):
    """A store on a connection its caller owns behaves the same."""

    state_machine_examples = 10

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[EventStore]:
        # Shared with other threads, as the live stream tests do.
        connection = sqlite3.connect(tmp_path / "app.db", check_same_thread=False)
        try:
            with SQLiteEventStore(connection, types=self.event_types()) as store:
                yield store
        finally:
            connection.close()


class TestAsyncSQLiteEventStore(AsyncEventStoreContract):
    state_machine_examples = 10

    @pytest.fixture
    def async_store(self, tmp_path: Path) -> AsyncEventStore:
        return AsyncSQLiteEventStore(tmp_path / "events.db", types=self.event_types())

    async def reopen_async(self, store: AsyncEventStore, types: EventTypes) -> AsyncEventStore:
        assert isinstance(store, AsyncSQLiteEventStore)
        assert store.path is not None
        await store.aclose()
        return AsyncSQLiteEventStore(store.path, types=types)


class TestAsyncInMemoryEventStore(AsyncEventStoreContract):
    state_machine_examples = 10

    @pytest.fixture
    def async_store(self) -> AsyncEventStore:
        return AsyncInMemoryEventStore(types=self.event_types())


class TestAsyncEventStoreAdapter(AsyncEventStoreContract):
    state_machine_examples = 10

    @pytest.fixture
    def async_store(self) -> AsyncEventStore:
        return AsyncEventStoreAdapter(InMemoryEventStore(types=self.event_types()))
