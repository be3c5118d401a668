"""Aggregates record and apply events; repositories load, save, snapshot and publish them."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest

from busway import (
    AsyncEventBus,
    CommandBus,
    ConcurrencyError,
    Event,
    EventBus,
    InvalidArgumentError,
    RegistrationError,
    SerializationError,
    StoreFormatError,
)
from busway.aggregates import (
    Aggregate,
    AggregateExistsError,
    AggregateNotFoundError,
    ApplierNotFoundError,
    AsyncRepository,
    InMemorySnapshotStore,
    Repository,
    Snapshot,
    SnapshotStore,
    SQLiteSnapshotStore,
    when,
)
from busway.errors import StoreClosedError
from busway.eventstore import (
    AsyncInMemoryEventStore,
    AsyncSQLiteEventStore,
    CattrsSerializer,
    EventTypes,
    InMemoryEventStore,
    RecordedEvent,
    SQLiteEventStore,
    make_default_converter,
)
from busway.middleware import retry
from tests.bank import (
    TYPES,
    BankAccount,
    BonusDeposited,
    Closed,
    Deposited,
    Opened,
    Unhandled,
    state,
)


@pytest.fixture
def store() -> Iterator[InMemoryEventStore]:
    with InMemoryEventStore(types=TYPES) as s:
        yield s


@pytest.fixture
def sqlite_path(tmp_path: Path) -> Path:
    return tmp_path / "bank.db"


# -- the aggregate ---------------------------------------------------------------------------


def test_record_applies_and_keeps_the_event_pending() -> None:
    """record() changes the state through @when, bumps the version and keeps the event."""
    account = BankAccount.open("a-1", "ann")
    account.deposit(10)
    assert ("ann", 10, 2) == (account.owner, account.balance, account.version)
    assert (Opened("ann"), Deposited(10)) == account.pending_events


def test_a_failing_applier_records_nothing() -> None:
    """If the @when method raises, the event is neither pending nor counted."""
    account = BankAccount.open("a-1", "ann")
    with pytest.raises(ValueError, match="positive"):
        account.deposit(-1)
    assert (1, (Opened("ann"),)) == (account.version, account.pending_events)


def test_recording_an_event_without_applier_names_the_fix() -> None:
    """An event with no @when method raises ApplierNotFoundError saying what to add."""
    account = BankAccount.open("a-1", "ann")
    with pytest.raises(ApplierNotFoundError, match=r"@when\(Unhandled\)") as info:
        account.record(Unhandled())
    assert (BankAccount, Unhandled) == (info.value.aggregate_type, info.value.event_type)
    assert isinstance(info.value, LookupError)
    assert 1 == account.version


def test_event_subclasses_use_the_base_applier() -> None:
    """An event without its own applier is applied by the one of its nearest base class."""
    account = BankAccount.open("a-1", "ann")
    account.record(BonusDeposited(5))
    assert 5 == account.balance


class SavingsAccount(BankAccount):
    """Inherits the appliers, overrides one by name and adds one for a subclass event."""

    bonus: int

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.bonus = 0

    def _opened(self, event: Opened) -> None:
        self.owner = event.owner.upper()

    @when(BonusDeposited)
    def _bonus(self, event: BonusDeposited) -> None:
        self.bonus += event.amount


def test_subclasses_inherit_and_override_appliers() -> None:
    """Appliers follow the class's MRO: inherited, overridden by name, the most specific used."""
    account = SavingsAccount.from_history("s-1", [Opened("ann"), Deposited(3), BonusDeposited(4)])
    assert ("ANN", 3, 4) == (account.owner, account.balance, account.bonus)


def test_two_appliers_for_one_event_in_one_class_are_refused() -> None:
    """Defining two @when methods for the same event in a class is an error at once."""
    with pytest.raises(RegistrationError, match="two @when methods for Opened"):

        class Twice(Aggregate):
            @when(Opened)
            def _one(self, event: Opened) -> None: ...

            @when(Opened)
            def _two(self, event: Opened) -> None: ...


def test_when_takes_a_class() -> None:
    """@when refuses something that is not a class."""
    with pytest.raises(RegistrationError, match="takes event classes"):
        when("Opened")  # type: ignore[call-overload]
    with pytest.raises(RegistrationError, match="at least one"):
        when()  # type: ignore[call-overload]


def test_when_refuses_what_cannot_be_marked() -> None:
    """@when on an object that takes no attributes says it decorates methods."""
    with pytest.raises(RegistrationError, match="decorates methods"):
        when(Opened)(len)  # type: ignore[arg-type]


def test_one_method_may_apply_several_event_types() -> None:
    """@when(A, B) marks a method for both classes."""

    class Counter(Aggregate):
        seen: int

        def __init__(self, id: str) -> None:
            super().__init__(id)
            self.seen = 0

        @when(Opened, Closed)
        def _count(self, event: Opened | Closed) -> None:
            self.seen += 1

    assert 2 == Counter.from_history("c", [Opened("x"), Closed()]).seen


def test_from_history_takes_events_or_recorded_events(store: InMemoryEventStore) -> None:
    """from_history rebuilds the state with nothing pending, from plain or recorded events."""
    store.append("s", [Opened("ann"), Deposited(7)])
    plain = BankAccount.from_history("a-1", [Opened("ann"), Deposited(7)])
    recorded = BankAccount.from_history("a-1", store.read_stream("s"))
    assert state(plain) == state(recorded)
    assert ((), 2, 7) == (plain.pending_events, plain.version, plain.balance)


def test_an_aggregate_needs_an_id() -> None:
    """An empty or non-string id is refused."""
    with pytest.raises(InvalidArgumentError):
        BankAccount("")


def test_repr_names_class_id_and_version() -> None:
    """The repr shows what the aggregate is and how far it got."""
    assert "<BankAccount 'a-1' version 1>" == repr(BankAccount.open("a-1", "ann"))


# -- the repository --------------------------------------------------------------------------


def test_save_then_get_gives_the_same_state(store: InMemoryEventStore) -> None:
    """A saved aggregate loads back equal, with nothing pending."""
    repo = Repository(store, BankAccount)
    account = BankAccount.open("a-1", "ann")
    account.deposit(5)
    assert 2 == repo.save(account)
    assert () == account.pending_events
    loaded = repo.get("a-1")
    assert state(account) == state(loaded)
    assert () == loaded.pending_events


def test_streams_are_named_after_the_class(store: InMemoryEventStore) -> None:
    """The default prefix is the class name in kebab case; another may be given."""
    assert "bank-account-a-1" == Repository(store, BankAccount).stream_id("a-1")
    assert "acct/a-1" == Repository(store, BankAccount, stream_prefix="acct/").stream_id("a-1")
    repo = Repository(store, BankAccount, stream_prefix="acct/")
    repo.save(BankAccount.open("a-1", "ann"))
    assert 1 == store.stream_version("acct/a-1")
    assert "acct/" in repr(repo)


def test_get_of_a_missing_aggregate_raises_not_found(store: InMemoryEventStore) -> None:
    """An id with no events raises AggregateNotFoundError, a LookupError, naming the stream."""
    with pytest.raises(AggregateNotFoundError, match="no BankAccount with id 'nope'") as info:
        Repository(store, BankAccount).get("nope")
    assert ("nope", "bank-account-nope") == (info.value.aggregate_id, info.value.stream_id)
    assert isinstance(info.value, LookupError)


def test_saving_nothing_writes_nothing(store: InMemoryEventStore) -> None:
    """An aggregate with no pending events is saved without touching the store."""
    repo = Repository(store, BankAccount)
    repo.save(BankAccount.open("a-1", "ann"))
    loaded = repo.get("a-1")
    store.close()  # any store call would now fail
    assert 1 == repo.save(loaded)


def test_save_expects_the_loaded_version(store: InMemoryEventStore) -> None:
    """A stale aggregate's save raises ConcurrencyError, writes nothing, keeps its events."""
    repo = Repository(store, BankAccount)
    repo.save(BankAccount.open("a-1", "ann"))
    first, second = repo.get("a-1"), repo.get("a-1")
    first.deposit(1)
    repo.save(first)
    second.deposit(2)
    with pytest.raises(ConcurrencyError) as info:
        repo.save(second)
    assert (1, 2) == (info.value.expected, info.value.actual)
    assert (Deposited(2),) == second.pending_events
    assert 1 == repo.get("a-1").balance


def test_creating_an_existing_aggregate_says_the_id_is_taken(store: InMemoryEventStore) -> None:
    """A new aggregate's id in use raises AggregateExistsError, a ConcurrencyError, not a retry."""
    repo = Repository(store, BankAccount)
    repo.save(BankAccount.open("a-1", "ann"))
    with pytest.raises(AggregateExistsError, match="id 'a-1' is taken") as info:
        repo.save(BankAccount.open("a-1", "bob"))
    error = info.value
    assert isinstance(error, ConcurrencyError)
    assert (BankAccount, "a-1", "bank-account-a-1") == (
        error.aggregate_type,
        error.aggregate_id,
        error.stream_id,
    )
    assert (0, 1) == (error.expected, error.actual)
    assert "repository.get('a-1')" in str(error)
    assert "Reload the stream and retry" not in str(error)
    assert "ann" == repo.get("a-1").owner


@pytest.mark.parametrize("bad", ["", 3, None])
def test_an_aggregate_id_must_be_a_non_empty_str(store: InMemoryEventStore, bad: object) -> None:
    """get() of an empty or non-str id is an InvalidArgumentError, not a missing aggregate."""
    repo = Repository(store, BankAccount)
    with pytest.raises(InvalidArgumentError, match="aggregate_id must be a non-empty str"):
        repo.get(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError):
        repo.stream_id(bad)  # type: ignore[arg-type]

    async def get() -> None:
        async with AsyncInMemoryEventStore(types=TYPES) as async_store:
            await AsyncRepository(async_store, BankAccount).get(bad)  # type: ignore[arg-type]

    with pytest.raises(InvalidArgumentError):
        asyncio.run(get())


def test_the_repository_checks_its_arguments(store: InMemoryEventStore) -> None:
    """A non-aggregate class, a foreign aggregate and bad snapshot options are refused."""
    with pytest.raises(RegistrationError, match="Aggregate subclasses"):
        Repository(store, int)  # type: ignore[type-var]
    with pytest.raises(InvalidArgumentError, match="snapshot_every"):
        Repository(store, BankAccount, snapshot_every=0)
    with pytest.raises(InvalidArgumentError, match="snapshots= is given"):
        Repository(store, BankAccount, snapshots=InMemorySnapshotStore())
    with pytest.raises(InvalidArgumentError, match="stream_prefix"):
        Repository(store, BankAccount, stream_prefix=3)  # type: ignore[arg-type]
    repo: Repository[Any] = Repository(store, SavingsAccount)
    with pytest.raises(InvalidArgumentError, match="SavingsAccount"):
        repo.save(BankAccount.open("a-1", "ann"))


def test_the_sync_repository_refuses_an_async_event_bus(store: InMemoryEventStore) -> None:
    """A bus whose publish must be awaited, or no bus at all, is refused at construction."""
    with pytest.raises(RegistrationError, match="it needs an AsyncRepository"):
        Repository(store, BankAccount, event_bus=AsyncEventBus())  # type: ignore[arg-type]
    with pytest.raises(RegistrationError, match="takes AsyncEventBus or EventBus"):
        AsyncRepository(AsyncInMemoryEventStore(types=TYPES), BankAccount, event_bus="bus")  # type: ignore[arg-type]


def test_concurrent_writers_on_threads_get_a_concurrency_error(sqlite_path: Path) -> None:
    """Of two threads that load the same version and save, exactly one fails."""
    with SQLiteEventStore(sqlite_path, types=TYPES) as store:
        repo = Repository(store, BankAccount)
        repo.save(BankAccount.open("a-1", "ann"))
        both_loaded = threading.Barrier(2, timeout=10)
        outcomes: list[str] = []

        def deposit(amount: int) -> None:
            account = repo.get("a-1")
            both_loaded.wait()
            account.deposit(amount)
            try:
                repo.save(account)
            except ConcurrencyError:
                outcomes.append("conflict")
            else:
                outcomes.append("saved")

        threads = [threading.Thread(target=deposit, args=(n,)) for n in (10, 20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert ["conflict", "saved"] == sorted(outcomes)
        assert 2 == store.stream_version("bank-account-a-1")


@attrs.frozen
class Deposit:
    account_id: str
    amount: int


def test_the_retry_middleware_runs_the_losing_command_again(sqlite_path: Path) -> None:
    """With retry(on=ConcurrencyError), both concurrent commands succeed; one ran twice."""
    with SQLiteEventStore(sqlite_path, types=TYPES) as store:
        repo = Repository(store, BankAccount)
        repo.save(BankAccount.open("a-1", "ann"))
        both_loaded = threading.Barrier(2, timeout=10)
        calls: list[int] = []
        local = threading.local()

        def handle(command: Deposit) -> None:
            calls.append(command.amount)
            account = repo.get(command.account_id)
            if not getattr(local, "waited", False):
                local.waited = True
                both_loaded.wait()
            account.deposit(command.amount)
            repo.save(account)

        bus = CommandBus()
        bus.register(Deposit, handle)
        bus.use(retry(on=(ConcurrencyError,), attempts=3, backoff=0))
        threads = [
            threading.Thread(target=bus.execute, args=(Deposit("a-1", n),)) for n in (10, 20)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert 3 == len(calls)
        assert (30, 3) == (repo.get("a-1").balance, store.stream_version("bank-account-a-1"))


# -- snapshots -------------------------------------------------------------------------------


class CountingStore:
    """Wraps a store to record which versions streams are read from."""

    def __init__(self, store: InMemoryEventStore) -> None:
        self.store = store
        self.types = store.types
        self.reads: list[int | None] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def read_stream(self, stream_id: str, **kwargs: Any) -> list[RecordedEvent]:
        self.reads.append(kwargs.get("from_version"))
        return self.store.read_stream(stream_id, **kwargs)


def test_snapshots_are_taken_every_n_events_and_used_on_load(
    store: InMemoryEventStore,
) -> None:
    """With snapshot_every=3, loading reads the stream from the latest snapshot's version on."""
    counting = CountingStore(store)
    snapshots = InMemorySnapshotStore()
    repo = Repository(counting, BankAccount, snapshot_every=3, snapshots=snapshots)
    account = BankAccount.open("a-1", "ann")
    account.deposit(1)
    repo.save(account)  # version 2: no snapshot yet
    assert None is snapshots.load("bank-account-a-1")
    for amount in (2, 3, 4):
        account.deposit(amount)
    repo.save(account)  # version 5: crossed 3
    snapshot = snapshots.load("bank-account-a-1")
    assert snapshot is not None
    assert 5 == snapshot.version
    account.deposit(5)
    repo.save(account)  # version 6: a multiple of 3
    account.deposit(6)
    repo.save(account)  # version 7: none
    assert 6 == snapshots.load("bank-account-a-1").version  # type: ignore[union-attr]
    loaded = repo.get("a-1")
    assert [6] == counting.reads[-1:]  # the snapshot's own event vouches for it
    assert state(BankAccount.from_history("a-1", store.read_stream("bank-account-a-1"))) == state(
        loaded
    )


def test_snapshot_every_alone_keeps_snapshots_in_memory(store: InMemoryEventStore) -> None:
    """snapshot_every without a store uses an InMemorySnapshotStore."""
    repo = Repository(store, BankAccount, snapshot_every=1)
    repo.save(BankAccount.open("a-1", "ann"))
    assert isinstance(repo.snapshots, InMemorySnapshotStore)
    assert isinstance(repo.snapshots, SnapshotStore)
    assert 1 == repo.snapshots.load("bank-account-a-1").version  # type: ignore[union-attr]


def test_a_snapshot_of_another_schema_version_is_ignored(
    store: InMemoryEventStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Raising snapshot_version makes loads replay every event instead of misreading."""
    repo = Repository(store, BankAccount, snapshot_every=1)
    account = BankAccount.open("a-1", "ann")
    account.deposit(4)
    repo.save(account)
    assert repo.snapshots is not None
    kept = repo.snapshots.load("bank-account-a-1")
    assert kept is not None
    repo.snapshots.save(attrs.evolve(kept, state='{"balance": "garbage"}'))
    monkeypatch.setattr(BankAccount, "snapshot_version", 2)
    assert 4 == repo.get("a-1").balance


class Unannotated(Aggregate):
    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.count = 0

    @when(Opened)
    def _opened(self, event: Opened) -> None:
        self.count += 1


def test_an_unannotated_attribute_fails_the_save_before_writing(
    store: InMemoryEventStore,
) -> None:
    """A snapshot would lose an unannotated attribute, so the save raises and writes nothing."""
    repo = Repository(store, Unannotated, snapshot_every=1)
    aggregate = Unannotated("u-1")
    aggregate.record(Opened("x"))
    with pytest.raises(SerializationError, match=r"annotate them.*count: int"):
        repo.save(aggregate)
    assert 0 == store.stream_version("unannotated-u-1")


class Unserializable(Aggregate):
    lock: threading.Lock

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.lock = threading.Lock()

    @when(Opened)
    def _opened(self, event: Opened) -> None:
        pass


def test_state_the_converter_cannot_encode_fails_the_save(store: InMemoryEventStore) -> None:
    """A state attribute cattrs cannot turn into JSON raises SerializationError naming it."""
    repo = Repository(store, Unserializable, snapshot_every=1)
    aggregate = Unserializable("u-1")
    aggregate.record(Opened("x"))
    with pytest.raises(SerializationError) as info:
        repo.save(aggregate)
    assert "lock" in str(info.value)
    assert 0 == store.stream_version("unserializable-u-1")


class Unresolvable(Aggregate):
    thing: NoSuchType  # type: ignore[name-defined]  # noqa: F821

    @when(Opened)
    def _opened(self, event: Opened) -> None:
        pass


def test_annotations_that_do_not_resolve_are_reported(store: InMemoryEventStore) -> None:
    """A snapshot needs each attribute's type; a name that does not resolve says so."""
    repo = Repository(store, Unresolvable, snapshot_every=1)
    aggregate = Unresolvable("u-1")
    aggregate.record(Opened("x"))
    with pytest.raises(SerializationError, match="cannot be resolved"):
        repo.save(aggregate)


class Lazy(Aggregate):
    """Sets an annotated attribute only once something happened."""

    owner: str

    @when(Opened)
    def _opened(self, event: Opened) -> None:
        pass


def test_an_annotated_attribute_never_set_fails_the_save(store: InMemoryEventStore) -> None:
    """A snapshot without an attribute would look lost, so the save raises and writes nothing."""
    repo = Repository(store, Lazy, snapshot_every=1)
    aggregate = Lazy("l-1")
    aggregate.record(Opened("x"))
    with pytest.raises(SerializationError, match=r"never set \(owner\).*self.owner = "):
        repo.save(aggregate)
    assert 0 == store.stream_version("lazy-l-1")


class Secret:
    """A value the store's converter is told never to write."""


class Guarded(Aggregate):
    secret: Secret

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.secret = Secret()

    @when(Opened)
    def _opened(self, event: Opened) -> None:
        pass


def test_snapshots_use_the_store_converter_and_report_its_failures() -> None:
    """The state goes through the store's cattrs converter; a hook that raises names the field."""
    converter = make_default_converter()

    def refuse(value: Secret) -> object:
        raise TypeError("secrets stay in memory")

    converter.register_unstructure_hook(Secret, refuse)
    types = EventTypes(Opened, serializer=CattrsSerializer(converter))
    with InMemoryEventStore(types=types) as store:
        repo = Repository(store, Guarded, snapshot_every=1)
        aggregate = Guarded("g-1")
        aggregate.record(Opened("x"))
        with pytest.raises(SerializationError, match="secrets stay in memory") as info:
            repo.save(aggregate)
        assert "secret" == info.value.field


class FailingSnapshots:
    """A snapshot store whose disk is full: it keeps nothing."""

    def load(self, stream_id: str) -> Snapshot | None:
        return None

    def save(self, snapshot: Snapshot) -> None:
        raise OSError("disk full")

    def close(self) -> None:
        pass


class UnreadableSnapshots(FailingSnapshots):
    """A snapshot store whose disk cannot be read."""

    def load(self, stream_id: str) -> Snapshot | None:
        raise OSError("I/O error")


def test_a_failed_snapshot_write_does_not_fail_the_save(
    store: InMemoryEventStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Snapshots are a cache: a write that fails is logged, and the save succeeds."""
    repo = Repository(store, BankAccount, snapshot_every=1, snapshots=FailingSnapshots())
    with caplog.at_level(logging.WARNING, logger="busway.aggregates"):
        assert 1 == repo.save(BankAccount.open("a-1", "ann"))
    assert "could not save the snapshot of 'bank-account-a-1'" in caplog.text
    assert "ann" == repo.get("a-1").owner


def test_a_failed_snapshot_read_does_not_fail_the_load(
    store: InMemoryEventStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Snapshots are a cache: a read that fails is logged, and the load replays the events."""
    repo = Repository(store, BankAccount, snapshot_every=1, snapshots=UnreadableSnapshots())
    repo.save(BankAccount.open("a-1", "ann"))
    with caplog.at_level(logging.WARNING, logger="busway.aggregates"):
        assert "ann" == repo.get("a-1").owner
    assert "could not load the snapshot of 'bank-account-a-1'" in caplog.text
    assert "OSError: I/O error" in caplog.text


def test_sqlite_snapshots_survive_reopening(sqlite_path: Path) -> None:
    """Snapshots kept in SQLite, in the event store's file, are used by a new repository."""
    with SQLiteEventStore(sqlite_path, types=TYPES) as store:
        with SQLiteSnapshotStore(sqlite_path) as snapshots:
            repo = Repository(store, BankAccount, snapshot_every=2, snapshots=snapshots)
            account = BankAccount.open("a-1", "ann")
            account.deposit(3)
            repo.save(account)
        with SQLiteSnapshotStore(sqlite_path) as snapshots:
            kept = snapshots.load("bank-account-a-1")
            assert kept is not None
            assert (2, {"owner": "ann", "balance": 3, "history": [3]}) == (
                kept.version,
                __import__("json").loads(kept.state),
            )
            repo = Repository(store, BankAccount, snapshot_every=2, snapshots=snapshots)
            assert state(account) == state(repo.get("a-1"))


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_snapshot_stores_keep_the_latest_version(kind: str, sqlite_path: Path) -> None:
    """An older snapshot never replaces a newer one."""
    snapshots: InMemorySnapshotStore | SQLiteSnapshotStore = (
        InMemorySnapshotStore() if kind == "memory" else SQLiteSnapshotStore(sqlite_path)
    )
    with snapshots:
        latest = Snapshot("s", 5, uuid.uuid4(), 1, "{}")
        snapshots.save(latest)
        snapshots.save(Snapshot("s", 3, uuid.uuid4(), 1, '{"old": true}'))
        assert latest == snapshots.load("s")
        snapshots.save(Snapshot("s", 6, uuid.uuid4(), 1, '{"new": true}'))
        assert 6 == snapshots.load("s").version  # type: ignore[union-attr]
        assert "Store" in repr(snapshots)
    with pytest.raises(StoreClosedError):
        snapshots.load("s")
    snapshots.close()  # twice is harmless


def test_sqlite_snapshot_store_refuses_a_foreign_table(sqlite_path: Path) -> None:
    """A table of the same name with other columns is not taken over."""
    with sqlite3.connect(sqlite_path) as conn:
        conn.execute("CREATE TABLE snapshots (id INTEGER)")
    conn.close()
    with pytest.raises(StoreFormatError, match="has columns id"):
        SQLiteSnapshotStore(sqlite_path)


def test_sqlite_snapshot_store_checks_the_table_name(sqlite_path: Path) -> None:
    """Table names are identifiers, never pieces of SQL."""
    with pytest.raises(InvalidArgumentError, match="table"):
        SQLiteSnapshotStore(sqlite_path, table="x; DROP TABLE events")


def test_sqlite_snapshot_store_uses_a_given_connection(sqlite_path: Path) -> None:
    """Given a connection, the store uses it and leaves it open."""
    conn = sqlite3.connect(sqlite_path, isolation_level=None)
    try:
        with SQLiteSnapshotStore(conn, table="snaps") as snapshots:
            snapshots.save(Snapshot("s", 1, uuid.uuid4(), 1, "{}"))
        assert [("s",)] == conn.execute("SELECT stream_id FROM snaps").fetchall()
    finally:
        conn.close()


# -- publishing ------------------------------------------------------------------------------


def test_saved_events_are_published_after_the_append(store: InMemoryEventStore) -> None:
    """The event bus gets the saved events, in order, once they are stored."""
    bus = EventBus()
    seen: list[tuple[object, int]] = []
    bus.subscribe(Event, lambda e: seen.append((e, store.stream_version("bank-account-a-1"))))
    repo = Repository(store, BankAccount, event_bus=bus)
    account = BankAccount.open("a-1", "ann")
    account.deposit(2)
    repo.save(account)
    assert [(Opened("ann"), 2), (Deposited(2), 2)] == seen


def test_nothing_is_published_when_the_save_fails(store: InMemoryEventStore) -> None:
    """A save that raises ConcurrencyError publishes nothing."""
    bus = EventBus()
    seen: list[object] = []
    bus.subscribe(Event, seen.append)
    repo = Repository(store, BankAccount, event_bus=bus)
    store.append("bank-account-a-1", [Opened("zed")])
    with pytest.raises(ConcurrencyError):
        repo.save(BankAccount.open("a-1", "ann"))
    assert [] == seen


@attrs.frozen
class Published:
    """An event bus and what it published so far."""

    bus: EventBus
    seen: list[object]


@pytest.fixture
def published() -> Published:
    bus = EventBus()
    seen: list[object] = []
    bus.subscribe(Event, seen.append)
    return Published(bus, seen)


@pytest.fixture
def conn(sqlite_path: Path) -> Iterator[sqlite3.Connection]:
    """A connection the test holds, to begin and end transactions on."""
    conn = sqlite3.connect(sqlite_path, isolation_level=None)
    yield conn
    conn.close()


def test_a_save_publishes_at_once_even_in_the_callers_transaction(
    conn: sqlite3.Connection, published: Published
) -> None:
    """By default a save publishes when it appends: a rollback after it cannot take that back."""
    with SQLiteEventStore(conn, types=TYPES) as store:
        repo = Repository(store, BankAccount, event_bus=published.bus)
        conn.execute("BEGIN")
        repo.save(BankAccount.open("a-1", "ann"))
        conn.execute("ROLLBACK")
        assert ([Opened("ann")], 0) == (published.seen, store.stream_version("bank-account-a-1"))


@pytest.mark.parametrize("commit", [True, False], ids=["commit", "rollback"])
def test_publish_false_lets_the_caller_publish_after_its_commit(
    conn: sqlite3.Connection, published: Published, commit: bool
) -> None:
    """save(publish=False) publishes nothing; the caller publishes the events once committed."""
    with SQLiteEventStore(conn, types=TYPES) as store:
        repo = Repository(store, BankAccount, event_bus=published.bus, snapshot_every=1)
        account = BankAccount.open("a-1", "ann")
        account.deposit(4)
        to_publish = account.pending_events
        conn.execute("BEGIN")
        assert 2 == repo.save(account, publish=False)
        assert [] == published.seen
        conn.execute("COMMIT" if commit else "ROLLBACK")
        if commit:
            published.bus.publish_all(to_publish)
        assert ([Opened("ann"), Deposited(4)] if commit else []) == published.seen
        assert (2 if commit else 0) == store.stream_version("bank-account-a-1")


def test_publish_false_holds_for_the_async_repository() -> None:
    """AsyncRepository.save(publish=False) saves the events and publishes none."""

    async def main() -> tuple[list[object], int]:
        bus = AsyncEventBus()
        seen: list[object] = []

        async def record(event: Event) -> None:
            seen.append(event)

        bus.subscribe(Event, record)
        async with AsyncInMemoryEventStore(types=TYPES) as store:
            repo = AsyncRepository(store, BankAccount, event_bus=bus)
            version = await repo.save(BankAccount.open("a-1", "ann"), publish=False)
            return seen, version

    assert ([], 1) == asyncio.run(main())


def test_publish_takes_a_bool(store: InMemoryEventStore) -> None:
    """publish= is True or False; anything else is refused before anything is written."""
    repo = Repository(store, BankAccount)
    with pytest.raises(InvalidArgumentError, match="publish must be True or False"):
        repo.save(BankAccount.open("a-1", "ann"), publish="no")  # type: ignore[arg-type]
    assert 0 == store.stream_version("bank-account-a-1")


# -- async -----------------------------------------------------------------------------------


def test_async_repository_loads_saves_snapshots_and_publishes(sqlite_path: Path) -> None:
    """AsyncRepository keeps the same promises over an async store and an async bus."""

    async def main() -> None:
        bus = AsyncEventBus()
        seen: list[object] = []

        async def record(event: Event) -> None:
            seen.append(event)

        bus.subscribe(Event, record)
        async with AsyncSQLiteEventStore(sqlite_path, types=TYPES) as store:
            with SQLiteSnapshotStore(sqlite_path) as snapshots:
                repo = AsyncRepository(
                    store, BankAccount, snapshot_every=2, snapshots=snapshots, event_bus=bus
                )
                account = BankAccount.open("a-1", "ann")
                account.deposit(6)
                assert 2 == await repo.save(account)
                loaded = await repo.get("a-1")
                assert state(account) == state(loaded)
                assert 2 == snapshots.load("bank-account-a-1").version  # type: ignore[union-attr]
                stale = await repo.get("a-1")
                loaded.deposit(1)
                await repo.save(loaded)
                stale.deposit(2)
                with pytest.raises(ConcurrencyError):
                    await repo.save(stale)
                with pytest.raises(AggregateNotFoundError):
                    await repo.get("nope")
        assert [Opened("ann"), Deposited(6), Deposited(1)] == seen

    asyncio.run(main())


def test_async_repository_takes_a_sync_bus_and_logs_failed_snapshots(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A plain EventBus works from AsyncRepository; a failed snapshot write is only logged."""

    async def main() -> list[object]:
        bus = EventBus()
        seen: list[object] = []
        bus.subscribe(Event, seen.append)
        async with AsyncInMemoryEventStore(types=TYPES) as store:
            repo = AsyncRepository(
                store, BankAccount, snapshot_every=1, snapshots=FailingSnapshots(), event_bus=bus
            )
            await repo.save(BankAccount.open("a-1", "ann"))
            assert "ann" == (await repo.get("a-1")).owner
        return seen

    with caplog.at_level(logging.WARNING, logger="busway.aggregates"):
        assert [Opened("ann")] == asyncio.run(main())
    assert "could not save the snapshot" in caplog.text


class _Marker:
    """Keeps ClassVar-annotated attributes out of snapshots."""

    kind: ClassVar[str] = "x"


class WithClassVar(Aggregate, _Marker):
    label: str

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.label = ""

    @when(Opened)
    def _opened(self, event: Opened) -> None:
        self.label = event.owner


def test_class_variables_are_not_snapshotted(store: InMemoryEventStore) -> None:
    """Only instance state is kept: ClassVar annotations are left out."""
    repo = Repository(store, WithClassVar, snapshot_every=1)
    aggregate = WithClassVar("w-1")
    aggregate.record(Opened("hi"))
    repo.save(aggregate)
    assert repo.snapshots is not None
    assert '{"label":"hi"}' == repo.snapshots.load("with-class-var-w-1").state  # type: ignore[union-attr]
