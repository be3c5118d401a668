"""Projection runners on PostgreSQL: events, checkpoints, leases and the read model in one schema.

Every test that takes ``make_runner`` runs against both runners (tests/_runners.py). The
read model is :class:`~tests.postgres._ledger.Ledger`, whose primary key makes PostgreSQL
refuse a second application of an event.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import attrs
import psycopg
import pytest
from psycopg_pool import ConnectionPool

from busway.errors import (
    InvalidArgumentError,
    ProjectionError,
    RegistrationError,
    StoreFormatError,
)
from busway.eventstore import EventStore
from busway.postgres import (
    AsyncPostgresEventStore,
    PostgresCheckpointStore,
    PostgresEventStore,
    PostgresLeaseStore,
)
from busway.projections import ProjectionRunner, SQLiteCheckpointStore
from busway.subscriptions import Park, Retry
from tests._projection_worker import TYPES, Happened
from tests._runners import Blocking, LoopThread, MakeRunner
from tests.postgres._ledger import Ledger, Pause, ledger

WAIT = 30.0  # seconds: generous, for a busy machine


@pytest.fixture
def store(
    flavour: str, loop: LoopThread, postgres_dsn: str, pg_schema: str
) -> Iterator[EventStore]:
    """The events in the test's schema, as the test of *flavour* sees them."""
    if flavour == "async":
        store = AsyncPostgresEventStore(postgres_dsn, types=TYPES, schema=pg_schema)
        try:
            yield cast(EventStore, Blocking(store, loop))
        finally:
            loop.call(store.aclose)
        return
    with PostgresEventStore(postgres_dsn, types=TYPES, schema=pg_schema) as plain:
        yield plain


@attrs.define
class Schema:
    """The test's schema on the server: stores on it, the ledger in it, and its rows."""

    dsn: str
    schema: str
    stack: contextlib.ExitStack
    leases: PostgresLeaseStore

    def checkpoints(self) -> PostgresCheckpointStore:
        """Open another checkpoint store on the schema, as another worker would."""
        return self.stack.enter_context(PostgresCheckpointStore(self.dsn, schema=self.schema))

    def ledger(self, worker: str, **options: Any) -> Ledger:
        return Ledger(self.schema, worker, **options)

    def rows(self) -> list[tuple[int, str, int, str]]:
        return ledger(self.dsn, self.schema)

    def positions(self) -> list[int]:
        return sorted(p for p, _, _, _ in self.rows())


@pytest.fixture
def pg(postgres_dsn: str, pg_schema: str) -> Iterator[Schema]:
    with contextlib.ExitStack() as stack:
        leases = stack.enter_context(PostgresLeaseStore(postgres_dsn, schema=pg_schema))
        yield Schema(postgres_dsn, pg_schema, stack, leases)


def append(store: EventStore, count: int, *, streams: int = 3) -> None:
    """Append *count* events, one per append, round the streams."""
    head = store.head_position()
    for n in range(head + 1, head + count + 1):
        store.append(f"s-{n % streams}", [Happened(n)])


def test_workers_share_partitions_and_apply_each_event_once(
    make_runner: MakeRunner,
    store: EventStore,
    pg: Schema,
) -> None:
    """Three runners split four leased partitions; each event is applied once, in stream order."""
    runners = [
        make_runner(
            store,
            pg.ledger(w),
            checkpoints=pg.checkpoints(),
            leases=pg.leases,
            lease=2.0,
            partitions=4,
            owner=w,
            batch_size=7,
            poll_interval=0.02,
        )
        for w in ("a", "b", "c")
    ]
    append(store, 40, streams=7)
    with runners[0].running(), runners[1].running(), runners[2].running():
        append(store, 40, streams=7)
        for runner in runners:
            runner.wait_for(80, timeout=WAIT)
    found = pg.rows()
    assert list(range(1, 81)) == sorted(p for p, _, _, _ in found)
    by_stream: dict[str, list[int]] = {}
    for _, stream, version, _ in found:
        by_stream.setdefault(stream, []).append(version)
    assert all(versions == sorted(versions) for versions in by_stream.values())
    assert [80, 80, 80] == [runner.position for runner in runners]


def test_racing_runners_without_leases_apply_each_event_once(
    make_runner: MakeRunner,
    store: EventStore,
    pg: Schema,
) -> None:
    """Two runners race batch for batch on one checkpoint; the loser of each reads again."""
    runners = [
        make_runner(store, pg.ledger(w), checkpoints=pg.checkpoints(), batch_size=3) for w in "ab"
    ]
    append(store, 30)
    with runners[0].running(), runners[1].running():
        for runner in runners:
            runner.wait_for(30, timeout=WAIT)
    assert list(range(1, 31)) == pg.positions()


def test_a_failing_handler_undoes_its_batch_and_the_next_run_resumes_there(
    make_runner: MakeRunner,
    store: EventStore,
    pg: Schema,
) -> None:
    """The events before the failing one are kept once, with the checkpoint before it."""
    projection = pg.ledger("a", failures={5: 1})
    runner = make_runner(store, projection, checkpoints=pg.checkpoints())
    append(store, 9)
    with pytest.raises(ProjectionError, match="stopped at position 5"):
        runner.run_until_caught_up()
    assert ([1, 2, 3, 4], 4) == (pg.positions(), runner.position)
    assert 5 == runner.run_until_caught_up()
    assert list(range(1, 10)) == pg.positions()


def test_rebuild_empties_the_read_model_with_the_checkpoint(
    make_runner: MakeRunner,
    store: EventStore,
    pg: Schema,
) -> None:
    """reset(conn) runs in the checkpoint's transaction, and every event is applied again."""
    runner = make_runner(store, pg.ledger("a"), checkpoints=pg.checkpoints())
    append(store, 6)
    assert 6 == runner.run_until_caught_up()
    again = make_runner(store, pg.ledger("b"), checkpoints=pg.checkpoints())
    assert 6 == again.rebuild()
    assert {(p, "b") for p in range(1, 7)} == {(p, w) for p, _, _, w in pg.rows()}


@pytest.mark.parametrize("misuse", ["commit", "rollback", "close", "swallow"])
def test_a_handler_that_ends_the_transaction_stops_the_runner_with_nothing_kept(
    store: EventStore,
    pg: Schema,
    misuse: str,
) -> None:
    """A COMMIT, ROLLBACK, close or swallowed error in a handler stops the runner; the read
    model and the checkpoint still agree, and a fixed handler goes on from there."""
    append(store, 5)
    runner = ProjectionRunner(store, pg.ledger("a"), checkpoints=pg.checkpoints())
    assert 5 == runner.run_until_caught_up()
    append(store, 5)
    broken = pg.ledger("b", misuse=misuse, misuse_at=8)
    runner = ProjectionRunner(store, broken, checkpoints=pg.checkpoints())
    with pytest.raises(ProjectionError, match="stopped at position 8"):
        runner.run_until_caught_up()
    assert list(range(1, 6)) == pg.positions()
    assert 5 == pg.checkpoints().load("ledger")
    fixed = ProjectionRunner(store, pg.ledger("c"), checkpoints=pg.checkpoints())
    assert 5 == fixed.run_until_caught_up()
    assert list(range(1, 11)) == pg.positions()


def test_psycopgs_own_commit_in_a_handler_is_refused_as_a_handler_error(
    store: EventStore,
    pg: Schema,
) -> None:
    """conn.commit() raises in the handler, which stops the runner before that event."""
    append(store, 4)
    runner = ProjectionRunner(
        store, pg.ledger("a", misuse="commit()"), checkpoints=pg.checkpoints()
    )
    with pytest.raises(ProjectionError, match="stopped at position 3") as info:
        runner.run_until_caught_up()
    assert isinstance(info.value.__cause__, psycopg.ProgrammingError)
    assert [1, 2] == pg.positions()


def test_a_worker_whose_connection_is_cut_goes_on(
    make_runner: MakeRunner,
    store: EventStore,
    pg: Schema,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """pg_terminate_backend in the middle of a batch costs the batch, not the worker."""
    pause = Pause(at=4)
    runner = make_runner(
        store,
        pg.ledger("a", pause=pause),
        checkpoints=pg.checkpoints(),
        leases=pg.leases,
        poll_interval=0.02,
    )
    append(store, 6)
    with caplog.at_level(logging.WARNING, "busway.subscriptions"), runner.running():
        assert pause.reached.wait(WAIT)
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_terminate_backend(%s)", (pause.backend,))
        pause.go.set()
        runner.wait_for(6, timeout=WAIT)
        append(store, 2)
        runner.wait_for(8, timeout=WAIT)
    assert runner.error is None
    assert list(range(1, 9)) == pg.positions()
    assert "lost its connection" in caplog.text


def test_a_postgres_projection_needs_postgres_checkpoints(
    store: EventStore, pg: Schema, tmp_path: Path
) -> None:
    """Given SQLite checkpoints, the runner refuses at once and names the store to use."""
    with (
        SQLiteCheckpointStore(tmp_path / "read.db") as sqlite,
        pytest.raises(RegistrationError, match=r"PostgresCheckpointStore\(...\)"),
    ):
        ProjectionRunner(store, pg.ledger("a"), checkpoints=sqlite)


def test_a_parked_event_whose_text_was_damaged_is_refused(
    postgres_dsn: str, pg_schema: str
) -> None:
    """A parked row holding bytes that are not UTF-8 raises StoreFormatError naming the row."""
    from busway.testing import CheckpointStoreContract

    with PostgresCheckpointStore(postgres_dsn, schema=pg_schema) as store:
        with store.transaction("p") as checkpoint:
            checkpoint.park(CheckpointStoreContract.parked_event("p", 7))
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            conn.execute(
                f'UPDATE "{pg_schema}".projection_checkpoints_parked SET error = %s',
                (b"\xff",),
            )
        with pytest.raises(
            StoreFormatError, match="as the error of the event 'p' parked at position 7"
        ):
            store.parked("p")


def test_a_name_postgresql_cannot_hold_is_refused(postgres_dsn: str, pg_schema: str) -> None:
    """A checkpoint or lease name with NUL in it raises InvalidArgumentError."""
    with (
        PostgresCheckpointStore(postgres_dsn, schema=pg_schema) as checkpoints,
        PostgresLeaseStore(postgres_dsn, schema=pg_schema) as leases,
    ):
        with pytest.raises(InvalidArgumentError, match="NUL"):
            checkpoints.load("a\x00b")
        with pytest.raises(InvalidArgumentError, match="NUL"):
            leases.acquire("a\x00b", "w", ttl=1)


def test_the_stores_name_where_they_are(postgres_dsn: str, pg_schema: str) -> None:
    """repr shows the server, schema and table, and whether the store is closed."""
    checkpoints = PostgresCheckpointStore(postgres_dsn, schema=pg_schema, table="cp")
    leases = PostgresLeaseStore(postgres_dsn, schema=pg_schema, table="ls")
    for store, table in ((checkpoints, "cp"), (leases, "ls")):
        assert f"(schema {pg_schema}, table {table})>" in repr(store)
        store.close()
        assert repr(store).endswith(" closed>")


def test_a_table_of_another_store_is_refused(postgres_dsn: str, pg_schema: str) -> None:
    """A lease table opened as checkpoints (or the other way) raises StoreFormatError."""
    with PostgresLeaseStore(postgres_dsn, schema=pg_schema, table="t") as leases:
        leases.acquire("a", "w", ttl=1)
    with (
        PostgresCheckpointStore(postgres_dsn, schema=pg_schema, table="t") as checkpoints,
        pytest.raises(StoreFormatError, match="not a checkpoint store"),
    ):
        checkpoints.load("a")


def test_stores_on_a_borrowed_pool_leave_it_open(
    store: EventStore, postgres_dsn: str, pg_schema: str
) -> None:
    """Checkpoints and leases share a pool the caller owns; closing them leaves it open."""
    with ConnectionPool(postgres_dsn, min_size=1, max_size=4, open=True) as pool:
        with (
            PostgresCheckpointStore(pool, schema=pg_schema) as checkpoints,
            PostgresLeaseStore(pool, schema=pg_schema) as leases,
        ):
            runner = ProjectionRunner(
                store, Ledger(pg_schema, "a"), checkpoints=checkpoints, leases=leases
            )
            append(store, 3)
            assert 3 == runner.run_until_caught_up()
        with pool.connection() as conn:
            assert [(3,)] == conn.execute(
                f'SELECT position FROM "{pg_schema}".projection_checkpoints'
            ).fetchall()


def test_a_parked_event_is_replayed_once_its_handler_passes(
    make_runner: MakeRunner, store: EventStore, pg: Schema
) -> None:
    """Park sets the failing event aside and goes on; a replay applies it, unparked with it."""
    projection = pg.ledger("a", failures={3: 2})
    runner = make_runner(
        store,
        projection,
        checkpoints=pg.checkpoints(),
        on_error=Retry(1, backoff=lambda n: 0.001, then=Park()),
    )
    append(store, 5)
    runner.run_until_caught_up()
    assert ([1, 2, 4, 5], [3]) == (pg.positions(), [p.position for p in runner.parked()])
    assert 1 == runner.replay_parked()
    assert (list(range(1, 6)), []) == (pg.positions(), runner.parked())
