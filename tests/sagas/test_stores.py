"""Saga stores: each passes the shipped contract; the SQLite store adds what it keeps."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from busway.errors import InvalidArgumentError, LeaseLostError, StoreFormatError
from busway.eventstore import EventTypes, SQLiteEventStore
from busway.sagas import Deadline, InMemorySagaStore, SagaStore, SQLiteSagaStore, Write
from busway.subscriptions import Advance
from busway.testing import SagaStoreContract

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
record, message = SagaStoreContract.record, SagaStoreContract.message
parked = SagaStoreContract.parked_event


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

    def open_another(self, store: SagaStore) -> SagaStore:
        assert isinstance(store, SQLiteSagaStore)
        assert store.path is not None
        return SQLiteSagaStore(store.path)


def test_sqlite_keeps_sagas_across_restarts(tmp_path: Path) -> None:
    """A reopened SQLite store has every saga, deadline, checkpoint, token and parked event."""
    saved = record(
        deadlines=(Deadline(T0, message(1)),),
        outbox=(message(2),),
    )
    with SQLiteSagaStore(tmp_path / "s.db") as first:
        first.commit(
            [Write(saved, 0)], checkpoint=Advance("sagas", 0, 3, token=4, park=parked("sagas", 2))
        )
    with SQLiteSagaStore(tmp_path / "s.db") as second:
        assert (saved, [saved], 3, 4, [parked("sagas", 2)]) == (
            second.load("s-1"),
            second.due(T0),
            second.checkpoint("sagas"),
            second.token("sagas"),
            second.parked("sagas"),
        )
        with pytest.raises(LeaseLostError):
            second.commit([], checkpoint=Advance("sagas", 3, 4, token=3))
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


def _damage(path: Path, *statements: str) -> None:
    """Run *statements* on the file, as other hands than busway's would."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        for statement in statements:
            conn.execute(statement)
        conn.commit()


@pytest.mark.parametrize("value", ["abc", -1, 2.5, None])
def test_sqlite_refuses_a_damaged_checkpoint_by_name(tmp_path: Path, value: object) -> None:
    """A subscription position no busway store writes is a StoreFormatError saying which."""
    path = tmp_path / "sagas.db"
    SQLiteSagaStore(path).close()
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("DROP TABLE sagas_checkpoints")
        conn.execute("CREATE TABLE sagas_checkpoints (name TEXT PRIMARY KEY, position, token)")
        conn.execute("INSERT INTO sagas_checkpoints VALUES ('bookings', ?, 0)", (value,))
        conn.execute("INSERT INTO sagas_checkpoints VALUES ('fenced', 1, ?)", (value,))
        conn.commit()
    with SQLiteSagaStore(path) as store:
        calls: list[tuple[str, Callable[[], object]]] = [
            ("'bookings'", lambda: store.checkpoint("bookings")),
            ("'bookings'", store.checkpoints),
            ("'fenced'", lambda: store.token("fenced")),
            ("'fenced'", lambda: store.commit([], checkpoint=Advance("fenced", 1, 2, token=9))),
        ]
        for name, call in calls:
            with pytest.raises(StoreFormatError) as info:
                call()
            said = ("sagas_checkpoints", name, repr(value))
            assert [] == [part for part in said if part not in str(info.value)]
        assert 0 == store.checkpoint("other")


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("event_id", b"short"),
        ("event_id", "e3e70682-c209-4cac-629f-6fbed82c07cd"),
        ("parked_at", 2**62),
        ("parked_at", "2024-05-01"),
        ("attempts", 0),
        ("version", 1.5),
        ("stream_id", b"order-1"),
        ("type", ""),
        ("error", b"ValueError"),
    ],
)
def test_sqlite_refuses_a_damaged_parked_event(tmp_path: Path, column: str, value: object) -> None:
    """A parked event's value no busway store writes is a StoreFormatError naming the row."""
    path = tmp_path / "sagas.db"
    with SQLiteSagaStore(path) as store:
        store.commit([], checkpoint=Advance("c", 0, 7, park=parked("c", 7)))
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(f"UPDATE sagas_parked SET {column} = ?", (value,))
        conn.commit()
    with SQLiteSagaStore(path) as store, pytest.raises(StoreFormatError) as info:
        store.parked("c")
    said = ("'sagas_parked'", repr(value), f"as the {column} of", "'c' parked at position 7")
    assert [] == [part for part in said if part not in str(info.value)]


def test_sqlite_refuses_checkpoint_tables_of_another_layout(tmp_path: Path) -> None:
    """Checkpoint tables without the token, or parked events of other columns, are refused."""
    path = tmp_path / "sagas.db"
    SQLiteSagaStore(path).close()
    _damage(
        path,
        "DROP TABLE sagas_checkpoints",
        "CREATE TABLE sagas_checkpoints (name TEXT PRIMARY KEY, position INTEGER)",
    )
    with pytest.raises(StoreFormatError, match="'sagas_checkpoints' has columns name, position "):
        SQLiteSagaStore(path)
    SQLiteSagaStore(path, table="other").close()
    _damage(path, "DROP TABLE other_parked", "CREATE TABLE other_parked (position)")
    with pytest.raises(StoreFormatError, match="'other_parked' has columns position where"):
        SQLiteSagaStore(path, table="other")


@pytest.mark.parametrize(
    ("starts", "expected"), [(("order_id", "o-1"), 1), (("order_id",), 0), (("k", 1), 0)]
)
def test_only_a_new_saga_starts_on_an_association(starts: object, expected: int) -> None:
    """Write.starts is a (key, value) pair of str, for a saga not stored yet."""
    with pytest.raises(InvalidArgumentError, match=r"Write\.starts"):
        Write(record(), expected, starts=starts)  # type: ignore[arg-type]
