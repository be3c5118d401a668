"""A snapshot is a cache, never the truth: a load uses one only when the stream vouches for it.

Each test keeps events and snapshots in real SQLite files, the events on a connection the
test owns (so that it can roll a save back in its own transaction) and the snapshots in a
file of their own, which commits on its own: what a rolled-back save, a restored backup or
a write lost in a power cut leave behind.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import sqlite3
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import hypothesis.strategies as st
import pytest
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from busway import ConcurrencyError, InvalidArgumentError, SerializationError
from busway.aggregates import AsyncRepository, Repository, Snapshot, SQLiteSnapshotStore
from busway.eventstore import AsyncSQLiteEventStore, RecordedEvent, SQLiteEventStore
from tests.bank import TYPES, BankAccount, Deposited, Opened, state

STREAM = "bank-account-a-1"


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(tmp_path / "events.db", isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")  # the tests are of the code, not of the disk
    yield conn
    conn.close()


@pytest.fixture
def store(conn: sqlite3.Connection) -> Iterator[SQLiteEventStore]:
    with SQLiteEventStore(conn, types=TYPES) as store:
        yield store


@pytest.fixture
def snapshots(tmp_path: Path) -> Iterator[SQLiteSnapshotStore]:
    with SQLiteSnapshotStore(tmp_path / "snapshots.db") as snapshots:
        yield snapshots


@pytest.fixture
def repo(store: SQLiteEventStore, snapshots: SQLiteSnapshotStore) -> Repository[BankAccount]:
    return Repository(store, BankAccount, snapshot_every=2, snapshots=snapshots)


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.WARNING, logger="busway.aggregates")
    return caplog


def replayed(store: SQLiteEventStore) -> BankAccount:
    """Return the account as its stored events make it, with no snapshot."""
    return BankAccount.from_history("a-1", store.read_stream(STREAM))


def save_then_roll_back(
    conn: sqlite3.Connection, repo: Repository[BankAccount], *amounts: int
) -> None:
    """Deposit *amounts* and save, in a transaction of *conn* that is then rolled back."""
    account = repo.get("a-1")
    conn.execute("BEGIN")
    for amount in amounts:
        account.deposit(amount)
    repo.save(account)
    conn.execute("ROLLBACK")


def damage(path: Path, assignment: str, *values: object) -> None:
    """Change the snapshot row of the account, as a bad disk or a careless hand would."""
    with sqlite3.connect(path) as raw:
        raw.execute(f"UPDATE snapshots SET {assignment} WHERE stream_id = ?", (*values, STREAM))
    raw.close()


def test_a_snapshot_ahead_of_its_stream_is_ignored(
    conn: sqlite3.Connection,
    store: SQLiteEventStore,
    snapshots: SQLiteSnapshotStore,
    repo: Repository[BankAccount],
    warnings: pytest.LogCaptureFixture,
) -> None:
    """A save rolled back in the caller's transaction leaves a snapshot loads do not trust."""
    repo.save(BankAccount.open("a-1", "ann"))
    save_then_roll_back(conn, repo, 100)
    assert 2 == _version(snapshots.load(STREAM))
    loaded = repo.get("a-1")
    assert state(replayed(store)) == state(loaded)
    assert "no event at version 2" in warnings.text
    assert "loading it by replaying its events" in warnings.text
    loaded.deposit(5)
    assert 2 == repo.save(loaded)


def test_a_snapshot_ahead_of_a_restored_backup_is_ignored(tmp_path: Path) -> None:
    """Once the event file is put back from an older backup, loads replay what it holds."""
    events, backup = tmp_path / "events.db", tmp_path / "backup.db"
    with SQLiteSnapshotStore(tmp_path / "snapshots.db") as snapshots:
        with SQLiteEventStore(events, types=TYPES) as store:
            repo = Repository(store, BankAccount, snapshot_every=2, snapshots=snapshots)
            repo.save(BankAccount.open("a-1", "ann"))
            _copy(events, backup)
            account = repo.get("a-1")
            for amount in (1, 2, 3):
                account.deposit(amount)
            repo.save(account)
        assert 4 == _version(snapshots.load(STREAM))
        _copy(backup, events)
        with SQLiteEventStore(events, types=TYPES) as store:
            repo = Repository(store, BankAccount, snapshot_every=2, snapshots=snapshots)
            loaded = repo.get("a-1")
            assert (1, 0) == (loaded.version, loaded.balance)
            loaded.deposit(7)
            assert 2 == repo.save(loaded)
            assert 7 == repo.get("a-1").balance


def test_a_snapshot_of_events_another_writer_replaced_is_ignored(
    conn: sqlite3.Connection,
    store: SQLiteEventStore,
    repo: Repository[BankAccount],
    tmp_path: Path,
    warnings: pytest.LogCaptureFixture,
) -> None:
    """A stream brought back to a snapshot's version by other events does not vouch for it."""
    repo.save(BankAccount.open("a-1", "ann"))
    save_then_roll_back(conn, repo, 200)  # a snapshot at version 2, with 200
    with SQLiteEventStore(tmp_path / "events.db", types=TYPES) as other:
        other.append(STREAM, [Deposited(10)], expected_version=1)
    loaded = repo.get("a-1")
    assert (2, 10) == (loaded.version, loaded.balance)
    assert "is not the one it was taken after" in warnings.text
    loaded.deposit(1)
    assert 3 == repo.save(loaded)


@pytest.mark.parametrize("replaced", [False, True], ids=["ahead", "replaced"])
def test_the_async_repository_checks_snapshots_alike(
    conn: sqlite3.Connection,
    store: SQLiteEventStore,
    repo: Repository[BankAccount],
    tmp_path: Path,
    replaced: bool,
) -> None:
    """AsyncRepository ignores a snapshot ahead of its stream, or of events since replaced."""
    snapshots = repo.snapshots
    repo.save(BankAccount.open("a-1", "ann"))
    save_then_roll_back(conn, repo, 200)
    if replaced:
        store.append(STREAM, [Deposited(10)], expected_version=1)

    async def load_and_save() -> BankAccount:
        async with AsyncSQLiteEventStore(tmp_path / "events.db", types=TYPES) as async_store:
            async_repo = AsyncRepository(
                async_store, BankAccount, snapshot_every=2, snapshots=snapshots
            )
            loaded = await async_repo.get("a-1")
            loaded.deposit(1)
            await async_repo.save(loaded)
            return loaded

    loaded = asyncio.run(load_and_save())
    assert state(replayed(store)) == state(loaded)
    assert (11 if replaced else 1) == loaded.balance


def test_a_snapshot_the_stream_vouches_for_is_used(
    store: SQLiteEventStore, snapshots: SQLiteSnapshotStore, repo: Repository[BankAccount]
) -> None:
    """A sound snapshot is used: the stream is read from its version on, and no further back."""
    account = BankAccount.open("a-1", "ann")
    account.deposit(5)
    repo.save(account)  # a snapshot at version 2
    account.deposit(6)
    repo.save(account)
    kept = snapshots.load(STREAM)
    assert kept is not None
    assert store.read_stream(STREAM)[1].event_id == kept.event_id
    # A snapshot that says more than the events proves it was used, and only it.
    damage(snapshots.path or Path(), "state = ?", '{"owner":"bob","balance":50,"history":[]}')
    loaded = repo.get("a-1")
    assert ("bob", 56, 3) == (loaded.owner, loaded.balance, loaded.version)


DAMAGES = {
    "incomplete": ("state = ?", "{}", "its state lacks owner, balance, history"),
    "unreadable": ("state = ?", "{oops", "could not load the snapshot"),
    "not an object": ("state = ?", "[1, 2]", "could not load the snapshot"),
    "a field of the wrong type": (
        "state = ?",
        '{"owner":"ann","balance":"lots","history":[]}',
        "its balance cannot be read",
    ),
    "another schema version": ("schema_version = ?", 7, "taken with snapshot_version 7"),
    "a version that is no number": ("version = ?", "two", "could not load the snapshot"),
    "an event id that is no UUID": ("event_id = ?", "e-1", "could not load the snapshot"),
    "another event id": ("event_id = ?", uuid.uuid4().bytes, "is not the one it was taken after"),
    "an earlier version": ("version = ?", 1, "is not the one it was taken after"),
}


@pytest.mark.parametrize("damaged", DAMAGES)
def test_a_damaged_snapshot_is_ignored_and_logged(
    store: SQLiteEventStore,
    snapshots: SQLiteSnapshotStore,
    repo: Repository[BankAccount],
    warnings: pytest.LogCaptureFixture,
    damaged: str,
) -> None:
    """An unreadable, incomplete or mismatched snapshot is logged, and the load replays."""
    assignment, value, why = DAMAGES[damaged]
    account = BankAccount.open("a-1", "ann")
    account.deposit(100)
    repo.save(account)
    assert snapshots.path is not None
    damage(snapshots.path, assignment, value)
    loaded = repo.get("a-1")
    assert state(replayed(store)) == state(loaded)
    assert why in warnings.text
    assert "'bank-account-a-1'" in warnings.text
    assert "replaying its events" in warnings.text
    loaded.deposit(1)
    assert 3 == repo.save(loaded)


def test_a_snapshot_table_of_the_first_layout_is_replaced(
    tmp_path: Path, warnings: pytest.LogCaptureFixture
) -> None:
    """Snapshots that name no event cannot be checked: the table of the first layout is remade."""
    path = tmp_path / "app.db"
    with sqlite3.connect(path) as raw:
        raw.execute(
            "CREATE TABLE snapshots (stream_id TEXT PRIMARY KEY, version INTEGER NOT NULL, "
            "schema_version INTEGER NOT NULL, state TEXT NOT NULL)"
        )
        raw.execute("INSERT INTO snapshots VALUES (?, 1, 1, ?)", (STREAM, '{"owner":"zed"}'))
    raw.close()
    with SQLiteEventStore(path, types=TYPES) as store, SQLiteSnapshotStore(path) as snapshots:
        assert None is snapshots.load(STREAM)
        assert "dropped 1 snapshot" in warnings.text
        store.append(STREAM, [Opened("ann")])
        repo = Repository(store, BankAccount, snapshot_every=1, snapshots=snapshots)
        account = repo.get("a-1")
        assert "ann" == account.owner
        account.deposit(3)
        repo.save(account)
        assert 2 == _version(snapshots.load(STREAM))
    with SQLiteSnapshotStore(path) as snapshots:  # the new layout is kept as it is
        assert 2 == _version(snapshots.load(STREAM))


def test_a_state_that_is_not_a_json_object_is_refused() -> None:
    """No store is given a snapshot whose state is not a JSON object: it cannot be made."""
    event_id = uuid.uuid4()
    with pytest.raises(SerializationError, match="not JSON"):
        Snapshot(STREAM, 1, event_id, 1, "{oops")
    with pytest.raises(SerializationError, match="not a JSON object"):
        Snapshot(STREAM, 1, event_id, 1, "[]")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stream_id", ""),
        ("version", 0),
        ("version", True),
        ("event_id", "e-1"),
        ("schema_version", "1"),
        ("state", b"{}"),
    ],
)
def test_a_snapshot_checks_its_fields(field: str, value: object) -> None:
    """A field of the wrong type or value is refused with InvalidArgumentError naming it."""
    fields: dict[str, object] = {
        "stream_id": STREAM,
        "version": 1,
        "event_id": uuid.uuid4(),
        "schema_version": 1,
        "state": "{}",
    }
    with pytest.raises(InvalidArgumentError, match=f"Snapshot.{field} must be"):
        Snapshot(**{**fields, field: value})  # type: ignore[arg-type]


def test_a_save_after_a_load_succeeds_whatever_the_snapshot_said(
    conn: sqlite3.Connection, repo: Repository[BankAccount]
) -> None:
    """Loaded past a bad snapshot, an aggregate saves without a ConcurrencyError."""
    repo.save(BankAccount.open("a-1", "ann"))
    for _ in range(3):
        save_then_roll_back(conn, repo, 1, 2, 3)
        account = repo.get("a-1")
        account.deposit(1)
        repo.save(account)  # a ConcurrencyError here would mean the load got the version wrong
    assert (4, 3) == (repo.get("a-1").version, repo.get("a-1").balance)


# -- whatever happens, a load is a replay ------------------------------------------------------

_IDS = ("a-1", "a-2")
_AMOUNTS = st.lists(st.integers(1, 1000), min_size=1, max_size=3)
_DAMAGES = [(assignment, value) for assignment, value, _ in DAMAGES.values()] + [
    ("version = version + ?", 5),  # far ahead of the stream
    ("state = ?", '{"owner":"ann","balance":0}'),  # an attribute short
]


class SnapshotsNeverOverrule(RuleBasedStateMachine):
    """Saves, rolled-back saves, damaged snapshots and other writers, on real SQLite files.

    However snapshots and streams came apart, loading an account gives what a replay of its
    stored events gives, and an account saves after it was loaded unless another writer
    appended to its stream in between.
    """

    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp(prefix="busway-snapshots-"))
        events = self.folder / "events.db"
        self.conn = sqlite3.connect(events, isolation_level=None)
        self.snapshot_conn = sqlite3.connect(self.folder / "snapshots.db", isolation_level=None)
        for conn in (self.conn, self.snapshot_conn):
            conn.execute("PRAGMA synchronous = OFF")  # the tests are of the code, not of the disk
        self.store = SQLiteEventStore(self.conn, types=TYPES)
        self.other_writer = SQLiteEventStore(events, types=TYPES, synchronous="off")
        self.snapshots = SQLiteSnapshotStore(self.snapshot_conn)
        self.repo = Repository(self.store, BankAccount)
        self.held: dict[str, BankAccount] = {}
        """The accounts loaded or saved, as a caller keeps them to save again."""
        self.overtaken: set[str] = set()
        """The held accounts whose streams another writer appended to since."""

    @initialize(every=st.integers(1, 3))
    def snapshot_every(self, every: int) -> None:
        self.repo = Repository(
            self.store, BankAccount, snapshot_every=every, snapshots=self.snapshots
        )

    def stored(self, account_id: str) -> list[RecordedEvent]:
        return self.store.read_stream(self.repo.stream_id(account_id))

    def current(self, account_id: str) -> BankAccount:
        """Return the account to change: the one held, loaded, or a new one."""
        if account_id in self.held:
            return self.held[account_id]
        if self.stored(account_id):
            return self.repo.get(account_id)
        return BankAccount.open(account_id, "ann")

    @rule(account_id=st.sampled_from(_IDS))
    def load(self, account_id: str) -> None:
        if self.stored(account_id):
            self.held[account_id] = self.repo.get(account_id)
            self.overtaken.discard(account_id)

    @rule(account_id=st.sampled_from(_IDS), amounts=_AMOUNTS)
    def save(self, account_id: str, amounts: list[int]) -> None:
        account = self.current(account_id)
        for amount in amounts:
            account.deposit(amount)
        if account_id in self.overtaken:
            with pytest.raises(ConcurrencyError):
                self.repo.save(account)
            del self.held[account_id]
            self.overtaken.discard(account_id)
        else:
            self.repo.save(account)
            self.held[account_id] = account

    @rule(account_id=st.sampled_from(_IDS), amounts=_AMOUNTS)
    def roll_back_a_save(self, account_id: str, amounts: list[int]) -> None:
        if self.stored(account_id):
            account = self.repo.get(account_id)
        else:
            account = BankAccount.open(account_id, "bob")
        for amount in amounts:
            account.deposit(amount)
        self.conn.execute("BEGIN")
        try:
            self.repo.save(account)
        finally:
            self.conn.execute("ROLLBACK")

    @rule(account_id=st.sampled_from(_IDS), amounts=_AMOUNTS)
    def append_as_another_writer(self, account_id: str, amounts: list[int]) -> None:
        stream = self.repo.stream_id(account_id)
        events: list[object] = [Deposited(amount) for amount in amounts]
        if not self.other_writer.stream_version(stream):
            events.insert(0, Opened("zed"))
        self.other_writer.append(stream, events)
        if account_id in self.held:
            self.overtaken.add(account_id)

    @rule(account_id=st.sampled_from(_IDS), damaged=st.sampled_from(_DAMAGES))
    def damage_the_snapshot(self, account_id: str, damaged: tuple[str, object]) -> None:
        assignment, value = damaged
        self.snapshot_conn.execute(
            f"UPDATE snapshots SET {assignment} WHERE stream_id = ?",
            (value, self.repo.stream_id(account_id)),
        )

    @invariant()
    def loads_equal_a_replay(self) -> None:
        for account_id in _IDS:
            stored = self.stored(account_id)
            if stored:
                replay = BankAccount.from_history(account_id, stored)
                assert state(replay) == state(self.repo.get(account_id))

    def teardown(self) -> None:
        for closing in (self.store, self.other_writer, self.snapshots, self.conn):
            closing.close()
        self.snapshot_conn.close()
        shutil.rmtree(self.folder)


TestSnapshotsNeverOverrule = SnapshotsNeverOverrule.TestCase
TestSnapshotsNeverOverrule.settings = settings(stateful_step_count=25, deadline=None)


def _copy(source: Path, target: Path) -> None:
    """Copy one SQLite file onto another with SQLite's backup, as a restore would."""
    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
    src.close()
    dst.close()


def _version(snapshot: Snapshot | None) -> int | None:
    return None if snapshot is None else snapshot.version
