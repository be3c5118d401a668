"""Saga stores: what every store promises, and what the SQLite store adds."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from busway.errors import (
    InvalidArgumentError,
    SagaConcurrencyError,
    StoreClosedError,
    StoreFormatError,
)
from busway.eventstore import EventTypes, SQLiteEventStore
from busway.sagas import (
    Deadline,
    InMemorySagaStore,
    SagaRecord,
    SagaStore,
    SQLiteSagaStore,
    StoredMessage,
    Write,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def record(
    saga_id: str = "s-1",
    version: int = 1,
    *,
    associations: frozenset[tuple[str, str]] = frozenset({("order_id", "o-1")}),
    deadlines: tuple[Deadline, ...] = (),
    outbox: tuple[StoredMessage, ...] = (),
    ended: bool = False,
) -> SagaRecord:
    return SagaRecord(
        saga_id=saga_id,
        saga_type="Booking",
        version=version,
        schema_version=1,
        state='{"step":"ñew"}',
        associations=associations,
        deadlines=deadlines,
        outbox=outbox,
        ended=ended,
    )


def message(n: int) -> StoredMessage:
    return StoredMessage(f"m-{n}", "ReserveStock", 1, f'{{"n":{n}}}')


def test_a_record_round_trips(store: SagaStore) -> None:
    """What is committed comes back equal, deadlines and outbox in order."""
    saved = record(
        deadlines=(Deadline(T0 + timedelta(hours=1), message(2)), Deadline(T0, message(1))),
        outbox=(message(3), message(4)),
    )
    store.commit([Write(saved, 0)])
    assert saved == store.load("s-1")
    assert [saved] == store.find("Booking", "order_id", "o-1")
    assert None is store.load("s-2")


def test_find_uses_the_association_index(store: SagaStore) -> None:
    """Only sagas of the type, associated with exactly that key and value, are found, by id."""
    both = frozenset({("order_id", "o-1"), ("payment_id", "p-1")})
    store.commit([Write(record("s-2", associations=both), 0), Write(record("s-1"), 0)])
    assert ["s-1", "s-2"] == [r.saga_id for r in store.find("Booking", "order_id", "o-1")]
    assert ["s-2"] == [r.saga_id for r in store.find("Booking", "payment_id", "p-1")]
    assert [] == store.find("Shipping", "order_id", "o-1")
    assert [] == store.find("Booking", "payment_id", "o-1")
    store.commit([Write(record("s-2", 2, associations=frozenset()), 1)])
    assert [] == store.find("Booking", "payment_id", "p-1")


def test_a_stale_write_is_refused_and_writes_nothing(store: SagaStore) -> None:
    """A version mismatch in any write of a commit aborts all of them, checkpoint included."""
    store.commit([Write(record("s-1"), 0)])
    with pytest.raises(SagaConcurrencyError) as info:
        store.commit([Write(record("s-2"), 0), Write(record("s-1", 2), 0)], checkpoint=("c", 9))
    assert ("s-1", 0, 1) == (info.value.saga_id, info.value.expected, info.value.actual)
    assert (None, 0) == (store.load("s-2"), store.checkpoint("c"))


def test_a_finished_saga_is_deleted(store: SagaStore) -> None:
    """An ended saga stays while its outbox has commands, then goes with its index entries."""
    store.commit([Write(record(deadlines=(Deadline(T0, message(1)),)), 0)])
    ending = record(version=2, associations=frozenset(), outbox=(message(2),), ended=True)
    store.commit([Write(ending, 1)])
    assert ([], [ending], []) == (
        store.find("Booking", "order_id", "o-1"),
        store.pending(),
        store.due(T0),
    )
    store.commit([Write(record(version=3, associations=frozenset(), ended=True), 2)])
    assert (None, []) == (store.load("s-1"), store.pending())
    with pytest.raises(SagaConcurrencyError):
        store.commit([Write(record(version=4), 3)])


def test_due_lists_sagas_by_their_earliest_due_deadline(store: SagaStore) -> None:
    """Sagas with a deadline at or before the time come back, earliest first."""
    late = Deadline(T0 + timedelta(minutes=5), message(1))
    soon = Deadline(T0 + timedelta(minutes=1), message(2))
    later = Deadline(T0 + timedelta(hours=1), message(3))
    store.commit(
        [
            Write(record("s-1", deadlines=(late, later)), 0),
            Write(record("s-2", deadlines=(soon,)), 0),
            Write(record("s-3", deadlines=(later,)), 0),
        ]
    )
    assert [] == store.due(T0)
    assert ["s-2"] == [r.saga_id for r in store.due(soon.due)]
    assert ["s-2", "s-1"] == [r.saga_id for r in store.due(T0 + timedelta(minutes=30))]


def test_checkpoints_are_kept_per_name(store: SagaStore) -> None:
    """A checkpoint is 0 until committed, then the last position committed."""
    assert 0 == store.checkpoint("sagas")
    store.commit([], checkpoint=("sagas", 5))
    store.commit([Write(record(), 0)], checkpoint=("sagas", 7))
    assert (7, 0) == (store.checkpoint("sagas"), store.checkpoint("other"))


def test_a_closed_store_refuses_work(store: SagaStore) -> None:
    """After close(), every call raises StoreClosedError; closing again is harmless."""
    store.close()
    store.close()
    with pytest.raises(StoreClosedError, match="is closed"):
        store.load("s-1")
    with pytest.raises(StoreClosedError):
        store.commit([])


def test_sqlite_keeps_sagas_across_restarts(tmp_path: Path) -> None:
    """A reopened SQLite store has every saga, deadline and checkpoint it had."""
    saved = record(deadlines=(Deadline(T0, message(1)),), outbox=(message(2),))
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
