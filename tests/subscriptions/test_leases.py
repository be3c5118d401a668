"""Leases with fencing tokens: the shipped contract, a model of many workers, many processes."""

from __future__ import annotations

import itertools
import multiprocessing
import sqlite3
import tempfile
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import attrs
import hypothesis.strategies as st
import pytest
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from busway.clock import FakeClock
from busway.errors import InvalidArgumentError, StoreFormatError
from busway.subscriptions import InMemoryLeaseStore, Lease, LeaseStore, SQLiteLeaseStore
from busway.testing import LeaseStoreContract

from ._lease_worker import NAME, Taking, take_turns

SPAWN = multiprocessing.get_context("spawn")
T0 = datetime(2000, 1, 1, tzinfo=UTC)


class TestInMemoryLeaseStore(LeaseStoreContract):
    @pytest.fixture
    def store(self, clock: FakeClock) -> Iterator[LeaseStore]:
        with InMemoryLeaseStore(clock=clock) as store:
            yield store


class TestSQLiteLeaseStore(LeaseStoreContract):
    @pytest.fixture
    def store(self, clock: FakeClock, tmp_path: Path) -> Iterator[LeaseStore]:
        with SQLiteLeaseStore(tmp_path / "leases.db", clock=clock) as store:
            yield store

    def open_another(self, store: LeaseStore, clock: FakeClock) -> LeaseStore:
        assert isinstance(store, SQLiteLeaseStore)
        assert store.path is not None
        return SQLiteLeaseStore(store.path, clock=clock)


class TestSQLiteLeaseStoreOnAGivenConnection(LeaseStoreContract):
    @pytest.fixture
    def store(self, clock: FakeClock, tmp_path: Path) -> Iterator[LeaseStore]:
        conn = sqlite3.connect(tmp_path / "app.db", isolation_level=None, check_same_thread=False)
        try:
            with SQLiteLeaseStore(conn, table="given", clock=clock) as store:
                yield store
        finally:
            conn.close()


# -- the lease itself --------------------------------------------------------------------------


def test_a_lease_expires_at_its_expiry() -> None:
    """A lease holds up to the microsecond before expires_at, in any time zone given."""
    lease = Lease("orders", "w-1", 1, T0)
    assert not lease.expired(T0 - timedelta(microseconds=1))
    assert lease.expired(T0)
    assert lease.expired(T0.astimezone(timezone(timedelta(hours=-5))))


def test_a_naive_moment_is_refused() -> None:
    """expired() needs an aware datetime: a naive one cannot be compared with the expiry."""
    with pytest.raises(InvalidArgumentError, match="now"):
        Lease("orders", "w-1", 1, T0).expired(datetime(2000, 1, 1))


def open_store(kind: str, tmp_path: Path, **options: Any) -> InMemoryLeaseStore | SQLiteLeaseStore:
    if kind == "memory":
        return InMemoryLeaseStore(**options)
    return SQLiteLeaseStore(tmp_path / "leases.db", **options)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_clock_must_be_a_clock(kind: str, tmp_path: Path) -> None:
    """Both stores refuse a clock= that cannot tell the time."""
    with pytest.raises(InvalidArgumentError, match="clock"):
        open_store(kind, tmp_path, clock=datetime.now)


class NaiveClock:
    def now(self) -> datetime:
        return datetime(2000, 1, 1)  # naive: the mistake under test


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_a_clock_without_a_time_zone_is_refused(kind: str, tmp_path: Path) -> None:
    """A clock that tells naive times cannot judge expiry: acquire() raises, stores nothing."""
    with open_store(kind, tmp_path, clock=NaiveClock()) as store:
        with pytest.raises(InvalidArgumentError, match="an aware datetime"):
            store.acquire("orders", "w-1", ttl=5)
        assert [] == store.leases()


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
def test_the_system_clock_by_default(kind: str, tmp_path: Path) -> None:
    """Without a clock, expiry is judged by the system's: a lease runs from now for ttl."""
    with open_store(kind, tmp_path) as store:
        before = datetime.now(UTC)
        lease = store.acquire("orders", "w-1", ttl=60)
        after = datetime.now(UTC)
        assert lease is not None
        assert before + timedelta(seconds=60) <= lease.expires_at <= after + timedelta(seconds=60)
        assert "LeaseStore" in repr(store)
    assert "closed" in repr(store)


# -- the SQLite store's file -------------------------------------------------------------------


def rows(path: Path, table: str = "subscription_leases") -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(f"SELECT * FROM {table} ORDER BY name").fetchall()


def test_leases_outlive_the_store_that_took_them(tmp_path: Path) -> None:
    """Another store on the file, later, sees the lease and goes on from its token."""
    path, clock = tmp_path / "leases.db", FakeClock()
    with SQLiteLeaseStore(path, clock=clock) as store:
        first = store.acquire("orders", "w-1", ttl=5)
    with SQLiteLeaseStore(path, clock=clock) as store:
        assert first == store.holder("orders")
        assert store.acquire("orders", "w-2", ttl=5) is None
        clock.advance(5)
        taken = store.acquire("orders", "w-2", ttl=5)
    assert taken is not None
    assert 2 == taken.token


def test_expiry_is_stored_in_microseconds_since_1970(tmp_path: Path) -> None:
    """A row holds name, owner, token and the expiry as whole microseconds in UTC."""
    path = tmp_path / "leases.db"
    with SQLiteLeaseStore(path, clock=FakeClock(T0)) as store:
        store.acquire("orders", "w-1", ttl=1.5)
    micros = (T0 - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) + 1_500_000
    assert [("orders", "w-1", 1, micros)] == rows(path)


@pytest.mark.parametrize(
    ("column", "value", "says"),
    [
        ("name", b"orders", "as the name of a lease"),
        ("owner", "", "as the owner of lease 'orders'"),
        ("owner", b"w", "as the owner of lease 'orders'"),
        ("token", 0, "as the fencing token of lease 'orders'"),
        ("token", "one", "as the fencing token of lease 'orders'"),
        ("token", 1.5, "as the fencing token of lease 'orders'"),
        ("expires_at", "soon", "as the expiry of lease 'orders'"),
        ("expires_at", 2**62, "as the expiry of lease 'orders'"),
    ],
)
def test_a_damaged_row_is_refused(tmp_path: Path, column: str, value: object, says: str) -> None:
    """A value no busway store writes raises StoreFormatError naming the table and the lease."""
    path = tmp_path / "leases.db"
    with SQLiteLeaseStore(path, clock=FakeClock()) as store:
        lease = store.acquire("orders", "w-1", ttl=5)
        assert lease is not None
        with closing(sqlite3.connect(path)) as conn, conn:
            conn.execute(f"UPDATE subscription_leases SET {column} = ?", (value,))
        calls: list[Callable[[], object]] = [store.leases]
        if column != "name":
            calls += [
                lambda: store.holder("orders"),
                lambda: store.acquire("orders", "w-2", ttl=5),
                lambda: store.renew(lease, ttl=5),
            ]
        for call in calls:
            with pytest.raises(StoreFormatError, match="table 'subscription_leases' holds") as info:
                call()
            assert says in str(info.value)
            assert "UPDATE subscription_leases" in str(info.value) or column == "name"


def test_a_table_of_another_shape_is_refused(tmp_path: Path) -> None:
    """A table of the store's name with other columns is left as it was."""
    path = tmp_path / "app.db"
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("CREATE TABLE subscription_leases (name TEXT, holder TEXT)")
    with pytest.raises(StoreFormatError, match="columns name, holder"):
        SQLiteLeaseStore(path)
    assert [] == rows(path)


def test_a_table_name_must_be_an_identifier(tmp_path: Path) -> None:
    """table= goes into SQL, so only plain identifiers are taken."""
    with pytest.raises(InvalidArgumentError, match="table"):
        SQLiteLeaseStore(tmp_path / "leases.db", table="leases; DROP TABLE x")


# -- a model of many workers -------------------------------------------------------------------

WORKERS = ("w-0", "w-1", "w-2")
NAMES = ("orders", "orders#1/2")
_workers = st.sampled_from(WORKERS)
_names = st.sampled_from(NAMES)
_ttls = st.sampled_from([0.5, 1, 2.25, 5])


def same_taking(one: Lease | None, other: Lease | None) -> bool:
    """Tell whether two leases come from one taking of a name: nobody took it in between."""
    return (
        one is not None
        and other is not None
        and (one.name, one.owner, one.token) == (other.name, other.owner, other.token)
    )


class Workers(RuleBasedStateMachine):
    """Workers acquire, renew, release, stall and steal leases; a model says what must happen.

    Each worker keeps the lease it was last handed on each name, as a runner does, but may
    also renew or release any older copy it was handed. At every step, at most one worker
    holds an unexpired lease on a name, each taking has the token after the last, and a
    renewal succeeds exactly when nobody has taken the name since.
    """

    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.stores = self.open()
        self.model: dict[str, Lease] = {}
        self.kept: dict[tuple[str, str], Lease] = {}
        self.handed: list[Lease] = []

    def open(self) -> list[LeaseStore]:
        """Return the store each worker uses, by its index in WORKERS."""
        raise NotImplementedError

    def store(self, worker: str) -> LeaseStore:
        return self.stores[WORKERS.index(worker) % len(self.stores)]

    def teardown(self) -> None:
        for store in self.stores:
            store.close()

    def expiry(self, ttl: float) -> datetime:
        return self.clock.now() + timedelta(seconds=ttl)

    def hand_out(self, lease: Lease) -> None:
        """Record that the store handed *lease* to its owner, who keeps it from now on."""
        self.model[lease.name] = self.kept[lease.owner, lease.name] = lease
        self.handed.append(lease)

    @rule(worker=_workers, name=_names, ttl=_ttls)
    def acquire(self, worker: str, name: str, ttl: float) -> None:
        last, now = self.model.get(name), self.clock.now()
        expected: Lease | None
        if last is None or last.expired(now):
            expected = Lease(name, worker, 1 if last is None else last.token + 1, self.expiry(ttl))
        elif last.owner == worker:
            expected = attrs.evolve(last, expires_at=self.expiry(ttl))
        else:
            expected = None
        got = self.store(worker).acquire(name, worker, ttl=ttl)
        assert expected == got
        if got is not None:
            self.hand_out(got)

    @precondition(lambda self: self.handed)
    @rule(data=st.data(), ttl=_ttls)
    def renew(self, data: st.DataObject, ttl: float) -> None:
        lease = data.draw(st.sampled_from(self.handed))
        still = same_taking(lease, self.model[lease.name])
        got = self.store(lease.owner).renew(lease, ttl=ttl)
        assert still == (got is not None)
        if got is not None:
            assert attrs.evolve(lease, expires_at=self.expiry(ttl)) == got
            self.hand_out(got)
        elif same_taking(lease, self.kept.get((lease.owner, lease.name))):
            del self.kept[lease.owner, lease.name]  # lost: its worker stands by

    @precondition(lambda self: self.handed)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        lease = data.draw(st.sampled_from(self.handed))
        last, now = self.model[lease.name], self.clock.now()
        expected = same_taking(lease, last) and not last.expired(now)
        assert expected == self.store(lease.owner).release(lease)
        if expected:  # its worker keeps the lease as released: it may renew it yet
            self.hand_out(attrs.evolve(last, expires_at=now))

    @rule(seconds=st.sampled_from([0.1, 0.5, 1, 3]))
    def wait(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def stall(self) -> None:
        """Every worker stops renewing for longer than any lease lasts: all are lost."""
        self.clock.advance(6)

    @precondition(
        lambda self: any(not lease.expired(self.clock.now()) for lease in self.model.values())
    )
    @rule(data=st.data())
    def steal(self, data: st.DataObject) -> None:
        """Another worker waits exactly for a held lease to expire, and takes it over."""
        now = self.clock.now()
        held = sorted(name for name, lease in self.model.items() if not lease.expired(now))
        name = data.draw(st.sampled_from(held))
        victim = self.model[name]
        thief = data.draw(st.sampled_from([w for w in WORKERS if w != victim.owner]))
        self.clock.set(victim.expires_at)
        self.acquire(thief, name, 1)
        assert victim.token + 1 == self.model[name].token

    @invariant()
    def at_most_one_worker_holds_each_name(self) -> None:
        now = self.clock.now()
        for name in NAMES:
            holding = [
                lease
                for (_, held), lease in self.kept.items()
                if held == name and not lease.expired(now)
            ]
            if holding:
                assert [self.model[name]] == holding

    @invariant()
    def every_store_agrees_with_the_model(self) -> None:
        expected = [self.model[name] for name in sorted(self.model)]
        for store in self.stores:
            assert expected == store.leases()


class WorkersInMemory(Workers):
    def open(self) -> list[LeaseStore]:
        return [InMemoryLeaseStore(clock=self.clock)]


class WorkersOnOneSQLiteFile(Workers):
    """The workers share two store objects on one file, as two processes would."""

    def open(self) -> list[LeaseStore]:
        self._dir = tempfile.TemporaryDirectory()
        path = Path(self._dir.name) / "leases.db"
        return [SQLiteLeaseStore(path, clock=self.clock) for _ in range(2)]

    def teardown(self) -> None:
        super().teardown()
        self._dir.cleanup()


_machine_settings = settings(max_examples=30, stateful_step_count=25, deadline=None)
TestWorkersInMemory = WorkersInMemory.TestCase
TestWorkersInMemory.settings = _machine_settings
TestWorkersOnOneSQLiteFile = WorkersOnOneSQLiteFile.TestCase
TestWorkersOnOneSQLiteFile.settings = _machine_settings


# -- many processes on one file ----------------------------------------------------------------


def test_processes_taking_turns_never_overlap(tmp_path: Path) -> None:
    """Three processes competing for one lease for a second never hold it at the same time."""
    path = str(tmp_path / "leases.db")
    SQLiteLeaseStore(path).close()  # the table exists before the race starts
    owners = [f"process-{n}" for n in range(3)]
    start, out = SPAWN.Barrier(len(owners)), SPAWN.Queue()
    workers = [
        SPAWN.Process(target=take_turns, args=(path, owner, start, 1.0, out)) for owner in owners
    ]
    for worker in workers:
        worker.start()
    held: list[Taking] = [taking for _ in workers for taking in out.get(timeout=60)]
    for worker in workers:
        worker.join(30)
        assert 0 == worker.exitcode
    by_token: dict[int, list[Taking]] = {}
    for taking in sorted(held, key=lambda taking: taking[2]):
        by_token.setdefault(taking[0], []).append(taking)
    tokens = sorted(by_token)
    assert list(range(1, len(tokens) + 1)) == tokens  # every taking was recorded, once
    assert 1 == max(len({owner for _, owner, _, _ in takings}) for takings in by_token.values())
    assert len({takings[0][1] for takings in by_token.values()}) >= 2
    # A taking runs from the first time it was handed out to the last expiry it was given,
    # and ends before the next one starts.
    spans = [(by_token[t][0][2], by_token[t][-1][3]) for t in tokens]
    for (_, end), (start_of_next, _) in itertools.pairwise(spans):
        assert end <= start_of_next
    with SQLiteLeaseStore(path) as store:
        last = store.holder(NAME)
    assert last is not None
    assert tokens[-1] == last.token
