"""Projections follow the store from a checkpoint, in batches, exactly once with SQLite."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest

from busway import Event, InvalidArgumentError, RegistrationError, StoreFormatError
from busway.clock import FakeClock
from busway.errors import StoreClosedError
from busway.eventstore import EventStore, EventTypes, RecordedEvent, SQLiteEventStore
from busway.projections import (
    CheckpointStore,
    CheckpointTransaction,
    InMemoryCheckpointStore,
    Projection,
    ProjectionError,
    ProjectionRunner,
    ProjectionTimeoutError,
    SQLiteCheckpointStore,
    SQLiteProjection,
    when,
)
from busway.subscriptions import InMemoryLeaseStore, ParkedEvent
from busway.testing import CheckpointStoreContract
from tests._runners import LoopThread, MakeRunner, file_store, memory_store


@attrs.frozen
class Changed(Event):
    key: str


@attrs.frozen
class Added(Changed):
    amount: int


@attrs.frozen
class Noted(Event):
    text: str


TYPES = EventTypes(Changed, Added, Noted)


class Totals(Projection):
    """Sums amounts per key in memory, and lists what it saw."""

    name = "totals"

    def __init__(self) -> None:
        self.totals: dict[str, int] = {}
        self.seen: list[tuple[str, int]] = []
        self.fail_on: int | None = None

    def reset(self) -> None:
        self.totals = {}
        self.seen = []

    @when(Changed)
    def _changed(self, event: Changed, recorded: RecordedEvent) -> None:
        self.seen.append(("changed", recorded.position))

    @when(Added)
    def _added(self, event: Added, recorded: RecordedEvent) -> None:
        if event.amount == self.fail_on:
            raise ValueError(f"cannot add {event.amount}")
        self.totals[event.key] = self.totals.get(event.key, 0) + event.amount
        self.seen.append(("added", recorded.position))


class TotalsTable(SQLiteProjection):
    """Sums amounts per key in a table; counts applications per position to catch repeats."""

    name = "totals_table"
    fail_on: int | None = None

    def setup(self, conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS totals (key TEXT PRIMARY KEY, total INTEGER)")
        conn.execute("CREATE TABLE IF NOT EXISTS applied (position INTEGER PRIMARY KEY)")

    def reset(self, conn: sqlite3.Connection) -> None:
        conn.execute("DELETE FROM totals")
        conn.execute("DELETE FROM applied")

    @when(Added)
    def _added(self, event: Added, recorded: RecordedEvent, conn: sqlite3.Connection) -> None:
        # The primary key turns a second application of one event into an error.
        conn.execute("INSERT INTO applied (position) VALUES (?)", (recorded.position,))
        conn.execute(
            "INSERT INTO totals (key, total) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET total = total + excluded.total",
            (event.key, event.amount),
        )
        if event.amount == self.fail_on:
            raise ValueError(f"cannot add {event.amount}")


@pytest.fixture
def store(flavour: str, loop: LoopThread) -> Iterator[EventStore]:
    with memory_store(flavour, loop, TYPES) as s:
        yield s


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "app.db"


@pytest.fixture
def sqlite_store(flavour: str, loop: LoopThread, path: Path) -> Iterator[EventStore]:
    with file_store(flavour, loop, path, TYPES) as s:
        yield s


@pytest.fixture
def checkpoints(path: Path) -> Iterator[SQLiteCheckpointStore]:
    with SQLiteCheckpointStore(path) as c:
        yield c


def add(store: EventStore, *amounts: int, key: str = "k") -> None:
    for amount in amounts:
        store.append(f"stream-{key}", [Added(key, amount)])


def table(path: Path) -> tuple[list[tuple[str, int]], list[int]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        totals = conn.execute("SELECT key, total FROM totals ORDER BY key").fetchall()
        applied = [p for (p,) in conn.execute("SELECT position FROM applied ORDER BY position")]
    return totals, applied


# -- handlers --------------------------------------------------------------------------------


def test_every_handler_of_the_event_or_a_base_runs_in_order(
    make_runner: MakeRunner, store: EventStore
) -> None:
    """An Added event reaches the Changed handler and the Added one, as they are defined."""
    add(store, 5)
    store.append("notes", [Noted("hello")])
    projection = Totals()
    runner = make_runner(store, projection)
    assert 2 == runner.run_until_caught_up()
    assert [("changed", 1), ("added", 1)] == projection.seen
    assert {"k": 5} == projection.totals
    assert 2 == runner.position  # the unhandled Noted event is passed too
    assert frozenset({Changed, Added}) == Totals.handled_types()


def test_run_once_handles_one_batch(make_runner: MakeRunner, store: EventStore) -> None:
    """run_once reads at most batch_size events and checkpoints after them."""
    add(store, 1, 2, 3, 4, 5)
    checkpoints = InMemoryCheckpointStore()
    runner = make_runner(store, Totals(), checkpoints=checkpoints, batch_size=2)
    assert (2, 2, 2) == (runner.run_once(), runner.position, checkpoints.load("totals"))
    assert (2, 1, 0) == (runner.run_once(), runner.run_once(), runner.run_once())
    assert 5 == checkpoints.load("totals")
    assert 0 == runner.run_once()


def test_lag_is_the_distance_to_the_head(make_runner: MakeRunner, store: EventStore) -> None:
    """lag() is the head position minus the checkpoint, 0 once caught up."""
    runner = make_runner(store, Totals(), batch_size=2)
    assert 0 == runner.lag()
    add(store, 1, 2, 3)
    assert 3 == runner.lag()
    runner.run_once()
    assert 1 == runner.lag()
    runner.run_until_caught_up()
    assert 0 == runner.lag()


def test_a_new_runner_resumes_at_the_checkpoint(
    make_runner: MakeRunner,
    sqlite_store: EventStore,
    checkpoints: SQLiteCheckpointStore,
    path: Path,
) -> None:
    """A restarted runner goes on after the stored checkpoint, applying nothing twice."""
    add(sqlite_store, 1, 2)
    make_runner(sqlite_store, TotalsTable(), checkpoints=checkpoints).run_until_caught_up()
    add(sqlite_store, 3)
    again = make_runner(sqlite_store, TotalsTable(), checkpoints=checkpoints)
    assert (2, 1) == (again.position, again.run_until_caught_up())
    assert ([("k", 6)], [1, 2, 3]) == table(path)
    assert "totals_table" in repr(again)


# -- rebuild ---------------------------------------------------------------------------------


def test_rebuild_resets_and_replays_with_progress(
    make_runner: MakeRunner,
    sqlite_store: EventStore,
    checkpoints: SQLiteCheckpointStore,
    path: Path,
) -> None:
    """rebuild() empties the read model, replays every event and reports (position, head)."""
    add(sqlite_store, 1, 2, 3, 4, 5)
    runner = make_runner(sqlite_store, TotalsTable(), checkpoints=checkpoints, batch_size=2)
    runner.run_until_caught_up()
    before = table(path)
    reports: list[tuple[int, int]] = []
    assert 5 == runner.rebuild(progress=lambda position, head: reports.append((position, head)))
    assert [(0, 5), (2, 5), (4, 5), (5, 5)] == reports
    assert before == table(path)


def test_rebuild_of_a_memory_projection(make_runner: MakeRunner, store: EventStore) -> None:
    """A plain projection is rebuilt through its reset() hook."""
    add(store, 1, 2)
    projection = Totals()
    runner = make_runner(store, projection)
    runner.run_until_caught_up()
    projection.totals["k"] = 99  # a read model gone wrong
    runner.rebuild()
    assert {"k": 3} == projection.totals


def test_rebuild_with_sqlite_checkpoints_of_a_memory_projection(
    make_runner: MakeRunner, store: EventStore, checkpoints: SQLiteCheckpointStore
) -> None:
    """A plain projection may keep its checkpoint in SQLite, and be rebuilt."""
    add(store, 4)
    projection = Totals()
    runner = make_runner(store, projection, checkpoints=checkpoints)
    runner.rebuild()
    assert ({"k": 4}, 1) == (projection.totals, checkpoints.load("totals"))


class NoReset(Projection):
    name = "no_reset"


class NoResetTable(SQLiteProjection):
    name = "no_reset_table"


def test_rebuild_needs_a_reset_hook(
    make_runner: MakeRunner, store: EventStore, checkpoints: SQLiteCheckpointStore
) -> None:
    """Without reset(), rebuild() refuses and says what to define."""
    with pytest.raises(ProjectionError, match=r"no reset\(\)") as info:
        make_runner(store, NoReset()).rebuild()
    assert "no_reset" == info.value.projection
    with pytest.raises(ProjectionError, match=r"no reset\(\)"):
        make_runner(store, NoResetTable(), checkpoints=checkpoints).rebuild()


# -- failures --------------------------------------------------------------------------------


def test_a_failing_handler_stops_before_its_event_and_resumes_there(
    make_runner: MakeRunner,
    store: EventStore,
) -> None:
    """The error names the projection, position and event; after a fix nothing is skipped."""
    add(store, 1, 2, 3, 4)
    projection = Totals()
    projection.fail_on = 3
    checkpoints = InMemoryCheckpointStore()
    runner = make_runner(store, projection, checkpoints=checkpoints, batch_size=10)
    with pytest.raises(ProjectionError) as info:
        runner.run_until_caught_up()
    error = info.value
    assert ("totals", 3) == (error.projection, error.position)
    assert isinstance(error.recorded, RecordedEvent)
    assert Added("k", 3) == error.recorded.event
    assert isinstance(error.__cause__, ValueError)
    assert "stopped at position 3: handling Added (version 3 of stream 'stream-k'" in str(error)
    assert (2, 2, {"k": 3}) == (runner.position, checkpoints.load("totals"), projection.totals)
    with pytest.raises(ProjectionError):  # still broken: still stops there
        runner.run_until_caught_up()
    projection.fail_on = None
    runner.run_until_caught_up()
    assert {"k": 10} == projection.totals
    assert [1, 2, 3, 4] == [p for kind, p in projection.seen if kind == "added"]


def test_a_failing_sqlite_handler_keeps_nothing_of_its_event(
    make_runner: MakeRunner,
    sqlite_store: EventStore,
    checkpoints: SQLiteCheckpointStore,
    path: Path,
) -> None:
    """The failing event's writes roll back; the events before it in the batch are committed."""
    add(sqlite_store, 1, 2, 3, 4)
    projection = TotalsTable()
    projection.fail_on = 3
    runner = make_runner(sqlite_store, projection, checkpoints=checkpoints, batch_size=10)
    with pytest.raises(ProjectionError, match="position 3") as info:
        runner.run_until_caught_up()
    assert 3 == info.value.position
    assert ([("k", 3)], [1, 2], 2) == (*table(path), checkpoints.load("totals_table"))
    projection.fail_on = None
    runner.run_until_caught_up()
    assert ([("k", 10)], [1, 2, 3, 4]) == table(path)


class Ledger(SQLiteProjection):
    """Writes two rows an event, and lists every call of its handler, kept or undone.

    The call numbered *n* of the event at position *p* raises between its two rows if
    ``(p, n)`` is in ``raise_on``.
    """

    name = "ledger"

    def __init__(self, *raise_on: tuple[int, int]) -> None:
        self.raise_on = set(raise_on)
        self.calls: list[int] = []

    def setup(self, conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS ledger (position INTEGER, part TEXT)")

    @when(Added)
    def _added(self, event: Added, recorded: RecordedEvent, conn: sqlite3.Connection) -> None:
        position = recorded.position
        self.calls.append(position)
        conn.execute("INSERT INTO ledger VALUES (?, 'first')", (position,))
        if (position, self.calls.count(position)) in self.raise_on:
            raise ValueError(f"cannot add {event.amount}")
        conn.execute("INSERT INTO ledger VALUES (?, 'second')", (position,))


def ledger(path: Path) -> list[tuple[int, str]]:
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return conn.execute("SELECT position, part FROM ledger ORDER BY rowid").fetchall()


def both_rows(*positions: int) -> list[tuple[int, str]]:
    return [(p, part) for p in positions for part in ("first", "second")]


def test_a_failure_mid_batch_keeps_each_event_before_it_once(
    make_runner: MakeRunner,
    sqlite_store: EventStore,
    checkpoints: SQLiteCheckpointStore,
    path: Path,
) -> None:
    """The batch is undone and the events before the failing one handled again: in the
    read model each shows once, and the failing one's first row is gone."""
    add(sqlite_store, 1, 2, 3, 4, 5, 6)
    projection = Ledger((4, 1))
    runner = make_runner(sqlite_store, projection, checkpoints=checkpoints, batch_size=10)
    with pytest.raises(ProjectionError) as info:
        runner.run_once()
    recorded = info.value.recorded
    assert isinstance(recorded, RecordedEvent)
    assert (4, Added("k", 4)) == (info.value.position, recorded.event)
    assert isinstance(info.value.__cause__, ValueError)
    assert [1, 2, 3, 4, 1, 2, 3] == projection.calls  # the first three again, once undone
    assert (both_rows(1, 2, 3), 3, 3) == (
        ledger(path),
        checkpoints.load("ledger"),
        runner.position,
    )
    assert 3 == runner.run_until_caught_up()  # from position 4 on
    assert [1, 2, 3, 4, 1, 2, 3, 4, 5, 6] == projection.calls
    assert both_rows(1, 2, 3, 4, 5, 6) == ledger(path)


def test_a_failure_on_the_first_event_of_a_batch_handles_nothing_again(
    make_runner: MakeRunner,
    sqlite_store: EventStore,
    checkpoints: SQLiteCheckpointStore,
    path: Path,
) -> None:
    """Nothing came before it in the batch: its handler runs once, and its first row is gone."""
    add(sqlite_store, 1, 2, 3, 4)
    projection = Ledger((3, 1))
    runner = make_runner(sqlite_store, projection, checkpoints=checkpoints, batch_size=2)
    assert 2 == runner.run_once()
    with pytest.raises(ProjectionError, match="stopped at position 3"):
        runner.run_once()
    assert ([1, 2, 3], both_rows(1, 2), 2) == (
        projection.calls,
        ledger(path),
        checkpoints.load("ledger"),
    )


def test_a_handler_failing_earlier_the_second_time_moves_the_stop_there(
    make_runner: MakeRunner,
    sqlite_store: EventStore,
    checkpoints: SQLiteCheckpointStore,
    path: Path,
) -> None:
    """A handler that fails now and then: the checkpoint stops before the last failure."""
    add(sqlite_store, 1, 2, 3, 4, 5)
    projection = Ledger((4, 1), (2, 2))
    runner = make_runner(sqlite_store, projection, checkpoints=checkpoints, batch_size=10)
    with pytest.raises(ProjectionError, match="stopped at position 2") as info:
        runner.run_once()
    assert 2 == info.value.position
    assert ([1, 2, 3, 4, 1, 2, 1], both_rows(1), 1) == (
        projection.calls,
        ledger(path),
        checkpoints.load("ledger"),
    )


def test_a_memory_projection_on_sqlite_checkpoints_handles_each_event_once(
    make_runner: MakeRunner, store: EventStore, checkpoints: SQLiteCheckpointStore
) -> None:
    """What a projection in memory did is not undone, so no event of a failed batch runs twice."""
    add(store, 1, 2, 3, 4)
    projection = Totals()
    projection.fail_on = 3
    runner = make_runner(store, projection, checkpoints=checkpoints, batch_size=10)
    with pytest.raises(ProjectionError, match="stopped at position 3"):
        runner.run_once()
    seen = [("changed", 1), ("added", 1), ("changed", 2), ("added", 2), ("changed", 3)]
    assert (seen, {"k": 3}, 2) == (projection.seen, projection.totals, checkpoints.load("totals"))


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing handles it."""


class CrashingCheckpoints:
    """A checkpoint store over another whose first checkpoint write in a transaction crashes.

    It is also a checkpoint store of a third party's: the runner needs only the protocol.
    """

    def __init__(self, store: SQLiteCheckpointStore) -> None:
        self.store = store
        self.armed = True

    def load(self, name: str) -> int:
        return self.store.load(name)

    def save(self, name: str, position: int) -> None:
        self.store.save(name, position)

    def parked(self, name: str) -> list[ParkedEvent]:
        return self.store.parked(name)

    def names(self) -> list[str]:
        return self.store.names()

    def token(self, name: str) -> int:
        return self.store.token(name)

    @contextlib.contextmanager
    def transaction(self, name: str) -> Iterator[CheckpointTransaction]:
        with self.store.transaction(name) as checkpoint:
            yield CrashingTransaction(checkpoint, self)

    def close(self) -> None:
        self.store.close()


class CrashingTransaction:
    """A checkpoint transaction that crashes on its save while its store is armed."""

    def __init__(self, checkpoint: CheckpointTransaction, store: CrashingCheckpoints) -> None:
        self.checkpoint = checkpoint
        self.store = store
        self.connection = checkpoint.connection

    def load(self) -> int:
        return self.checkpoint.load()

    def save(self, position: int) -> None:
        if self.store.armed:
            self.store.armed = False
            raise Crash
        self.checkpoint.save(position)

    def fence(self, token: int) -> None:
        self.checkpoint.fence(token)

    def park(self, parked: ParkedEvent) -> None:
        self.checkpoint.park(parked)

    def unpark(self, position: int) -> bool:
        return self.checkpoint.unpark(position)

    def savepoint(self) -> contextlib.AbstractContextManager[None]:
        return self.checkpoint.savepoint()

    def check(self) -> None:
        self.checkpoint.check()


def test_a_crash_before_the_checkpoint_commit_loses_the_whole_batch(
    make_runner: MakeRunner,
    sqlite_store: EventStore,
    checkpoints: SQLiteCheckpointStore,
    path: Path,
) -> None:
    """Writes and checkpoint commit together: after a crash between them, each event once."""
    add(sqlite_store, 1, 2, 3)
    crashing = CrashingCheckpoints(checkpoints)
    runner = make_runner(sqlite_store, TotalsTable(), checkpoints=crashing)
    with pytest.raises(Crash):
        runner.run_until_caught_up()
    assert ([], [], 0) == (*table(path), checkpoints.load("totals_table"))
    restarted = make_runner(sqlite_store, TotalsTable(), checkpoints=checkpoints)
    restarted.run_until_caught_up()
    assert ([("k", 6)], [1, 2, 3]) == table(path)


class Interrupted(Projection):
    """Lists the positions it applied; interrupted (as by Ctrl-C) on one amount."""

    name = "interrupted"

    def __init__(self, interrupt_on: int | None) -> None:
        self.interrupt_on = interrupt_on
        self.applied: list[int] = []

    @when(Added)
    def _added(self, event: Added, recorded: RecordedEvent) -> None:
        if event.amount == self.interrupt_on:
            raise Crash
        self.applied.append(recorded.position)


def test_an_interrupted_memory_batch_keeps_the_events_before_it(
    make_runner: MakeRunner,
    store: EventStore,
) -> None:
    """In memory nothing is undone, so the checkpoint keeps up with what was applied."""
    add(store, 1, 2, 3)
    projection = Interrupted(interrupt_on=3)
    checkpoints = InMemoryCheckpointStore()
    runner = make_runner(store, projection, checkpoints=checkpoints, batch_size=10)
    with pytest.raises(Crash):
        runner.run_once()
    assert ([1, 2], 2) == (projection.applied, checkpoints.load("interrupted"))
    projection.interrupt_on = None
    runner.run_until_caught_up()
    assert [1, 2, 3] == projection.applied


def test_a_runner_follows_a_checkpoint_moved_by_another(
    make_runner: MakeRunner, sqlite_store: EventStore, path: Path
) -> None:
    """Two runners of one projection on one database never apply an event twice."""
    add(sqlite_store, 1, 2, 3)
    with SQLiteCheckpointStore(path) as first, SQLiteCheckpointStore(path) as second:
        one = make_runner(sqlite_store, TotalsTable(), checkpoints=first, batch_size=2)
        other = make_runner(sqlite_store, TotalsTable(), checkpoints=second, batch_size=2)
        one.run_until_caught_up()
        add(sqlite_store, 4)
        other.run_until_caught_up()  # it starts from 0, finds 3 stored, and goes on from there
        one.run_until_caught_up()
        assert (4, 4) == (one.position, other.position)
    assert ([("k", 10)], [1, 2, 3, 4]) == table(path)


class Slow(Totals):
    """Totals whose every event takes half a second by *clock*; a standby looks meanwhile."""

    def __init__(self, clock: FakeClock, leases: InMemoryLeaseStore) -> None:
        super().__init__()
        self.clock = clock
        self.leases = leases
        self.standby_found: list[object] = []

    @when(Added)
    def _slowly(self, event: Added, recorded: RecordedEvent) -> None:
        self.clock.advance(0.5)
        self.standby_found.append(self.leases.acquire(self.name, "standby", ttl=1.0))


def test_a_batch_longer_than_the_lease_pauses_to_renew_it(store: EventStore) -> None:
    """A runner renews its lease within a batch that would outlast it: no standby gets it."""
    clock = FakeClock()
    leases = InMemoryLeaseStore(clock=clock)
    add(store, *range(1, 9))
    projection = Slow(clock, leases)
    runner = ProjectionRunner(store, projection, leases=leases, lease=1.0, clock=clock)
    assert 8 == runner.run_until_caught_up()
    assert ([None] * 8, {"k": 36}) == (projection.standby_found, projection.totals)
    holder = leases.holder("totals")
    assert holder is not None
    assert (runner.owner, 1) == (holder.owner, holder.token)


class SlowLedger(Ledger):
    """A Ledger whose every event takes half a second by *clock*; a standby looks meanwhile."""

    def __init__(self, clock: FakeClock, leases: InMemoryLeaseStore) -> None:
        super().__init__()
        self.clock = clock
        self.leases = leases
        self.standby_found: list[object] = []

    @when(Added)
    def _slowly(self, event: Added, recorded: RecordedEvent, conn: sqlite3.Connection) -> None:
        self.clock.advance(0.5)
        self.standby_found.append(self.leases.acquire(self.name, "standby", ttl=1.0))


def test_an_sqlite_batch_longer_than_the_lease_pauses_to_renew_it(
    sqlite_store: EventStore, checkpoints: SQLiteCheckpointStore, path: Path
) -> None:
    """The batch's savepoint keeps the events before the pause; the rest is the next batch."""
    clock = FakeClock()
    leases = InMemoryLeaseStore(clock=clock)
    add(sqlite_store, *range(1, 9))
    projection = SlowLedger(clock, leases)
    runner = ProjectionRunner(
        sqlite_store, projection, checkpoints=checkpoints, leases=leases, lease=1.0, clock=clock
    )
    assert 8 == runner.run_until_caught_up()
    assert [None] * 8 == projection.standby_found  # renewed within the batch of 8
    assert (list(range(1, 9)), both_rows(*range(1, 9)), 8) == (
        projection.calls,
        ledger(path),
        checkpoints.load("ledger"),
    )


# -- configuration ---------------------------------------------------------------------------


class Nameless(Projection):
    pass


def test_the_runner_checks_what_it_is_given(
    make_runner: MakeRunner, store: EventStore, checkpoints: SQLiteCheckpointStore
) -> None:
    """A projection needs a name; SQLite projections need SQLite checkpoints; sizes are sane."""
    with pytest.raises(RegistrationError, match="needs a name"):
        make_runner(store, Nameless())
    with pytest.raises(RegistrationError, match="Projection or SQLiteProjection"):
        make_runner(store, object())  # type: ignore[arg-type]
    with pytest.raises(RegistrationError, match=r"SQLiteCheckpointStore\(...\)"):
        make_runner(store, TotalsTable())
    with pytest.raises(InvalidArgumentError, match="batch_size"):
        make_runner(store, Totals(), batch_size=0)
    with pytest.raises(InvalidArgumentError, match="poll_interval"):
        make_runner(store, Totals(), poll_interval=0)
    with pytest.raises(InvalidArgumentError, match="poll_interval"):
        make_runner(store, Totals(), poll_interval="1")


# -- following the store in the background: a thread, or a task ------------------------------


def test_a_background_run_follows_new_events_and_wait_for_sees_them(
    make_runner: MakeRunner,
    sqlite_store: EventStore,
    checkpoints: SQLiteCheckpointStore,
    path: Path,
) -> None:
    """While the runner follows the store, wait_for returns once a fresh write is in the model."""
    runner = make_runner(sqlite_store, TotalsTable(), checkpoints=checkpoints, poll_interval=0.01)
    with runner.running():
        was_running = runner.is_running
        for amount in range(1, 6):
            add(sqlite_store, amount)
            runner.wait_for(sqlite_store.head_position(), timeout=10)
            assert sum(range(1, amount + 1)) == table(path)[0][0][1]
    assert (True, False, None) == (was_running, runner.is_running, runner.error)


def test_starting_twice_is_refused(make_runner: MakeRunner, store: EventStore) -> None:
    """A runner runs once at a time."""
    runner = make_runner(store, Totals(), poll_interval=0.01)
    with runner.running(), pytest.raises(ProjectionError, match="already running"):
        runner.start()


def test_a_background_run_that_fails_reports_to_waiters_and_resumes_after_a_fix(
    make_runner: MakeRunner,
    store: EventStore,
) -> None:
    """The error stops the run, wait_for raises it, and a new start resumes at the event."""
    projection = Totals()
    projection.fail_on = 2
    runner = make_runner(store, projection, poll_interval=0.01)
    add(store, 1, 2, 3)
    with pytest.raises(ProjectionError, match="position 2"), runner.running():
        runner.wait_for(3, timeout=10)
    error = runner.error
    assert isinstance(error, ProjectionError)
    assert 1 == runner.position
    projection.fail_on = None
    with runner.running():
        runner.wait_for(3, timeout=10)
    assert ({"k": 6}, None) == (projection.totals, runner.error)


def test_leaving_running_raises_what_stopped_the_background_run(
    make_runner: MakeRunner, store: EventStore
) -> None:
    """A run that failed while the block went on is not forgotten: leaving raises it."""
    projection = Totals()
    projection.fail_on = 1
    runner = make_runner(store, projection, poll_interval=0.01)
    add(store, 1)

    def run_until_the_run_ends() -> None:
        with runner.running():
            while runner.is_running:
                time.sleep(0.01)

    with pytest.raises(ProjectionError, match="position 1"):
        run_until_the_run_ends()


def test_wait_for_catches_up_itself_when_nothing_runs(
    make_runner: MakeRunner, store: EventStore
) -> None:
    """Without a background run, wait_for does the work itself."""
    add(store, 1, 2, 3)
    projection = Totals()
    runner = make_runner(store, projection, batch_size=1)
    runner.wait_for(3)
    assert {"k": 6} == projection.totals
    runner.wait_for(2)  # already there


def test_wait_for_gives_up_after_the_timeout(make_runner: MakeRunner, store: EventStore) -> None:
    """A position that does not come raises ProjectionTimeoutError, a TimeoutError."""
    add(store, 1)
    runner = make_runner(store, Totals(), poll_interval=0.01)
    with pytest.raises(ProjectionTimeoutError, match="did not reach position 5") as info:
        runner.wait_for(5, timeout=0.05)
    assert (5, 1, "totals") == (info.value.wanted, info.value.reached, info.value.projection)
    assert isinstance(info.value, TimeoutError)
    with runner.running(), pytest.raises(ProjectionTimeoutError):
        runner.wait_for(5, timeout=0.05)


def test_a_store_error_ends_the_background_run_and_reaches_waiters(
    make_runner: MakeRunner, sqlite_store: EventStore
) -> None:
    """Any error ends the run and is kept for waiters, not lost in a thread or a task."""
    runner = make_runner(sqlite_store, Totals(), poll_interval=0.01)
    runner.start()
    sqlite_store.close()
    try:
        with pytest.raises(StoreClosedError):
            runner.wait_for(1, timeout=10)
    finally:
        runner.stop()
    assert isinstance(runner.error, StoreClosedError)


# -- the sync runner under asyncio -----------------------------------------------------------


def test_run_async_follows_the_store_until_stopped(
    sqlite_store: EventStore, checkpoints: SQLiteCheckpointStore, path: Path
) -> None:
    """Under asyncio, run_async follows new events and wait_for_async waits for them."""

    async def main() -> None:
        runner = ProjectionRunner(
            sqlite_store, TotalsTable(), checkpoints=checkpoints, poll_interval=0.01
        )
        stop = asyncio.Event()
        task = asyncio.create_task(runner.run_async(stop=stop))
        await asyncio.sleep(0)
        for amount in (1, 2, 3):
            add(sqlite_store, amount)
            await runner.wait_for_async(sqlite_store.head_position(), timeout=10)
        was_running = runner.is_running
        stop.set()
        await task
        assert (True, False) == (was_running, runner.is_running)

    asyncio.run(main())
    assert ([("k", 6)], [1, 2, 3]) == table(path)


def test_run_async_without_a_stop_event_ends_by_cancellation(store: EventStore) -> None:
    """Cancelling the task ends the run; a batch in progress completes or rolls back whole."""

    async def main() -> Totals:
        projection = Totals()
        runner = ProjectionRunner(store, projection, poll_interval=0.01)
        task = asyncio.create_task(runner.run_async())
        await asyncio.sleep(0.05)  # caught up on nothing: it polls
        add(store, 4)
        await runner.wait_for_async(1, timeout=10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not runner.is_running
        return projection

    assert {"k": 4} == asyncio.run(main()).totals


def test_run_async_raises_a_handler_failure(store: EventStore) -> None:
    """A failing batch ends run_async with the ProjectionError, and waiters get it too."""

    async def main() -> None:
        projection = Totals()
        projection.fail_on = 1
        runner = ProjectionRunner(store, projection, poll_interval=0.01)
        add(store, 1)
        with pytest.raises(ProjectionError, match="position 1"):
            await runner.run_async()
        with pytest.raises(ProjectionError, match="position 1"):
            await runner.wait_for_async(1, timeout=1)

    asyncio.run(main())


def test_wait_for_async_catches_up_itself_and_times_out(store: EventStore) -> None:
    """With nothing running, wait_for_async does the work; a missing position times out."""

    async def main() -> None:
        runner = ProjectionRunner(store, Totals(), poll_interval=0.01)
        add(store, 1, 2)
        await runner.wait_for_async(2)
        assert 2 == runner.position
        with pytest.raises(ProjectionTimeoutError):
            await runner.wait_for_async(3, timeout=0.05)

    asyncio.run(main())


# -- checkpoint stores -----------------------------------------------------------------------


class TestInMemoryCheckpointStore(CheckpointStoreContract):
    transactions_undo = False

    @pytest.fixture
    def store(self) -> Iterator[CheckpointStore]:
        with InMemoryCheckpointStore() as store:
            yield store


class TestSQLiteCheckpointStore(CheckpointStoreContract):
    @pytest.fixture
    def store(self, path: Path) -> Iterator[CheckpointStore]:
        with SQLiteCheckpointStore(path) as store:
            yield store

    def open_another(self, store: CheckpointStore) -> CheckpointStore:
        assert isinstance(store, SQLiteCheckpointStore)
        assert store.path is not None
        return SQLiteCheckpointStore(store.path)


class TestSQLiteCheckpointStoreOnAGivenConnection(CheckpointStoreContract):
    @pytest.fixture
    def store(self, path: Path) -> Iterator[CheckpointStore]:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA synchronous = OFF")  # the tests are of the code, not of the disk
        try:
            with SQLiteCheckpointStore(conn, table="given") as store:
                yield store
        finally:
            conn.close()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_checkpoint_stores_keep_positions_by_name(kind: str, path: Path) -> None:
    """load() gives 0 for an unknown name and the last saved position otherwise."""
    store: InMemoryCheckpointStore | SQLiteCheckpointStore = (
        InMemoryCheckpointStore() if kind == "memory" else SQLiteCheckpointStore(path)
    )
    assert isinstance(store, CheckpointStore)
    with store:
        assert 0 == store.load("a")
        store.save("a", 7)
        store.save("b", 1)
        assert (7, 1) == (store.load("a"), store.load("b"))
        with pytest.raises(InvalidArgumentError, match="position"):
            store.save("a", -1)
        assert "CheckpointStore" in repr(store)
    with pytest.raises(StoreClosedError):
        store.load("a")
    store.close()


def test_sqlite_checkpoints_refuse_a_foreign_table(path: Path) -> None:
    """A table of the same name that is something else is left alone."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE projection_checkpoints (x TEXT)")
    with pytest.raises(StoreFormatError, match="has columns x"):
        SQLiteCheckpointStore(path)


def test_sqlite_checkpoints_refuse_a_table_of_the_earlier_layout(path: Path) -> None:
    """A checkpoint table without fencing tokens is refused, and left as it was."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE projection_checkpoints (name TEXT PRIMARY KEY, position INT)")
    with pytest.raises(StoreFormatError, match="has columns name, position where busway expects"):
        SQLiteCheckpointStore(path)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        tables = conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert [("projection_checkpoints",)] == tables


def test_sqlite_checkpoints_make_the_parked_table_where_it_is_missing(path: Path) -> None:
    """A checkpoint table of this layout whose parked table is gone gets a new, empty one."""
    with SQLiteCheckpointStore(path) as checkpoints:
        checkpoints.save("p", 3)
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("DROP TABLE projection_checkpoints_parked")
    with SQLiteCheckpointStore(path) as checkpoints:
        assert (3, []) == (checkpoints.load("p"), checkpoints.parked("p"))


def test_sqlite_checkpoint_table_names_leave_room_for_the_parked_table(path: Path) -> None:
    """A table name takes at most 56 characters, so that the parked table's takes 63."""
    with SQLiteCheckpointStore(path, table="x" * 56) as checkpoints:
        assert [] == checkpoints.names()
    with pytest.raises(InvalidArgumentError, match="at most 56"):
        SQLiteCheckpointStore(path, table="x" * 57)


_READS: dict[str, Callable[[SQLiteCheckpointStore], object]] = {
    "token": lambda checkpoints: checkpoints.token("p"),
    "names": lambda checkpoints: checkpoints.names(),
    "parked": lambda checkpoints: checkpoints.parked("p"),
}


@pytest.mark.parametrize(
    ("statement", "read", "said"),
    [
        ("UPDATE projection_checkpoints SET token = -1", "token", "-1 (int) as the fencing token"),
        (
            "UPDATE projection_checkpoints SET name = x'05'",
            "names",
            "(bytes) as a checkpoint's name",
        ),
        ("UPDATE projection_checkpoints_parked SET attempts = 'x'", "parked", "'x' (str) as the"),
    ],
)
def test_sqlite_checkpoints_refuse_damaged_rows(
    path: Path, statement: str, read: str, said: str
) -> None:
    """A token, name or parked event no busway store writes is a StoreFormatError naming it."""
    with SQLiteCheckpointStore(path) as checkpoints, checkpoints.transaction("p") as checkpoint:
        checkpoint.fence(2)
        checkpoint.park(CheckpointStoreContract.parked_event("p"))
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute(statement)
        conn.commit()
    with SQLiteCheckpointStore(path) as checkpoints, pytest.raises(StoreFormatError) as info:
        _READS[read](checkpoints)
    assert said in str(info.value)


def test_sqlite_checkpoints_refuse_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    """A file that is not SQLite raises StoreFormatError and is not changed."""
    bogus = tmp_path / "notes.txt"
    bogus.write_bytes(b"just some text, long enough to look like a header" * 4)
    with pytest.raises(StoreFormatError, match="not an SQLite database"):
        SQLiteCheckpointStore(bogus)
    assert bogus.read_bytes().startswith(b"just some text")


def test_a_crash_inside_a_transaction_of_a_given_connection_undoes_the_batch(
    sqlite_store: EventStore, path: Path
) -> None:
    """On a connection already in a transaction, a batch is a savepoint, rolled back whole."""
    add(sqlite_store, 1)
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        checkpoints = SQLiteCheckpointStore(conn)
        crashing = CrashingCheckpoints(checkpoints)
        runner = ProjectionRunner(sqlite_store, TotalsTable(), checkpoints=crashing)
        conn.execute("BEGIN")
        with pytest.raises(Crash):
            runner.run_once()
        assert conn.in_transaction
        conn.execute("COMMIT")
        assert ([], [], 0) == (*table(path), checkpoints.load("totals_table"))
    finally:
        conn.close()


def test_a_given_connection_to_a_file_that_is_not_a_database_is_refused(tmp_path: Path) -> None:
    """The table check on a given connection reports a file that is not SQLite."""
    bogus = tmp_path / "notes.txt"
    bogus.write_bytes(b"plain text, not a database at all" * 8)
    conn = sqlite3.connect(bogus)
    try:
        with pytest.raises(StoreFormatError, match="not an SQLite database"):
            SQLiteCheckpointStore(conn)
    finally:
        conn.close()


def test_sqlite_checkpoints_join_a_transaction_of_a_given_connection(path: Path) -> None:
    """On a connection already in a transaction, a save lasts only if that commits."""
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        store = SQLiteCheckpointStore(conn)
        conn.execute("BEGIN")
        store.save("a", 3)
        conn.execute("ROLLBACK")
        assert 0 == store.load("a")
        store.close()
        assert [] == conn.execute("SELECT * FROM projection_checkpoints").fetchall()
    finally:
        conn.close()


@pytest.mark.parametrize("value", ["abc", -1, 2.5, None, b"\x01", 2**63 * 1.0])
def test_a_damaged_checkpoint_is_refused_by_name(path: Path, value: object) -> None:
    """A position no busway store writes is a StoreFormatError naming table, name and value."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("CREATE TABLE projection_checkpoints (name TEXT PRIMARY KEY, position, token)")
        conn.execute("INSERT INTO projection_checkpoints VALUES ('totals_table', ?, 0)", (value,))
        conn.commit()
    with SQLiteCheckpointStore(path) as checkpoints, SQLiteEventStore(path, types=TYPES) as s:
        with pytest.raises(StoreFormatError) as info:
            checkpoints.load("totals_table")
        said = ("'projection_checkpoints'", "'totals_table'", repr(value), "UPDATE projection_")
        assert [] == [part for part in said if part not in str(info.value)]
        with pytest.raises(StoreFormatError, match="'totals_table'"):
            ProjectionRunner(s, TotalsTable(), checkpoints=checkpoints)
        with checkpoints.transaction("totals_table") as checkpoint, pytest.raises(StoreFormatError):
            checkpoint.load()
