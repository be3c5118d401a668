"""What only the SQLite store does: files, schema, durability settings, sharing a connection."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from busway.eventstore import (
    SCHEMA_VERSION,
    InvalidArgumentError,
    SerializationError,
    SQLiteEventStore,
    StoreClosedError,
    StoreFormatError,
    UnknownEventTypeError,
)

from .events import OrderCancelled, OrderPlaced, types


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "events.db"


@pytest.fixture
def store(path: Path) -> Iterator[SQLiteEventStore]:
    with SQLiteEventStore(path, types=types()) as store:
        yield store


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _pragma(path: Path, name: str) -> object:
    connection = sqlite3.connect(path)
    try:
        return connection.execute(f"PRAGMA {name}").fetchone()[0]
    finally:
        connection.close()


def _query(path: Path, sql: str, params: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    connection = sqlite3.connect(path)
    try:
        with connection:
            return connection.execute(sql, params).fetchall()
    finally:
        connection.close()


def test_file_is_in_wal_mode_and_records_its_schema(store: SQLiteEventStore, path: Path) -> None:
    """A new store switches the file to WAL and records the table's schema version."""
    assert "wal" == _pragma(path, "journal_mode")
    assert [("events", "eventstore", SCHEMA_VERSION)] == _query(
        path, "SELECT table_name, component, version FROM busway_schema"
    )


@pytest.mark.parametrize(("setting", "level"), [("full", 2), ("normal", 1), ("off", 0)])
def test_synchronous_setting(path: Path, setting: str, level: int) -> None:
    """The durability setting is applied to the store's connection."""
    with SQLiteEventStore(path, types=types(), synchronous=setting) as store:  # type: ignore[arg-type]
        assert level == store._conn.execute("PRAGMA synchronous").fetchone()[0]


def test_default_durability_is_full(store: SQLiteEventStore) -> None:
    """By default a committed append survives a power cut (synchronous=FULL)."""
    assert 2 == store._conn.execute("PRAGMA synchronous").fetchone()[0]


def test_bad_synchronous_setting(path: Path) -> None:
    """An unknown durability setting is refused and creates no file."""
    with pytest.raises(InvalidArgumentError):
        SQLiteEventStore(path, types=types(), synchronous="sometimes")  # type: ignore[arg-type]
    assert not path.exists()


@pytest.mark.parametrize(
    "table", ["", "1events", "events; DROP TABLE x", "sqlite_master", "busway_schema", "a" * 64, 7]
)
def test_table_names_are_validated(path: Path, table: object) -> None:
    """Only plain identifiers are accepted as table names, before the file is touched."""
    with pytest.raises(InvalidArgumentError) as info:
        SQLiteEventStore(path, types=types(), table=table)  # type: ignore[arg-type]
    assert "table" == info.value.argument
    assert not path.exists()


def test_several_stores_share_a_file(path: Path) -> None:
    """Stores on different tables of one file are independent."""
    with (
        SQLiteEventStore(path, types=types(), table="orders") as orders,
        SQLiteEventStore(path, types=types(), table="audit") as audit,
    ):
        orders.append("o-1", [OrderCancelled("o-1")])
        assert 0 == audit.head_position()
        assert 1 == orders.head_position()


def test_a_foreign_table_is_refused_untouched(path: Path) -> None:
    """A database whose table of that name is not a store fails and is left as it was."""
    _query(path, "CREATE TABLE events (id INTEGER PRIMARY KEY, body TEXT)")
    _query(path, "INSERT INTO events (body) VALUES ('mine')")
    before = _digest(path)
    with pytest.raises(StoreFormatError) as info:
        SQLiteEventStore(path, types=types())
    assert "another table=" in str(info.value)
    assert before == _digest(path)
    assert "delete" == _pragma(path, "journal_mode")


def test_a_foreign_busway_schema_table_is_refused(path: Path) -> None:
    """A table named busway_schema with other columns means the file is not ours."""
    _query(path, "CREATE TABLE busway_schema (x TEXT)")
    before = _digest(path)
    with pytest.raises(StoreFormatError):
        SQLiteEventStore(path, types=types())
    assert before == _digest(path)


def test_a_table_with_other_columns_is_refused(path: Path) -> None:
    """A registered table whose columns changed is refused."""
    SQLiteEventStore(path, types=types()).close()
    _query(path, "ALTER TABLE events ADD COLUMN extra TEXT")
    with pytest.raises(StoreFormatError) as info:
        SQLiteEventStore(path, types=types())
    assert "extra" in str(info.value)


def test_a_later_schema_version_is_refused(path: Path) -> None:
    """A store written by a later release is refused, asking for an upgrade."""
    SQLiteEventStore(path, types=types()).close()
    _query(path, "UPDATE busway_schema SET version = ?", (SCHEMA_VERSION + 1,))
    with pytest.raises(StoreFormatError) as info:
        SQLiteEventStore(path, types=types())
    assert "upgrade busway" in str(info.value)


def test_another_component_is_refused(path: Path) -> None:
    """A table that holds another busway component is not taken for an event store."""
    SQLiteEventStore(path, types=types()).close()
    _query(path, "UPDATE busway_schema SET component = 'sagas'")
    with pytest.raises(StoreFormatError) as info:
        SQLiteEventStore(path, types=types())
    assert "sagas" in str(info.value)


def test_a_dropped_table_is_refused(path: Path) -> None:
    """A store whose table was dropped is not silently recreated empty."""
    SQLiteEventStore(path, types=types()).close()
    _query(path, "DROP TABLE events")
    with pytest.raises(StoreFormatError):
        SQLiteEventStore(path, types=types())


@pytest.mark.parametrize("content", [b"not a database at all, just text\n" * 100, b"\x00" * 4096])
def test_a_file_that_is_not_sqlite_is_refused_untouched(path: Path, content: bytes) -> None:
    """A file that is not an SQLite database fails with StoreFormatError and is unchanged."""
    path.write_bytes(content)
    with pytest.raises(StoreFormatError) as info:
        SQLiteEventStore(path, types=types())
    assert str(path) in str(info.value)
    assert content == path.read_bytes()
    assert [path] == list(path.parent.iterdir())


def test_an_existing_database_gains_a_store(path: Path) -> None:
    """A store can live in an application's own database beside its tables."""
    _query(path, "CREATE TABLE users (name TEXT)")
    with SQLiteEventStore(path, types=types()) as store:
        store.append("o-1", [OrderCancelled("o-1")])
    assert [] == _query(path, "SELECT * FROM users")


def test_corrupt_row_names_its_position(store: SQLiteEventStore, path: Path) -> None:
    """A row whose payload is damaged fails to read with an error naming its position."""
    store.append("o-1", [OrderCancelled("o-1"), OrderCancelled("o-1")])
    _query(path, "UPDATE events SET data = '{not json' WHERE version = 2")
    with pytest.raises(SerializationError) as info:
        store.read_stream("o-1")
    assert 2 == info.value.position
    assert "position 2" in str(info.value)
    assert 1 == len(store.read_stream("o-1", limit=1))


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("data", '{"order_id": 5, "total": 1.5}'),
        ("data", "[1, 2]"),
        ("metadata", "[]"),
        ("metadata", "nope"),
        ("event_id", "not-a-uuid"),
        ("event_id", "0123456789abcdef"),  # 16 characters, but text
        ("event_id", b"short"),
        ("recorded_at", "yesterday"),
        ("recorded_at", 1700000000),
        ("schema_version", "'one'"),
        ("schema_version", 7),
        ("stream_id", b"o-1"),
        ("version", "two"),
        ("data", "[" * 100_000 + "]" * 100_000),
        ("data", '{"order_id": ' + "[" * 100_000 + "]" * 100_000 + ', "total": "1.5"}'),
        ("metadata", '{"m": ' + "[" * 100_000 + "]" * 100_000 + "}"),
    ],
)
def test_corrupt_columns(store: SQLiteEventStore, path: Path, column: str, value: object) -> None:
    """Any damaged column of a row is reported as a SerializationError with the position."""
    store.append("o-1", [OrderPlaced("o-1", Decimal("1.5"))])
    _query(path, f"UPDATE events SET {column} = ?", (value,))
    with pytest.raises(SerializationError) as info:
        list(store.read_all())
    assert 1 == info.value.position


@pytest.mark.parametrize(
    ("stored", "read"),
    [
        ("2024-05-06 07:08:09", datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)),  # SQLite's own clock
        ("2024-05-06T09:08:09+02:00", datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)),
    ],
)
def test_recording_times_are_read_in_utc(
    store: SQLiteEventStore, path: Path, stored: str, read: datetime
) -> None:
    """A recording time stored without an offset is UTC, as SQLite writes it; others convert."""
    store.append("o-1", [OrderCancelled("o-1")])
    _query(path, "UPDATE events SET recorded_at = ?", (stored,))
    (recorded,) = store.read_stream("o-1")
    assert read == recorded.recorded_at
    assert UTC is recorded.recorded_at.tzinfo


def test_unknown_type_in_the_file(store: SQLiteEventStore, path: Path) -> None:
    """A row whose type no class is registered for names the type and the position."""
    store.append("o-1", [OrderCancelled("o-1")])
    _query(path, "UPDATE events SET type = 'os.system'")
    with pytest.raises(UnknownEventTypeError) as info:
        store.read_stream("o-1")
    assert ("os.system", 1) == (info.value.type_name, info.value.position)


def test_closed_store(path: Path) -> None:
    """A closed store refuses to be used, saying so."""
    store = SQLiteEventStore(path, types=types())
    reading = store.read_all()
    store.close()
    with pytest.raises(StoreClosedError):
        store.append("o-1", [OrderCancelled("o-1")])
    with pytest.raises(StoreClosedError):
        store.stream_version("o-1")
    with pytest.raises(StoreClosedError):
        next(reading)
    assert "closed" in repr(store)


def test_append_joins_the_callers_transaction(tmp_path: Path) -> None:
    """On a connection inside a transaction, an append lasts only if that transaction commits."""
    connection = sqlite3.connect(tmp_path / "app.db")
    try:
        connection.execute("CREATE TABLE views (n INTEGER)")
        connection.commit()
        with SQLiteEventStore(connection, types=types()) as store:
            connection.execute("INSERT INTO views VALUES (1)")
            store.append("o-1", [OrderCancelled("o-1")])
            connection.rollback()
            assert 0 == store.stream_version("o-1")
            connection.execute("INSERT INTO views VALUES (2)")
            store.append("o-1", [OrderCancelled("o-1")])
            connection.commit()
            assert 1 == store.stream_version("o-1")
        assert [(2,)] == connection.execute("SELECT n FROM views").fetchall()
    finally:
        connection.close()


def test_a_given_connection_is_not_closed(tmp_path: Path) -> None:
    """Closing the store leaves a connection it was given open for its owner."""
    connection = sqlite3.connect(tmp_path / "app.db")
    try:
        SQLiteEventStore(connection, types=types()).close()
        assert [(1,)] == connection.execute("SELECT 1").fetchall()
    finally:
        connection.close()


def test_in_memory_database() -> None:
    """ ":memory:" gives a private, throwaway SQLite store."""
    with SQLiteEventStore(":memory:", types=types()) as store:
        assert 1 == store.append("o-1", [OrderCancelled("o-1")])
        assert store.path is None


def test_reading_a_stream_uses_the_index(store: SQLiteEventStore) -> None:
    """Stream reads and version checks are index lookups, whatever the store's size."""
    plans = [
        " ".join(str(row[-1]) for row in store._conn.execute(f"EXPLAIN QUERY PLAN {sql}", params))
        for sql, params in [
            (store._sql_version, ("s",)),
            (store._sql_forwards, ("s", 1, 10)),
            (store._sql_backwards, ("s", 10, 10)),
        ]
    ]
    for plan in plans:
        assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, plan


def test_types_must_be_an_event_types(path: Path) -> None:
    """A store built without an EventTypes registry says what it needs."""
    with pytest.raises(InvalidArgumentError) as info:
        SQLiteEventStore(path, types=[OrderCancelled])  # type: ignore[arg-type]
    assert "types" == info.value.argument
    assert not path.exists()
