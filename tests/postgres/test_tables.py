"""The checkpoint tables every PostgreSQL store that follows the log shares."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from busway.errors import (
    CheckpointMovedError,
    InvalidArgumentError,
    LeaseLostError,
    StoreFormatError,
    StoreUnavailableError,
)
from busway.postgres._db import Database, Flow, Layout, drive
from busway.postgres._db import _set_up as set_up
from busway.postgres._tables import PostgresCheckpoints, checkpoint_tables
from busway.subscriptions import Advance
from busway.subscriptions._tables import CHECKPOINT_COLUMNS, PARKED_COLUMNS
from busway.testing._parked import parked_event


@pytest.fixture
def tables(postgres_dsn: str, pg_schema: str) -> Iterator[tuple[Database, PostgresCheckpoints]]:
    """A database with a checkpoint table and a parked table, made on first use."""
    layout = Layout(
        kind="a checkpoint store",
        tables=("cp", "cp_parked"),
        create=checkpoint_tables(pg_schema, "cp", "cp_parked"),
        columns=CHECKPOINT_COLUMNS,
        beside=(("cp_parked", PARKED_COLUMNS),),
    )
    db = Database(postgres_dsn, layout, schema=pg_schema)
    db.ready()
    yield db, PostgresCheckpoints(db, "cp", "cp_parked")
    db.close()


def test_save_fence_and_read_back(tables: tuple[Database, PostgresCheckpoints]) -> None:
    """Saved positions and fenced tokens read back; a lower token than the stored is refused."""
    db, rows = tables
    assert ((0, 0), {}) == (db.run(rows.row("a")), db.run(rows.positions()))
    db.run(rows.save("b", 4))
    db.run(rows.fence("b", 3))
    db.run(rows.fence("a", 1))
    with pytest.raises(LeaseLostError):
        db.run(rows.fence("b", 2))
    assert (4, 3, 0) == (
        db.run(rows.position("b")),
        db.run(rows.token("b")),
        db.run(rows.position("a")),
    )
    assert ["a", "b"] == db.run(rows.names())


def test_parked_events_keep_nul_and_come_back_by_position(
    tables: tuple[Database, PostgresCheckpoints],
) -> None:
    """Parked events keep every character, NUL included; unparking tells if one was there."""
    db, rows = tables
    odd = parked_event("c", 9, stream_id="a\x00b", type="T\x00", error="")
    with db.transaction() as conn:  # in the caller's transaction, as a store runs them
        drive(conn, rows.park("c", odd))
        drive(conn, rows.park("c", parked_event("c", 2)))
    assert [parked_event("c", 2), odd] == db.run(rows.parked("c"))
    assert (True, False) == (db.run(rows.unpark("c", 2)), db.run(rows.unpark("c", 2)))


def test_a_parked_row_of_other_hands_is_refused(
    tables: tuple[Database, PostgresCheckpoints], postgres_dsn: str, pg_schema: str
) -> None:
    """A parked text field that is not UTF-8 is refused with StoreFormatError naming it."""
    db, rows = tables
    db.run(rows.park("c", parked_event("c", 2)))
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(f'UPDATE "{pg_schema}".cp_parked SET stream_id = %s', (b"\xff",))
    with pytest.raises(StoreFormatError, match="as the stream_id of the event 'c' parked"):
        db.run(rows.parked("c"))


def test_an_advance_is_a_compare_and_set_with_fencing(
    tables: tuple[Database, PostgresCheckpoints],
) -> None:
    """An advance moves from the expected position only, with a token no lower than the last."""

    def move(advance: Advance) -> Flow[None]:
        yield from rows.advance((yield from rows.check(advance)))

    db, rows = tables
    db.run(move(Advance("c", 0, 5, token=2, park=parked_event("c", 3))))
    with pytest.raises(CheckpointMovedError):
        db.run(move(Advance("c", 4, 6, token=2)))
    with pytest.raises(LeaseLostError):
        db.run(move(Advance("c", 5, 6, token=1)))
    db.run(move(Advance("c", 5, 6, token=2, unpark=3)))
    assert ((6, 2), []) == (db.run(rows.row("c")), db.run(rows.parked("c")))


def test_a_name_postgresql_cannot_hold_is_refused(
    tables: tuple[Database, PostgresCheckpoints],
) -> None:
    """A checkpoint name with NUL in it raises InvalidArgumentError, in an advance too."""
    db, rows = tables
    with pytest.raises(InvalidArgumentError, match="NUL"):
        db.run(rows.row("a\x00b"))
    with pytest.raises(InvalidArgumentError, match=r"checkpoint\.name.*NUL"):
        db.run(rows.check(Advance("a\x00b", 0, 1)))


def test_a_hold_waits_for_the_holder_and_leaves_no_row(
    tables: tuple[Database, PostgresCheckpoints],
) -> None:
    """A second hold on a name without a row waits for the first; holding alone stores none."""
    db, rows = tables
    backend: list[int] = []
    held = threading.Event()

    def second() -> None:
        with db.transaction() as conn:
            backend.append(conn.info.backend_pid)
            drive(conn, rows.hold("new"))
            held.set()

    def waiting() -> bool:
        with db.transaction() as conn:
            found = conn.execute(
                "SELECT 1 FROM pg_stat_activity WHERE pid = %s AND wait_event = 'advisory'",
                backend,
            ).fetchall()
        return bool(found)

    with db.transaction() as conn:
        drive(conn, rows.hold("new"))
        waiter = threading.Thread(target=second)
        waiter.start()
        deadline = time.monotonic() + 30
        while not (backend and waiting()) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert (False, True) == (held.is_set(), bool(backend) and waiting())
    waiter.join(timeout=30)
    assert held.is_set()
    assert ([], (0, 0)) == (db.run(rows.names()), db.run(rows.row("new")))


@pytest.mark.parametrize("guarded", [False, True])
def test_only_guarded_tables_refuse_a_commit_while_handlers_run(
    postgres_dsn: str, pg_schema: str, guarded: bool
) -> None:
    """With the guard on, guarded tables refuse to commit a checkpoint; the others commit it."""
    layout = Layout(
        kind="a checkpoint store",
        tables=("cp", "cp_parked"),
        create=checkpoint_tables(pg_schema, "cp", "cp_parked", guarded=guarded),
    )
    db = Database(postgres_dsn, layout, schema=pg_schema)
    try:
        db.ready()
        rows = PostgresCheckpoints(db, "cp", "cp_parked")

        def save_guarded() -> Flow[None]:
            yield from rows.guard(True)
            yield from rows.save("c", 1)

        if guarded:
            with pytest.raises(StoreUnavailableError, match="refused a COMMIT"):
                db.run(save_guarded())
        else:
            db.run(save_guarded())
        assert (0 if guarded else 1) == db.run(rows.position("c"))
    finally:
        db.close()


def test_a_first_open_that_reads_the_tables_while_another_makes_them_opens(
    postgres_dsn: str, pg_schema: str
) -> None:
    """Two workers opening a new store at once: the one that looked mid-making opens it too.

    Its look at the tables and at their registration are two statements; another process
    committing the tables between them must not make the store look half-made. (The schema
    holds another store already, so its registry of tables is there.)
    """

    def layout_of(main: str) -> Layout:
        return Layout(
            kind="a checkpoint store",
            tables=(main, f"{main}_parked"),
            create=checkpoint_tables(pg_schema, main, f"{main}_parked"),
            columns=CHECKPOINT_COLUMNS,
            beside=((f"{main}_parked", PARKED_COLUMNS),),
        )

    first = Database(postgres_dsn, layout_of("earlier"), schema=pg_schema)
    first.ready()
    first.close()
    layout = layout_of("cp")
    with psycopg.connect(postgres_dsn) as slow:
        flow = set_up(layout, pg_schema, "the slow worker")
        columns = next(flow)
        rows = slow.execute(columns.sql, columns.params).fetchall()  # nothing there yet
        slow.commit()
        other = Database(postgres_dsn, layout, schema=pg_schema)
        other.ready()  # makes and registers the tables, and commits
        other.close()
        finish(slow, flow, rows)
        slow.commit()
    db = Database(postgres_dsn, layout, schema=pg_schema)
    db.ready()
    assert [] == db.run(PostgresCheckpoints(db, "cp", "cp_parked").names())
    db.close()


def finish(conn: psycopg.Connection[Any], flow: Flow[None], rows: list[Any]) -> None:
    """Run the rest of *flow* on *conn*, sending it *rows* first, as a database would."""
    with contextlib.suppress(StopIteration):
        while True:
            statement = flow.send(rows)
            cursor = conn.execute(statement.sql, statement.params)
            rows = cursor.fetchall() if cursor.description is not None else []
