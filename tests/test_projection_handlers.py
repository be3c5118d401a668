"""SQLite projection handlers that misuse the runner's connection cannot break exactly-once.

Each test runs a handler that commits, rolls back, closes or otherwise ends the runner's
transaction on a real SQLite file, then checks that the runner stopped with a
``ProjectionError`` and that a fresh runner, with the handler fixed, applies every event
exactly once: the read model and the checkpoint still agree.
"""

from __future__ import annotations

import contextlib
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import attrs
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from busway import Event, StoreClosedError
from busway.eventstore import EventTypes, RecordedEvent, SQLiteEventStore
from busway.projections import (
    CheckpointTransaction,
    ProjectionError,
    ProjectionRunner,
    SQLiteCheckpointStore,
    SQLiteProjection,
    when,
)
from tests.test_projections import CrashingCheckpoints, CrashingTransaction


@attrs.frozen
class Added(Event):
    amount: int


TYPES = EventTypes(Added)

Misdeed = Callable[[sqlite3.Connection], object]


def _interrupted(conn: sqlite3.Connection) -> None:
    """Have SQLite interrupt a write, which rolls back the whole transaction."""
    conn.set_progress_handler(lambda: 1, 100)
    try:
        conn.execute(
            "INSERT INTO applied (position) WITH RECURSIVE n(i) AS "
            "(SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000) SELECT -i FROM n"
        )
    finally:
        conn.set_progress_handler(None, 0)


def _swallowing(misdeed: Misdeed) -> Misdeed:
    """Do *misdeed* and carry on as if it had worked, whatever SQLite said."""

    def act(conn: sqlite3.Connection) -> None:
        with contextlib.suppress(sqlite3.Error):
            misdeed(conn)

    return act


class Raised(Exception):
    """A handler's own failure: the runner keeps the events before it in the batch."""


def _raise(conn: sqlite3.Connection) -> None:
    raise Raised("the handler failed")


REFUSED: dict[str, tuple[Misdeed, str]] = {
    "conn.commit()": (lambda conn: conn.commit(), "tried to COMMIT"),
    "conn.rollback()": (lambda conn: conn.rollback(), "tried to ROLLBACK"),
    "COMMIT": (lambda conn: conn.execute("COMMIT"), "tried to COMMIT"),
    "END": (lambda conn: conn.execute("END"), "tried to COMMIT"),
    "ROLLBACK": (lambda conn: conn.execute("ROLLBACK"), "tried to ROLLBACK"),
    "BEGIN": (lambda conn: conn.execute("BEGIN"), "tried to BEGIN"),
    "executescript()": (
        lambda conn: conn.executescript("INSERT INTO applied (position) VALUES (0)"),
        "tried to COMMIT",
    ),
    "COMMIT then BEGIN": (
        lambda conn: (conn.execute("COMMIT"), conn.execute("BEGIN")),
        "tried to COMMIT",
    ),
    "a swallowed conn.commit()": (_swallowing(lambda conn: conn.commit()), "tried to COMMIT"),
    "a swallowed ROLLBACK": (
        _swallowing(lambda conn: conn.execute("ROLLBACK")),
        "tried to ROLLBACK",
    ),
}

BROKEN: dict[str, tuple[Misdeed, str]] = {
    **REFUSED,
    "conn.close()": (lambda conn: conn.close(), "closed the runner's connection"),
    "an interrupt": (_interrupted, "SQLite rolled it back"),
    # Refused, or (when SQLite reuses the runner's own prepared statement) found out after.
    "RELEASE busway": (lambda conn: conn.execute("RELEASE busway"), "RELEASE"),
}


class Applied(SQLiteProjection):
    """Lists the positions it applies, with no key: an event applied twice shows twice.

    At the positions in ``misdeeds`` the handler writes, misbehaves, then writes again.
    """

    name = "applied"

    def __init__(self, misdeeds: dict[int, Misdeed] | None = None) -> None:
        self.misdeeds = misdeeds or {}

    def setup(self, conn: sqlite3.Connection) -> None:
        conn.execute("CREATE TABLE IF NOT EXISTS applied (position INTEGER NOT NULL)")

    @when(Added)
    def _added(self, event: Added, recorded: RecordedEvent, conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO applied (position) VALUES (?)", (recorded.position,))
        misdeed = self.misdeeds.get(recorded.position)
        if misdeed is not None:
            misdeed(conn)
            conn.execute("INSERT INTO applied (position) VALUES (?)", (-recorded.position,))


def applied(path: Path) -> list[int]:
    """Return the read model, in the order it was written."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        return [p for (p,) in conn.execute("SELECT position FROM applied ORDER BY rowid")]


def stored_checkpoint(path: Path) -> int:
    """Return the checkpoint as another process would read it."""
    with contextlib.closing(SQLiteCheckpointStore(path)) as checkpoints:
        return checkpoints.load(Applied.name)


def catch_up_afresh(store: SQLiteEventStore, path: Path) -> None:
    """Run a fresh runner, on a fresh checkpoint store, with no misbehaving handler."""
    with SQLiteCheckpointStore(path) as checkpoints:
        ProjectionRunner(store, Applied(), checkpoints=checkpoints).run_until_caught_up()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "app.db"


@pytest.fixture
def store(path: Path) -> Iterator[SQLiteEventStore]:
    with SQLiteEventStore(path, types=TYPES) as s:
        for amount in range(1, 5):
            s.append(f"stream-{amount}", [Added(amount)])
        yield s


@pytest.mark.parametrize("position", [3, 4], ids=["first-of-batch", "later-in-batch"])
@pytest.mark.parametrize("misdeed", sorted(BROKEN))
def test_a_handler_that_ends_the_transaction_keeps_nothing_of_its_batch(
    store: SQLiteEventStore, path: Path, misdeed: str, position: int
) -> None:
    """The runner says what the handler did; a fresh runner then applies each event once."""
    act, says = BROKEN[misdeed]
    checkpoints = SQLiteCheckpointStore(path)
    runner = ProjectionRunner(
        store, Applied({position: act}), checkpoints=checkpoints, batch_size=2
    )
    assert 2 == runner.run_once()
    with pytest.raises(ProjectionError) as info:
        runner.run_once()
    error = info.value
    assert (Applied.name, position) == (error.projection, error.position)
    assert says in str(error)
    assert "Nothing of this batch was kept: the checkpoint stays at 2" in str(error)
    assert isinstance(error.__cause__, ProjectionError)
    assert (2, [1, 2], 2) == (runner.position, applied(path), stored_checkpoint(path))
    checkpoints.close()
    catch_up_afresh(store, path)
    assert [1, 2, 3, 4] == applied(path)


@pytest.mark.parametrize("misdeed", sorted(REFUSED))
def test_sqlite_refuses_what_would_end_the_transaction(
    store: SQLiteEventStore, path: Path, misdeed: str
) -> None:
    """Nothing the handler does commits: SQLite refuses it, and the batch is undone whole."""
    act, _ = REFUSED[misdeed]
    with SQLiteCheckpointStore(path) as checkpoints:
        projection = Applied({2: act})
        runner = ProjectionRunner(store, projection, checkpoints=checkpoints)
        with pytest.raises(ProjectionError, match="which SQLite refused"):
            runner.run_once()
        assert ([], 0) == (applied(path), checkpoints.load(Applied.name))
        projection.misdeeds = {}
        assert 4 == runner.run_until_caught_up()
    assert [1, 2, 3, 4] == applied(path)


def test_a_handler_that_closes_the_connection_closes_the_store(
    store: SQLiteEventStore, path: Path
) -> None:
    """The runner cannot go on; the store then refuses work with StoreClosedError."""
    checkpoints = SQLiteCheckpointStore(path)
    runner = ProjectionRunner(
        store, Applied({3: lambda conn: conn.close()}), checkpoints=checkpoints
    )
    with pytest.raises(ProjectionError, match="open a new SQLiteCheckpointStore"):
        runner.run_once()
    with pytest.raises(StoreClosedError):
        checkpoints.load(Applied.name)
    with pytest.raises(StoreClosedError):
        runner.run_once()
    checkpoints.close()
    assert ([], 0) == (applied(path), stored_checkpoint(path))


def test_writes_after_a_rollback_by_sqlite_itself_are_reported(
    store: SQLiteEventStore, path: Path
) -> None:
    """A handler that swallows SQLite's own rollback and writes on commits those writes alone.

    No prepared statement can be stopped from running outside a transaction, so the runner
    says so rather than promise what it cannot keep.
    """
    with SQLiteCheckpointStore(path) as checkpoints:
        swallowing = Applied({2: _swallowing(_interrupted)})
        runner = ProjectionRunner(store, swallowing, checkpoints=checkpoints)
        with pytest.raises(ProjectionError, match="SQLite rolled it back") as info:
            runner.run_once()
        assert "the writes it made after it were committed on their own" in str(info.value)
        assert ([-2], 0) == (applied(path), checkpoints.load(Applied.name))


def test_the_connection_takes_transaction_statements_again_after_the_batch(
    store: SQLiteEventStore, path: Path
) -> None:
    """The refusal lasts only while a batch runs: the connection is as it was afterwards."""
    with SQLiteCheckpointStore(path) as checkpoints:
        runner = ProjectionRunner(store, Applied(), checkpoints=checkpoints)
        runner.run_until_caught_up()
        with checkpoints.transaction(Applied.name) as checkpoint:
            conn = checkpoint.connection
            assert isinstance(conn, sqlite3.Connection)
            conn.commit()
        conn.execute("BEGIN")
        conn.execute("COMMIT")


class OwnSavepoints(Applied):
    """Uses savepoints of its own, which is allowed: it undoes one write of each event."""

    @when(Added)
    def _nested(self, event: Added, recorded: RecordedEvent, conn: sqlite3.Connection) -> None:
        conn.execute("SAVEPOINT mine")
        conn.execute("INSERT INTO applied (position) VALUES (?)", (-recorded.position,))
        conn.execute("ROLLBACK TO mine")
        conn.execute("RELEASE mine")
        conn.execute("SAVEPOINT left_open")  # the runner's savepoint of the event takes it along


def test_a_handler_may_use_savepoints_of_its_own(store: SQLiteEventStore, path: Path) -> None:
    """Its own savepoints nest inside the runner's; every event is applied once."""
    with SQLiteCheckpointStore(path) as checkpoints:
        runner = ProjectionRunner(store, OwnSavepoints(), checkpoints=checkpoints, batch_size=3)
        assert 4 == runner.run_until_caught_up()
        assert 4 == checkpoints.load(Applied.name)
    assert [1, 2, 3, 4] == applied(path)


def test_a_handler_cannot_release_the_callers_savepoint(
    store: SQLiteEventStore, path: Path
) -> None:
    """On a connection given inside the caller's transaction, that transaction is kept too."""
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        checkpoints = SQLiteCheckpointStore(conn)
        release = Applied({2: lambda c: c.execute("RELEASE outer")})
        runner = ProjectionRunner(store, release, checkpoints=checkpoints)
        conn.execute("SAVEPOINT outer")
        conn.execute("INSERT INTO applied (position) VALUES (100)")
        with pytest.raises(
            ProjectionError, match="tried to RELEASE savepoint 'outer', which it did not open"
        ):
            runner.run_once()
        assert conn.in_transaction
        conn.execute("RELEASE outer")
        assert ([100], 0) == (applied(path), checkpoints.load(Applied.name))
    finally:
        conn.close()


def _on_the_second_call(misdeed: Misdeed) -> Misdeed:
    """Do nothing the first time, and *misdeed* the second."""
    calls = 0

    def act(conn: sqlite3.Connection) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            misdeed(conn)

    return act


def test_a_handler_cannot_end_the_savepoint_of_the_events_handled_again(
    store: SQLiteEventStore, path: Path
) -> None:
    """After a failure, the events before it are handled again in a savepoint whose
    statements the runner has run before in this transaction: SQLite still asks, and
    refuses a handler that rolls it back."""
    rollback = _swallowing(lambda conn: conn.execute("ROLLBACK TO busway"))
    with SQLiteCheckpointStore(path) as checkpoints:
        projection = Applied({3: _on_the_second_call(rollback), 4: _raise})
        runner = ProjectionRunner(store, projection, checkpoints=checkpoints, batch_size=10)
        with pytest.raises(ProjectionError) as info:
            runner.run_once()
        assert 3 == info.value.position
        assert "tried to ROLLBACK savepoint 'busway', which it did not open" in str(info.value)
        assert ([], 0) == (applied(path), checkpoints.load(Applied.name))
    catch_up_afresh(store, path)
    assert [1, 2, 3, 4] == applied(path)


class FailingSavepoints(CrashingCheckpoints):
    """A checkpoint store of a third party's, whose savepoints fail after the handlers ran."""

    @contextlib.contextmanager
    def transaction(self, name: str) -> Iterator[CheckpointTransaction]:
        with self.store.transaction(name) as checkpoint:
            yield FailingSavepoint(checkpoint, self)


class FailingSavepoint(CrashingTransaction):
    """A checkpoint transaction whose savepoint raises an error of its own on leaving."""

    @contextlib.contextmanager
    def savepoint(self) -> Iterator[None]:
        with self.checkpoint.savepoint():
            yield
        raise OSError("the disk went away")


def test_a_savepoint_that_fails_of_its_own_undoes_the_batch(
    store: SQLiteEventStore, path: Path
) -> None:
    """Whatever a store's savepoint raises, the runner saves nothing and names the store."""
    with SQLiteCheckpointStore(path) as checkpoints:
        failing = FailingSavepoints(checkpoints)
        failing.armed = False
        runner = ProjectionRunner(store, Applied(), checkpoints=failing)
        with pytest.raises(ProjectionError) as info:
            runner.run_once()
        assert "a checkpoint store whose savepoint failed (OSError: the disk went away)" in str(
            info.value
        )
        assert isinstance(info.value.__cause__, OSError)
        assert ([], 0, 0) == (applied(path), checkpoints.load(Applied.name), runner.position)


# -- a state machine: batches, failures and misdeeds, and fresh runners --------------------------


MISDEEDS: dict[str, Misdeed] = {
    "raise": _raise,
    **{name: act for name, (act, _) in BROKEN.items()},
}


class ExactlyOnce(RuleBasedStateMachine):
    """Events are appended and handled in batches by handlers that fail or misbehave at random.

    Whatever happens, the read model is a replay of exactly the events up to the checkpoint.
    """

    def __init__(self) -> None:
        super().__init__()
        self._dir = tempfile.TemporaryDirectory()
        self.path = Path(self._dir.name) / "app.db"
        self.store = SQLiteEventStore(self.path, types=TYPES, synchronous="off")
        self.checkpoints = SQLiteCheckpointStore(self.path)
        ProjectionRunner(self.store, Applied(), checkpoints=self.checkpoints)  # makes the table
        self.appended = 0

    def teardown(self) -> None:
        self.checkpoints.close()
        self.store.close()
        self._dir.cleanup()

    @rule(count=st.integers(1, 5))
    def append(self, count: int) -> None:
        for _ in range(count):
            self.appended += 1
            self.store.append(f"stream-{self.appended % 3}", [Added(self.appended)])

    @rule(
        batch_size=st.integers(1, 4),
        misdeeds=st.dictionaries(st.integers(1, 30), st.sampled_from(sorted(MISDEEDS))),
        fresh=st.booleans(),
    )
    def run(self, batch_size: int, misdeeds: dict[int, str], fresh: bool) -> None:
        if fresh:
            self.checkpoints.close()
            self.checkpoints = SQLiteCheckpointStore(self.path)
        projection = Applied({p: MISDEEDS[name] for p, name in misdeeds.items()})
        try:
            runner = ProjectionRunner(
                self.store, projection, checkpoints=self.checkpoints, batch_size=batch_size
            )
            runner.run_until_caught_up()
        except (ProjectionError, StoreClosedError):
            pass

    @rule()
    def catch_up(self) -> None:
        catch_up_afresh(self.store, self.path)
        assert list(range(1, self.appended + 1)) == applied(self.path)

    @invariant()
    def the_read_model_is_a_replay_up_to_the_checkpoint(self) -> None:
        checkpoint = stored_checkpoint(self.path)
        assert list(range(1, checkpoint + 1)) == applied(self.path)


ExactlyOnce.TestCase.settings = settings(
    ExactlyOnce.TestCase.settings, max_examples=40, stateful_step_count=12
)
test_exactly_once_whatever_the_handlers_do = ExactlyOnce.TestCase
