"""Saga stores: each passes the shipped contract; the SQLite store adds what it keeps."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from busway.errors import InvalidArgumentError, StoreFormatError
from busway.eventstore import EventTypes, SQLiteEventStore
from busway.sagas import Deadline, InMemorySagaStore, SagaStore, SQLiteSagaStore, Write
from busway.testing import SagaStoreContract

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
record, message = SagaStoreContract.record, SagaStoreContract.message


class TestInMemorySagaStore(SagaStoreContract):
    @pytest.fixture
    def store(self) -> Iterator[SagaStore]:
        with InMemorySagaStore() as store:
            yield store


class TestSQLiteSagaStore(SagaStoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[SagaStore]:
        with SQLiteSagaStore(tmp_path / "sagas.db") as store:
            yield store


def test_sqlite_keeps_sagas_across_restarts(tmp_path: Path) -> None:
    """A reopened SQLite store has every saga, deadline and checkpoint it had."""
    saved = record(
        deadlines=(Deadline(T0, message(1)),),
        outbox=(message(2),),
    )
    with SQLiteSagaStore(tmp_path / "s.db") as first:
        first.commit([Write(saved, 0)], checkpoint=("sagas", 3))
    with SQLiteSagaStore(tmp_path / "s.db") as second:
        assert (saved, [saved], 3) == (
            second.load("s-1"),
            second.due(T0),
            second.checkpoint("sagas"),
        )
        assert "s.db" in repr(second)
    assert "closed" in repr(second)


def test_sqlite_uses_wal_and_shares_a_file_with_an_event_store(tmp_path: Path) -> None:
    """The saga store runs in WAL mode and sits beside an event store in one database."""
    path = tmp_path / "app.db"
    with SQLiteEventStore(path, types=EventTypes()), SQLiteSagaStore(path) as sagas:
        sagas.commit([Write(record(), 0)])
    with sqlite3.connect(path) as conn:
        mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
        components = dict(conn.execute("SELECT table_name, component FROM busway_schema"))
    conn.close()
    assert ("wal", {"events": "eventstore", "sagas": "sagastore"}) == (mode, components)


@pytest.mark.parametrize("table", ["", "1abc", "a-b", "sqlite_x", "busway_schema", "x" * 41, 3])
def test_sqlite_table_names_are_validated(tmp_path: Path, table: object) -> None:
    """Only plain identifiers are accepted as table names."""
    with pytest.raises(InvalidArgumentError, match="an SQL identifier"):
        SQLiteSagaStore(tmp_path / "s.db", table=table)  # type: ignore[arg-type]


def test_sqlite_refuses_what_is_not_a_saga_store(tmp_path: Path) -> None:
    """Foreign tables, other components and later schema versions are refused untouched."""
    path = tmp_path / "s.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE sagas (x)")
    conn.close()
    with pytest.raises(StoreFormatError, match="cannot be opened as a saga store: table 'sagas'"):
        SQLiteSagaStore(path)
    with SQLiteEventStore(path, types=EventTypes(), table="events"):
        pass
    with pytest.raises(StoreFormatError, match="holds a busway eventstore"):
        SQLiteSagaStore(path, table="events")
    with SQLiteSagaStore(path, table="later"):
        pass
    with sqlite3.connect(path) as conn:
        conn.execute("UPDATE busway_schema SET version = 99 WHERE table_name = 'later'")
    conn.close()
    with pytest.raises(StoreFormatError, match="upgrade busway"):
        SQLiteSagaStore(path, table="later")
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE sagas")
        conn.execute("INSERT INTO busway_schema VALUES ('sagas', 'sagastore', 1)")
    conn.close()
    with pytest.raises(StoreFormatError, match="is gone"):
        SQLiteSagaStore(path)


def test_sqlite_refuses_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    """A file of something else is reported, and the connection is closed."""
    path = tmp_path / "notes.txt"
    path.write_text("not a database, not at all, " * 100)
    with pytest.raises(StoreFormatError, match="not an SQLite database"):
        SQLiteSagaStore(path)


def test_sqlite_checks_synchronous(tmp_path: Path) -> None:
    """Only SQLite's synchronous levels are accepted."""
    with pytest.raises(InvalidArgumentError, match="synchronous"):
        SQLiteSagaStore(tmp_path / "s.db", synchronous="sometimes")  # type: ignore[arg-type]


def test_the_memory_store_says_what_it_holds() -> None:
    """Its repr counts its sagas."""
    store = InMemorySagaStore()
    store.commit([Write(record(), 0)])
    assert "<InMemorySagaStore 1 sagas>" == repr(store)


@pytest.mark.parametrize("value", ["abc", -1, 2.5, None])
def test_sqlite_refuses_a_damaged_checkpoint_by_name(tmp_path: Path, value: object) -> None:
    """A subscription position no busway store writes is a StoreFormatError saying which."""
    path = tmp_path / "sagas.db"
    SQLiteSagaStore(path).close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("DROP TABLE sagas_checkpoints")
        conn.execute("CREATE TABLE sagas_checkpoints (name TEXT PRIMARY KEY, position)")
        conn.execute("INSERT INTO sagas_checkpoints VALUES ('bookings', ?)", (value,))
        conn.commit()
    with SQLiteSagaStore(path) as store:
        with pytest.raises(StoreFormatError) as info:
            store.checkpoint("bookings")
        missing = [
            p for p in ("sagas_checkpoints", "'bookings'", repr(value)) if p not in str(info.value)
        ]
        assert [] == missing
        assert 0 == store.checkpoint("other")
