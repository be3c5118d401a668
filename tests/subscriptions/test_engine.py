"""The subscription engine on its own: batches, partitions, compare-and-set, failure policies.

The consumer here keeps its checkpoints in a dict with the same refusals a real store makes,
so these tests pin down what the engine decides, whatever backend is behind it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from busway import Event
from busway.clock import FakeClock
from busway.errors import (
    CheckpointMovedError,
    InvalidArgumentError,
    LeaseLostError,
    SubscriptionError,
)
from busway.eventstore import EventTypes, InMemoryEventStore, RecordedEvent
from busway.subscriptions import InMemoryLeaseStore, Park, ParkedEvent, Retry, Stop
from busway.subscriptions._drive import SyncDriver
from busway.subscriptions._engine import Applied, Call, Flow, Follower, partition_of


@attrs.frozen
class Happened(Event):
    n: int


TYPES = EventTypes(Happened)


class Boom(Exception):
    """What a failing handler raises here."""


class Feed:
    """A consumer whose checkpoints, tokens and parked events live in dicts."""

    def __init__(self) -> None:
        self.positions: dict[str, int] = {}
        self.tokens: dict[str, int] = {}
        self.parked_events: dict[str, dict[int, ParkedEvent]] = {}
        self.handled: list[tuple[str, int]] = []
        self.failing: dict[int, int] = {}  # position -> how many more times it fails
        self.taken_keys: list[str] = []
        self.move_under: dict[str, int] = {}  # key -> position another worker moves it to
        self.each: Callable[[], object] = lambda: None  # called after each event is handled

    def _check(self, key: str, expected: int, token: int) -> None:
        if self.tokens.get(key, 0) > token:
            raise LeaseLostError(key, token, self.tokens[key])
        if key in self.move_under:
            self.positions[key] = self.move_under.pop(key)
        if self.positions.get(key, 0) != expected:
            raise CheckpointMovedError(key, expected, self.positions.get(key, 0))
        self.tokens[key] = token

    def load(self, key: str) -> Flow[int]:
        position: int = yield Call(lambda: self.positions.get(key, 0))
        return position

    def fence(self, key: str, token: int) -> Flow[None]:
        yield Call(functools.partial(self._fence, key, token))

    def _fence(self, key: str, token: int) -> None:
        if self.tokens.get(key, 0) > token:
            raise LeaseLostError(key, token, self.tokens[key])
        self.tokens[key] = token

    def taken(self, key: str) -> Flow[None]:
        self.taken_keys.append(key)
        yield from ()

    def apply(
        self,
        key: str,
        events: Sequence[RecordedEvent],
        *,
        through: int,
        expected: int,
        token: int,
        pause: Callable[[], bool] | None = None,
    ) -> Flow[Applied]:
        applied: Applied = yield Call(
            functools.partial(self._apply, key, events, through, expected, token, pause=pause)
        )
        return applied

    def _apply(
        self,
        key: str,
        events: Sequence[RecordedEvent],
        through: int,
        expected: int,
        token: int,
        *,
        pause: Callable[[], bool] | None,
    ) -> Applied:
        self._check(key, expected, token)
        for recorded in events:
            if self.failing.get(recorded.position, 0) > 0:
                self.failing[recorded.position] -= 1
                self.positions[key] = recorded.position - 1
                return Applied(recorded.position - 1, Boom(recorded.position), recorded)
            self.handled.append((key, recorded.position))
            self.each()
            if pause is not None and recorded is not events[-1] and pause():
                self.positions[key] = recorded.position
                return Applied(recorded.position)
        self.positions[key] = through
        return Applied(through)

    def park(self, key: str, parked: ParkedEvent, *, expected: int, token: int) -> Flow[None]:
        yield Call(functools.partial(self._park, key, parked, expected, token))

    def _park(self, key: str, parked: ParkedEvent, expected: int, token: int) -> None:
        self._check(key, expected, token)
        self.parked_events.setdefault(key, {})[parked.position] = parked
        self.positions[key] = parked.position

    def parked(self, key: str) -> Flow[list[ParkedEvent]]:
        found: list[ParkedEvent] = yield Call(
            lambda: sorted(self.parked_events.get(key, {}).values(), key=lambda p: p.position)
        )
        return found

    def replay(self, key: str, recorded: RecordedEvent, *, token: int) -> Flow[Exception | None]:
        failure: Exception | None = yield Call(functools.partial(self._replay, key, recorded))
        return failure

    def _replay(self, key: str, recorded: RecordedEvent) -> Exception | None:
        if self.failing.get(recorded.position, 0) > 0:
            self.failing[recorded.position] -= 1
            return Boom(recorded.position)
        self.handled.append((key, recorded.position))
        del self.parked_events[key][recorded.position]
        return None


class Driver:
    """A SyncDriver whose sleeps are recorded instead of slept."""

    def __init__(self, store: InMemoryEventStore) -> None:
        self.sleeps: list[float] = []
        self._driver = SyncDriver(store)

    def run(self, flow: Flow[Any]) -> Any:
        from busway._effects import run
        from busway.subscriptions._engine import Sleep

        def perform(effect: Any) -> Any:
            if isinstance(effect, Sleep):
                self.sleeps.append(effect.seconds)
                return None
            return self._driver.perform(effect)

        return run(flow, perform)


def filled(count: int, streams: int = 3) -> InMemoryEventStore:
    store = InMemoryEventStore(types=TYPES)
    for n in range(1, count + 1):
        store.append(f"s-{n % streams}", [Happened(n)])
    return store


def test_a_catch_up_hands_every_event_once_in_order_and_moves_the_checkpoint() -> None:
    """Batches of batch_size cover the log; the checkpoint ends at the head."""
    store, feed = filled(25), Feed()
    follower = Follower(feed, name="sub", batch_size=10)
    read = Driver(store).run(follower.catch_up())
    assert (25, list(range(1, 26)), 25) == (
        read,
        [p for _, p in feed.handled],
        feed.positions["sub"],
    )
    assert 25 == follower.position


@given(st.integers(1, 6), st.integers(1, 7))
@settings(max_examples=25)
def test_partitions_split_by_stream_and_keep_each_streams_order(partitions: int, size: int) -> None:
    """Each event goes to the partition of its stream, once, in position order."""
    store, feed = filled(30, streams=5), Feed()
    follower = Follower(feed, name="sub", partitions=partitions, batch_size=size)
    Driver(store).run(follower.catch_up())
    by_position = {r.position: r for r in store.read_all()}
    assert sorted(p for _, p in feed.handled) == list(range(1, 31))
    for key, position in feed.handled:
        index = partition_of(by_position[position].stream_id, partitions)
        assert key == ("sub" if partitions == 1 else f"sub[{index}/{partitions}]")
    for part in follower.parts:
        mine = [p for k, p in feed.handled if k == part.key]
        assert mine == sorted(mine)


def test_a_checkpoint_moved_by_another_worker_is_read_again_not_applied_twice() -> None:
    """The batch that lost the race keeps nothing; the engine goes on from the new position."""
    store, feed = filled(10), Feed()
    follower = Follower(feed, name="sub", batch_size=4)
    feed.move_under["sub"] = 6  # another worker handled 1..6 meanwhile
    Driver(store).run(follower.catch_up())
    assert [7, 8, 9, 10] == [p for _, p in feed.handled]


def test_a_fenced_worker_stands_by_without_writing() -> None:
    """A later token in the store stops this worker's commits: it drops the partition."""
    store, feed, clock = filled(0), Feed(), FakeClock()
    follower = leased(feed, InMemoryLeaseStore(clock=clock), clock, "a")
    driver = Driver(store)
    assert 0 == driver.run(follower.step())  # takes the lease; nothing to read yet
    feed.tokens["sub"] = 9  # a later holder wrote meanwhile
    store.append("s-1", [Happened(1)])
    assert 0 == driver.run(follower.step())
    assert ([], 0, ()) == (feed.handled, feed.positions.get("sub", 0), follower.held)


def test_a_worker_without_leases_refuses_a_checkpoint_fenced_by_one() -> None:
    """Token 0 can never beat a lease's token: the follower says so instead of idling."""
    store, feed = filled(5), Feed()
    feed.tokens["sub"] = 9
    follower = Follower(feed, name="sub")
    with pytest.raises(SubscriptionError, match=r"token 9.*same leases= store"):
        Driver(store).run(follower.step())
    assert [] == feed.handled


def test_stop_raises_the_failure_and_keeps_what_came_before() -> None:
    """The default policy stops at the event; the checkpoint is just before it."""
    store, feed = filled(6), Feed()
    feed.failing[4] = 1
    follower = Follower(feed, name="sub", on_error=Stop())
    with pytest.raises(Boom):
        Driver(store).run(follower.catch_up())
    assert ([1, 2, 3], 3) == ([p for _, p in feed.handled], feed.positions["sub"])


def test_retry_waits_by_the_backoff_then_succeeds() -> None:
    """Two failures, then success: two sleeps of the backoff, and every event handled."""
    store, feed = filled(5), Feed()
    feed.failing[3] = 2
    driver = Driver(store)
    follower = Follower(feed, name="sub", on_error=Retry(attempts=3, backoff=lambda n: n / 10))
    driver.run(follower.catch_up())
    assert ([0.1, 0.2], [1, 2, 3, 4, 5]) == (driver.sleeps, [p for _, p in feed.handled])


def test_retry_then_park_sets_the_event_aside_and_goes_on() -> None:
    """After the retries, the event is parked with its error and the rest are handled."""
    store, feed = filled(5), Feed()
    feed.failing[2] = 10
    clock = FakeClock()
    follower = Follower(
        feed, name="sub", on_error=Retry(attempts=2, backoff=lambda n: 0, then=Park()), clock=clock
    )
    driver = Driver(store)
    driver.run(follower.catch_up())
    (parked,) = driver.run(follower.parked())
    assert (2, "Boom: 2", 3, clock.now()) == (
        parked.position,
        parked.error,
        parked.attempts,
        parked.parked_at,
    )
    assert [1, 3, 4, 5] == [p for _, p in feed.handled]


def test_a_replayed_parked_event_is_handled_and_unparked() -> None:
    """Replaying runs the event again; one that fails again stays parked."""
    store, feed = filled(4), Feed()
    feed.failing[2] = 2
    follower = Follower(feed, name="sub", on_error=Park())
    driver = Driver(store)
    driver.run(follower.catch_up())
    assert 0 == driver.run(follower.replay())  # fails once more
    assert 1 == driver.run(follower.replay(2))
    assert ([], [1, 3, 4, 2]) == (driver.run(follower.parked()), [p for _, p in feed.handled])


def test_status_shows_position_lag_and_parked_events_per_partition() -> None:
    """Every partition reports where it is against the head."""
    store, feed = filled(8), Feed()
    feed.failing[5] = 1
    follower = Follower(feed, name="sub", partitions=2, on_error=Park())
    driver = Driver(store)
    driver.run(follower.catch_up())
    status = driver.run(follower.status())
    assert [0, 0] == [s.lag for s in status]
    assert [5] == [p.position for s in status for p in s.parked]
    assert ["sub[0/2]", "sub[1/2]"] == [s.key for s in status]


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("name", ""),
        ("partitions", 0),
        ("partitions", True),
        ("batch_size", 0),
        ("lease", 0),
        ("poll_interval", -1),
        ("poll_interval", float("inf")),
        ("owner", ""),
        ("on_error", "park"),
        ("leases", object()),
    ],
)
def test_bad_settings_are_refused_by_name(argument: str, value: object) -> None:
    """Each setting out of range raises InvalidArgumentError naming it."""
    settings_: dict[str, Any] = {"name": "sub", argument: value}
    with pytest.raises(InvalidArgumentError, match=argument):
        Follower(Feed(), **settings_)


def test_retry_settings_are_checked() -> None:
    """A Retry with no attempts, a backoff that is not callable, or a bad then is refused."""
    with pytest.raises(InvalidArgumentError, match="attempts"):
        Retry(attempts=0)
    with pytest.raises(InvalidArgumentError, match="backoff"):
        Retry(backoff=1)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="then"):
        Retry(then=Retry())  # type: ignore[arg-type]


def leased(
    feed: Feed, leases: InMemoryLeaseStore, clock: FakeClock, owner: str, **options: Any
) -> Follower:
    """Return a follower of subscription "sub" under *owner*, with 3-second leases."""
    return Follower(feed, name="sub", leases=leases, lease=3.0, owner=owner, clock=clock, **options)


def test_one_worker_holds_the_lease_and_a_standby_takes_over_when_it_expires() -> None:
    """The standby reads nothing while the holder renews; once it stops, it takes over."""
    store, feed, clock = filled(6), Feed(), FakeClock()
    leases = InMemoryLeaseStore(clock=clock)
    driver = Driver(store)
    holder, standby = leased(feed, leases, clock, "a"), leased(feed, leases, clock, "b")
    assert (6, 0) == (driver.run(holder.catch_up()), driver.run(standby.catch_up()))
    store.append("s-9", [Happened(7)])
    clock.advance(3.5)  # "a" died: its lease ran out
    assert 1 == driver.run(standby.catch_up())
    assert (["sub", "sub"], 2) == (feed.taken_keys, feed.tokens["sub"])
    assert 0 == driver.run(holder.step())  # "a" comes back: fenced, it stands by
    assert [] == [p.key for p in holder.held]


def test_a_batch_longer_than_the_lease_pauses_to_renew_it() -> None:
    """Events that take a second each: the batch stops to renew, and no standby takes over."""
    store, feed, clock = filled(12), Feed(), FakeClock()
    leases = InMemoryLeaseStore(clock=clock)
    standby_found: list[object] = []

    def slow() -> None:
        clock.advance(1.0)  # the lease is 3 seconds: 12 events take four times as long
        standby_found.append(leases.acquire("sub", "b", ttl=3.0))

    feed.each = slow
    holder = leased(feed, leases, clock, "a")
    assert 12 == Driver(store).run(holder.catch_up())
    assert [None] * 12 == standby_found
    assert [("sub", n) for n in range(1, 13)] == feed.handled
    assert (12, 1) == (feed.positions["sub"], feed.tokens["sub"])


def test_a_released_lease_is_taken_at_once() -> None:
    """release() hands the partitions over without waiting for the lease time."""
    store, feed, clock = filled(3), Feed(), FakeClock()
    leases = InMemoryLeaseStore(clock=clock)
    driver = Driver(store)
    holder, standby = leased(feed, leases, clock, "a"), leased(feed, leases, clock, "b")
    driver.run(holder.catch_up())
    driver.run(holder.release())
    store.append("s-1", [Happened(4)])
    assert 1 == driver.run(standby.catch_up())


def test_a_standby_takes_a_released_lease_before_its_own_renewal_is_due() -> None:
    """Between renewals a standby still looks for partitions given back, and takes them."""
    store, feed, clock = filled(3), Feed(), FakeClock()
    leases = InMemoryLeaseStore(clock=clock)
    driver = Driver(store)
    holder, standby = leased(feed, leases, clock, "a"), leased(feed, leases, clock, "b")
    driver.run(holder.catch_up())
    assert 0 == driver.run(standby.step())  # stands by; its next renewal is a second away
    driver.run(holder.release())
    store.append("s-1", [Happened(4)])
    assert 1 == driver.run(standby.step())  # the clock has not moved
    assert ["sub"] == [p.key for p in standby.held]


def test_workers_share_partitions_fairly() -> None:
    """Two workers on four partitions end up with two each, and every event is handled once."""
    store, feed, clock = filled(40, streams=8), Feed(), FakeClock()
    leases = InMemoryLeaseStore(clock=clock)
    driver = Driver(store)
    a = leased(feed, leases, clock, "a", partitions=4, batch_size=5)
    b = leased(feed, leases, clock, "b", partitions=4, batch_size=5)
    driver.run(a.step())  # alone: takes every partition
    assert 4 == len(a.held)
    driver.run(b.step())  # sees two workers, takes what is free: nothing yet
    clock.advance(1.1)  # renewals are due
    driver.run(a.step())  # a gives up its extra partitions
    driver.run(b.step())
    assert (2, 2) == (len(a.held), len(b.held))
    for _ in range(10):
        driver.run(a.step())
        driver.run(b.step())
    assert sorted(p for _, p in feed.handled) == list(range(1, 41))


def test_changing_the_number_of_partitions_is_refused() -> None:
    """Checkpoints of another layout with progress make the follower refuse to run."""
    follower = Follower(Feed(), name="sub", partitions=2)
    follower.check_layout({"sub": 0, "sub[0/2]": 5, "other": 3})
    with pytest.raises(SubscriptionError, match="another number of partitions"):
        follower.check_layout({"sub": 7})
    with pytest.raises(SubscriptionError, match=r"sub\[1/4\]"):
        follower.check_layout({"sub[1/4]": 7})
