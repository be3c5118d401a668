"""What only the SQLite store does: files, schema, durability settings, sharing a connection."""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import attrs
import hypothesis.strategies as st
import pytest
from hypothesis import given

from busway.eventstore import (
    NO_STREAM,
    SCHEMA_VERSION,
    DuplicateEventError,
    EventTypes,
    InvalidArgumentError,
    NewEvent,
    RecordedEvent,
    SerializationError,
    SQLiteEventStore,
    StoreClosedError,
    StoreFormatError,
    StoreUnavailableError,
    UnknownEventTypeError,
)

from ..strategies import JSON_KINDS, json_kind, json_values_except
from .events import Colour, Label, OrderCancelled, OrderPlaced, Point, types


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


def test_batches_of_any_size_keep_their_order(tmp_path: Path) -> None:
    """A batch larger than one SQL statement may carry is stored whole, in order."""
    connection = sqlite3.connect(tmp_path / "events.db")
    connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 24)  # three rows a statement
    try:
        with SQLiteEventStore(connection, types=types()) as store:
            batch = [OrderCancelled(f"o-{n}") for n in range(11)]
            assert 11 == store.append("s", batch, expected_version=NO_STREAM)
            assert 12 == store.append("s", [OrderCancelled("last")])
            stored = store.read_stream("s")
            assert [*batch, OrderCancelled("last")] == [r.event for r in stored]
            assert list(range(1, 13)) == [r.version for r in stored]
            assert list(range(1, 13)) == [r.position for r in stored]
            again = [NewEvent(e) for e in batch]
            store.append("t", again)
            with pytest.raises(DuplicateEventError):
                store.append("u", [NewEvent(OrderCancelled("x")), *again[5:]])
            assert 0 == store.stream_version("u")
    finally:
        connection.close()


def test_events_before_a_damaged_row_are_read(store: SQLiteEventStore, path: Path) -> None:
    """read_all yields the events before a damaged row, then names the row that is damaged."""
    store.append("o-1", [OrderCancelled(f"o-{n}") for n in range(5)])
    _query(path, "UPDATE events SET data = '{not json' WHERE position = 3")
    reading = store.read_all()
    assert [1, 2] == [next(reading).position, next(reading).position]
    with pytest.raises(SerializationError) as info:
        next(reading)
    assert 3 == info.value.position


@pytest.mark.usefixtures("codec")
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
@pytest.mark.usefixtures("codec")
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


def test_recording_times_are_stored_in_utc_to_the_microsecond(
    store: SQLiteEventStore, path: Path
) -> None:
    """Each append stores its time as ISO 8601 text in UTC with six digits of microseconds."""
    before = datetime.now(UTC)
    for n in range(3):
        store.append(f"o-{n}", [OrderCancelled(f"o-{n}")])
    after = datetime.now(UTC)
    stored = [str(at) for (at,) in _query(path, "SELECT recorded_at FROM events ORDER BY position")]
    for text, (recorded,) in zip(
        stored, (store.read_stream(f"o-{n}") for n in range(3)), strict=True
    ):
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", text)
        assert before <= recorded.recorded_at <= after
        assert datetime.fromisoformat(text) == recorded.recorded_at
    assert stored == sorted(stored)


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


def test_an_append_whose_commit_is_refused_stores_nothing(tmp_path: Path) -> None:
    """An append SQLite refuses to commit is rolled back whole and raises StoreUnavailableError."""
    connection = sqlite3.connect(tmp_path / "app.db", isolation_level=None)
    try:
        with SQLiteEventStore(connection, types=types()) as store:
            # A deferred foreign key is checked at COMMIT: a trigger breaking one makes
            # SQLite refuse the commit and keep the transaction open.
            connection.executescript(
                """
                PRAGMA foreign_keys = ON;
                CREATE TABLE parent (id INTEGER PRIMARY KEY);
                CREATE TABLE child (
                    parent INTEGER REFERENCES parent (id) DEFERRABLE INITIALLY DEFERRED
                );
                CREATE TRIGGER orphan AFTER INSERT ON events BEGIN
                    INSERT INTO child (parent) VALUES (99);
                END;
                """
            )
            with pytest.raises(StoreUnavailableError, match="FOREIGN KEY"):
                store.append("o-1", [OrderCancelled("o-1")])
            assert not connection.in_transaction
            assert [] == store.read_stream("o-1")
            connection.execute("DROP TRIGGER orphan")
            assert 1 == store.append("o-1", [OrderCancelled("o-1")])
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


# -- damaged rows ------------------------------------------------------------------------------


@attrs.frozen
class Ledger:
    """Fields of every JSON kind and none with a default, so no damage can go unnoticed."""

    text: str
    count: int
    ratio: float
    flag: bool
    amount: Decimal
    when: datetime
    uid: uuid.UUID
    colour: Colour
    tags: tuple[str, ...]
    lookup: dict[str, int]
    point: Point
    points: list[Point]
    shape: Point | Label


_points = st.builds(Point, st.integers(), st.integers())
_ledgers = st.builds(
    Ledger,
    text=st.text(max_size=8),
    count=st.integers(),
    ratio=st.floats(allow_nan=False, allow_infinity=False),
    flag=st.booleans(),
    amount=st.decimals(allow_nan=False, allow_infinity=False, places=2),
    when=st.datetimes(timezones=st.just(UTC)),
    uid=st.uuids(),
    colour=st.sampled_from(Colour),
    tags=st.lists(st.text(max_size=3), max_size=3).map(tuple),
    lookup=st.dictionaries(st.text(max_size=3), st.integers(), max_size=3),
    point=_points,
    points=st.lists(_points, max_size=2),
    shape=_points | st.builds(Label, st.integers(), st.integers()),
)
_utf8_text = st.text(st.characters(codec="utf-8"), max_size=12)


def _nodes(value: object) -> list[tuple[dict[str, Any] | list[Any], Any]]:
    """Return (container, key) of every value below *value* in a JSON tree."""
    found: list[tuple[dict[str, Any] | list[Any], Any]] = []
    if isinstance(value, dict):
        for key, child in value.items():
            found.append((value, key))
            found.extend(_nodes(child))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.append((value, index))
            found.extend(_nodes(child))
    return found


def _objects(payload: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the JSON objects of a Ledger payload that hold the fields of a class."""
    return [payload, payload["point"], payload["shape"], *payload["points"]]


_DAMAGES = ("retype", "drop key", "add key", "truncate", "type", "version", "id", "metadata")


@st.composite
def _damage(draw: st.DrawFn, row: tuple[Any, ...]) -> tuple[str, object]:
    """Draw a damaged value for one column of a stored Ledger row: (column, new value)."""
    _, data, metadata, recorded_at = row
    payload = json.loads(data)
    column, value = "data", None
    how = draw(st.sampled_from((*_DAMAGES, "naive time")))
    if how == "retype":  # a value changed to one of another JSON type
        container, key = draw(st.sampled_from(_nodes(payload)))
        kind = json_kind(container[key])
        same = ("integer", "float") if kind == "float" else (kind,)  # JSON: 2 == 2.0
        container[key] = draw(json_values_except(*same))
    elif how == "drop key":
        obj = draw(st.sampled_from(_objects(payload)))
        del obj[draw(st.sampled_from(sorted(obj)))]
    elif how == "add key":
        obj = draw(st.sampled_from(_objects(payload)))
        obj[draw(st.text(max_size=5).filter(lambda k: k not in obj))] = draw(JSON_KINDS["string"])
    elif how == "truncate":
        value = data[: draw(st.integers(0, len(data) - 1))]
    elif how == "type":
        column, value = "type", draw(st.sampled_from(["OrderCancelled", "Point"]) | _utf8_text)
    elif how == "version":
        column, value = "schema_version", draw(st.integers(-(2**63), 2**63 - 1) | _utf8_text)
    elif how == "id":  # 16 other bytes would be another id, not damage
        column, value = "event_id", draw(st.binary().filter(lambda b: len(b) != 16) | _utf8_text)
    elif how == "metadata":
        column, value = "metadata", metadata[: draw(st.integers(0, len(metadata) - 1))]
    else:
        column, value = "recorded_at", recorded_at.removesuffix("+00:00")
    return column, json.dumps(payload) if value is None else value


def _outcome(read: Callable[[], Iterable[RecordedEvent]]) -> list[RecordedEvent] | Exception:
    try:
        return list(read())
    except SerializationError as error:
        return error


@pytest.mark.usefixtures("codec")
@given(
    events=st.lists(_ledgers, min_size=1, max_size=4),
    metadata=st.dictionaries(st.text(max_size=3), st.integers() | st.text(max_size=3)),
    data=st.data(),
)
def test_damaged_rows_never_read_as_another_event(
    events: list[Ledger], metadata: dict[str, Any], data: st.DataObject
) -> None:
    """A damaged row reads as the event it held or raises SerializationError, nothing else."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "events.db"
        ledger_types = EventTypes(Ledger, OrderCancelled)
        with SQLiteEventStore(path, types=ledger_types, synchronous="off") as store:
            for n, event in enumerate(events):
                store.append(f"l-{n % 2}", [event], metadata=metadata)
            stored = list(store.read_all())
            victim = data.draw(st.sampled_from(stored))
            (row,) = _query(
                path,
                "SELECT type, data, metadata, recorded_at FROM events WHERE position = ?",
                (victim.position,),
            )
            column, value = data.draw(_damage(row))
            _query(
                path, f"UPDATE events SET {column} = ? WHERE position = ?", (value, victim.position)
            )
            for recorded in stored:
                outcome = _outcome(
                    partial(store.read_all, from_position=recorded.position, limit=1)
                )
                if isinstance(outcome, SerializationError):
                    assert (victim, victim.position) == (recorded, outcome.position)
                else:
                    assert [recorded] == outcome
            stream = _outcome(lambda: store.read_stream(victim.stream_id))
            if not isinstance(stream, SerializationError):
                assert [r for r in stored if r.stream_id == victim.stream_id] == stream
