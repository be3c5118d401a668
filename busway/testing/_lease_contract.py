"""The promises of a lease store, as tests any backend can inherit.

Subclass :class:`LeaseStoreContract` as ``Test<YourStore>`` and give it a ``store`` fixture
that yields an empty store judging expiry by the contract's ``clock`` fixture (a
:class:`~busway.clock.FakeClock`, which the tests move by hand). A store that many workers
open over the same leases overrides :meth:`LeaseStoreContract.open_another`, so that the
tests of exclusion run across two of them.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import ClassVar

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from busway.clock import FakeClock
from busway.errors import InvalidArgumentError, StoreClosedError
from busway.subscriptions import Lease, LeaseStore

__all__ = ["LeaseStoreContract"]

_TTL = 10.0
_SECONDS = timedelta(seconds=_TTL)
_TICK = timedelta(microseconds=1)

_owners = st.sampled_from(["w-1", "w-2", "w-3"])
_steps = st.lists(
    st.one_of(
        st.tuples(st.just("acquire"), _owners, st.floats(0.001, 60)),
        st.tuples(st.just("renew"), _owners, st.floats(0.001, 60)),
        st.tuples(st.just("release"), _owners, st.just(0.0)),
        st.tuples(st.just("advance"), st.just(""), st.floats(0, 90)),
        st.tuples(st.just("back"), st.just(""), st.floats(0, 90)),
    ),
    max_size=25,
)


def _race(stores: list[LeaseStore], name: str, *, renewing: Lease | None = None) -> list[Lease]:
    """Let thread n ask store n for *name* as owner ``w-n``, all at once; return the winners.

    With *renewing*, thread 0 renews that lease instead. What a thread raises is reraised.
    """
    start = threading.Barrier(len(stores))
    got: list[Lease | None] = [None] * len(stores)
    failures: list[BaseException] = []

    def work(n: int) -> None:
        try:
            start.wait(30)
            if n == 0 and renewing is not None:
                got[n] = stores[n].renew(renewing, ttl=_TTL)
            else:
                got[n] = stores[n].acquire(name, f"w-{n}", ttl=_TTL)
        except BaseException as exc:  # reported below, on the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(len(stores))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [] == failures
    return [lease for lease in got if lease is not None]


class LeaseStoreContract:
    """Tests every :class:`~busway.subscriptions.LeaseStore` must pass; subclass to run them.

    Provide a ``store`` fixture yielding an empty store built with the ``clock`` fixture.
    """

    threads: ClassVar[int] = 8
    """How many threads race in the tests of exclusion."""

    @pytest.fixture
    def clock(self) -> FakeClock:
        """The clock the ``store`` fixture builds its store with; the tests move it."""
        return FakeClock()

    @pytest.fixture
    def store(self, clock: FakeClock) -> Iterator[LeaseStore]:
        """Yield an empty store that reads the time from *clock*; override it."""
        raise NotImplementedError("subclasses of LeaseStoreContract provide a `store` fixture")

    def open_another(self, store: LeaseStore, clock: FakeClock) -> LeaseStore:
        """Return a second store over *store*'s leases on *clock*, as another worker opens it.

        By default *store* itself; the contract closes what this returns if it is another.
        """
        return store

    # -- taking, renewing, losing ----------------------------------------------------------

    def test_is_a_lease_store(self, store: LeaseStore) -> None:
        """The store satisfies the LeaseStore protocol."""
        assert isinstance(store, LeaseStore)

    def test_the_first_taking_has_token_one(self, store: LeaseStore, clock: FakeClock) -> None:
        """A name never taken goes to the first owner who asks, with token 1, for ttl."""
        assert store.holder("orders") is None
        lease = store.acquire("orders", "w-1", ttl=_TTL)
        assert Lease("orders", "w-1", 1, clock.now() + _SECONDS) == lease
        assert lease == store.holder("orders")
        assert not lease.expired(clock.now())

    def test_the_holder_acquiring_again_renews(self, store: LeaseStore, clock: FakeClock) -> None:
        """acquire() by the owner of an unexpired lease keeps its token and moves its expiry."""
        store.acquire("orders", "w-1", ttl=_TTL)
        clock.advance(_TTL - 1)
        lease = store.acquire("orders", "w-1", ttl=3)
        assert Lease("orders", "w-1", 1, clock.now() + timedelta(seconds=3)) == lease
        assert lease == store.holder("orders")

    def test_another_owner_waits_until_expiry(self, store: LeaseStore, clock: FakeClock) -> None:
        """Up to its last microsecond a lease is refused to others, and nothing changes."""
        lease = store.acquire("orders", "w-1", ttl=_TTL)
        assert lease is not None
        assert store.acquire("orders", "w-2", ttl=_TTL) is None
        clock.set(lease.expires_at - _TICK)
        assert store.acquire("orders", "w-2", ttl=_TTL) is None
        assert lease == store.holder("orders")

    def test_an_expired_lease_is_taken_over_with_the_next_token(
        self, store: LeaseStore, clock: FakeClock
    ) -> None:
        """At its expiry a lease is free: another owner takes it with token + 1."""
        first = store.acquire("orders", "w-1", ttl=_TTL)
        assert first is not None
        clock.set(first.expires_at)
        assert first.expired(clock.now())
        second = store.acquire("orders", "w-2", ttl=_TTL)
        assert Lease("orders", "w-2", 2, clock.now() + _SECONDS) == second
        assert store.acquire("orders", "w-1", ttl=_TTL) is None

    def test_the_owner_of_an_expired_lease_takes_it_afresh(
        self, store: LeaseStore, clock: FakeClock
    ) -> None:
        """acquire() after expiry is a new taking, even by the last owner: the token grows."""
        store.acquire("orders", "w-1", ttl=_TTL)
        clock.advance(_TTL)
        lease = store.acquire("orders", "w-1", ttl=_TTL)
        assert lease is not None
        assert 2 == lease.token

    def test_renew_extends_a_lease_nobody_took(self, store: LeaseStore, clock: FakeClock) -> None:
        """renew() keeps the token and moves the expiry, also once the lease has expired."""
        lease = store.acquire("orders", "w-1", ttl=_TTL)
        assert lease is not None
        clock.advance(4)
        renewed = store.renew(lease, ttl=_TTL)
        assert Lease("orders", "w-1", 1, clock.now() + _SECONDS) == renewed
        clock.advance(_TTL + 5)
        assert renewed is not None
        again = store.renew(renewed, ttl=2)
        assert Lease("orders", "w-1", 1, clock.now() + timedelta(seconds=2)) == again
        assert again == store.holder("orders")

    def test_renew_after_a_takeover_is_refused(self, store: LeaseStore, clock: FakeClock) -> None:
        """A lease someone took since is lost: renew() returns None and changes nothing."""
        lost = store.acquire("orders", "w-1", ttl=_TTL)
        assert lost is not None
        clock.advance(_TTL)
        taken = store.acquire("orders", "w-2", ttl=_TTL)
        assert store.renew(lost, ttl=_TTL) is None
        assert taken == store.holder("orders")

    def test_renew_of_an_earlier_taking_is_refused(
        self, store: LeaseStore, clock: FakeClock
    ) -> None:
        """An owner's lease from before it took the name afresh is lost too."""
        old = store.acquire("orders", "w-1", ttl=_TTL)
        assert old is not None
        clock.advance(_TTL)
        new = store.acquire("orders", "w-1", ttl=_TTL)
        assert store.renew(old, ttl=_TTL) is None
        assert new == store.holder("orders")

    # -- releasing ---------------------------------------------------------------------------

    def test_release_frees_at_once(self, store: LeaseStore, clock: FakeClock) -> None:
        """A released lease keeps its token and expires now; the next taker gets token + 1."""
        lease = store.acquire("orders", "w-1", ttl=_TTL)
        assert lease is not None
        assert store.release(lease) is True
        released = Lease("orders", "w-1", 1, clock.now())
        assert released == store.holder("orders")
        assert released.expired(clock.now())
        assert store.release(lease) is False
        taken = store.acquire("orders", "w-2", ttl=_TTL)
        assert Lease("orders", "w-2", 2, clock.now() + _SECONDS) == taken

    def test_release_of_a_lost_lease_changes_nothing(
        self, store: LeaseStore, clock: FakeClock
    ) -> None:
        """release() of an expired or taken-over lease returns False and frees nothing."""
        lost = store.acquire("orders", "w-1", ttl=_TTL)
        assert lost is not None
        clock.advance(_TTL)
        assert store.release(lost) is False
        assert lost == store.holder("orders")
        taken = store.acquire("orders", "w-2", ttl=_TTL)
        assert store.release(lost) is False
        assert taken == store.holder("orders")
        assert store.acquire("orders", "w-1", ttl=_TTL) is None

    # -- tokens ------------------------------------------------------------------------------

    def test_tokens_never_go_down(self, store: LeaseStore, clock: FakeClock) -> None:
        """Whatever owners do and however the clock jumps, a name's token only grows by one."""
        names = (f"t-{n}" for n in itertools.count())  # the store is shared by every example

        @settings(deadline=None, max_examples=50)
        @given(_steps)
        def check(steps: list[tuple[str, str, float]]) -> None:
            name = next(names)
            held: dict[str, Lease] = {}
            token = 0
            for action, owner, number in steps:
                got: Lease | None = None
                if action == "acquire":
                    got = store.acquire(name, owner, ttl=number)
                elif action == "renew" and owner in held:
                    got = store.renew(held[owner], ttl=number)
                elif action == "release" and owner in held:
                    store.release(held[owner])
                elif action == "advance":
                    clock.advance(number)
                elif action == "back":
                    clock.set(clock.now() - timedelta(seconds=number))
                if got is not None:
                    held[owner] = got
                last = store.holder(name)
                now = 0 if last is None else last.token
                assert now in (token, token + 1)
                token = now

        check()

    def test_names_keep_their_own_tokens(self, store: LeaseStore, clock: FakeClock) -> None:
        """Taking one name does not count towards another's token, nor hold it."""
        for _ in range(3):
            store.acquire("orders", "w-1", ttl=_TTL)
            clock.advance(_TTL)
        payments = store.acquire("payments", "w-2", ttl=_TTL)
        orders = store.holder("orders")
        assert payments is not None
        assert orders is not None
        assert (1, 3, "w-1") == (payments.token, orders.token, orders.owner)

    # -- listing -----------------------------------------------------------------------------

    def test_leases_by_prefix_in_name_order(self, store: LeaseStore, clock: FakeClock) -> None:
        """leases() lists each name's last lease, expired and released ones too, by name."""
        taken = {
            name: store.acquire(name, f"w-{n}", ttl=_TTL + n)
            for n, name in enumerate(["orders#2/4", "payments", "orders", "order", "orders#1/4"])
        }
        released = taken["order"]
        assert released is not None
        store.release(released)
        clock.advance(_TTL + 2)
        everything = sorted(taken)
        assert everything == [lease.name for lease in store.leases()]
        assert [store.holder(name) for name in everything] == store.leases("")
        assert ["orders", "orders#1/4", "orders#2/4"] == [
            lease.name for lease in store.leases("orders")
        ]
        assert ["orders#1/4", "orders#2/4"] == [lease.name for lease in store.leases("orders#")]
        assert [] == store.leases("shipping")

    def test_listing_an_empty_store(self, store: LeaseStore) -> None:
        """A store that never handed out a lease lists none."""
        assert [] == store.leases()
        assert store.holder("orders") is None

    # -- exclusion ---------------------------------------------------------------------------

    def test_one_of_many_racing_threads_takes_a_lease(
        self, store: LeaseStore, clock: FakeClock
    ) -> None:
        """Threads asking at once, here and in another store, get it once, then once again."""
        other = self.open_another(store, clock)
        try:
            stores = [other if n % 2 else store for n in range(self.threads)]
            for turn in range(5):
                name = f"race-{turn}"
                won = _race(stores, name)
                assert [1] == [lease.token for lease in won]
                assert won == [store.holder(name)] == [other.holder(name)]
                clock.advance(_TTL)
                again = _race(stores, name)
                assert [2] == [lease.token for lease in again]
                assert again == [store.holder(name)]
        finally:
            if other is not store:
                other.close()

    def test_a_renewal_racing_takers_after_a_release(
        self, store: LeaseStore, clock: FakeClock
    ) -> None:
        """The releaser's renewal and the takers' acquires race: exactly one of them wins."""
        other = self.open_another(store, clock)
        try:
            stores = [other if n % 2 else store for n in range(self.threads)]
            for turn in range(5):
                lease = store.acquire(f"race-{turn}", "w-0", ttl=_TTL)
                assert lease is not None
                store.release(lease)
                won = _race(stores, lease.name, renewing=lease)
                assert won == [store.holder(lease.name)]
                assert won[0].token == (1 if won[0].owner == "w-0" else 2)
        finally:
            if other is not store:
                other.close()

    # -- arguments and closing -----------------------------------------------------------------

    @pytest.mark.parametrize("name", ["", 3, None, b"orders", "lone \ud800"])
    def test_a_name_that_is_not_text_is_refused(self, store: LeaseStore, name: object) -> None:
        """Names are non-empty str: anything else raises InvalidArgumentError, stores nothing."""
        with pytest.raises(InvalidArgumentError, match="name"):
            store.acquire(name, "w-1", ttl=_TTL)  # type: ignore[arg-type]  # wrong on purpose
        with pytest.raises(InvalidArgumentError, match="name"):
            store.holder(name)  # type: ignore[arg-type]
        assert [] == store.leases()

    @pytest.mark.parametrize("owner", ["", 3, None, b"w-1", "lone \udfff"])
    def test_an_owner_that_is_not_text_is_refused(self, store: LeaseStore, owner: object) -> None:
        """Owners are non-empty str: anything else raises InvalidArgumentError, stores nothing."""
        with pytest.raises(InvalidArgumentError, match="owner"):
            store.acquire("orders", owner, ttl=_TTL)  # type: ignore[arg-type]
        assert [] == store.leases()

    @pytest.mark.parametrize(
        "ttl", [0, -1, 0.0, 1e-9, True, "5", None, float("nan"), float("inf"), 1e300, 1e12]
    )
    def test_a_ttl_that_is_no_span_of_time_is_refused(self, store: LeaseStore, ttl: object) -> None:
        """ttl is a positive finite number of seconds landing in the calendar, not a bool."""
        lease = store.acquire("orders", "w-1", ttl=_TTL)
        assert lease is not None
        with pytest.raises(InvalidArgumentError, match="ttl"):
            store.acquire("orders", "w-1", ttl=ttl)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="ttl"):
            store.acquire("payments", "w-1", ttl=ttl)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="ttl"):
            store.renew(lease, ttl=ttl)  # type: ignore[arg-type]
        assert [lease] == store.leases()

    def test_a_lease_must_be_a_lease(self, store: LeaseStore) -> None:
        """renew() and release() take a Lease; leases() takes a str prefix."""
        for wrong in [None, "orders", ("orders", "w-1", 1)]:
            with pytest.raises(InvalidArgumentError, match="lease"):
                store.renew(wrong, ttl=_TTL)  # type: ignore[arg-type]
            with pytest.raises(InvalidArgumentError, match="lease"):
                store.release(wrong)  # type: ignore[arg-type]
        with pytest.raises(InvalidArgumentError, match="prefix"):
            store.leases(None)  # type: ignore[arg-type]

    def test_a_closed_store_refuses_work(self, store: LeaseStore) -> None:
        """After close(), every call raises StoreClosedError; closing again is harmless."""
        lease = store.acquire("orders", "w-1", ttl=_TTL)
        assert lease is not None
        store.close()
        store.close()
        calls: list[Callable[[], object]] = [
            lambda: store.acquire("orders", "w-1", ttl=_TTL),
            lambda: store.renew(lease, ttl=_TTL),
            lambda: store.release(lease),
            lambda: store.holder("orders"),
            store.leases,
        ]
        for call in calls:
            with pytest.raises(StoreClosedError, match="is closed"):
                call()
