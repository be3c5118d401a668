"""The one engine that follows the global log: leases, partitions, batches, failures.

A :class:`Follower` runs one subscription (a name, split in ``partitions``) in one worker.
It is a set of flows (see :mod:`busway._effects`): generators that yield effects — read a
page, call a store, wait for a wake-up, sleep — so that the sync runners perform them on a
thread and the async ones await them, with one copy of the logic. What the events are
handed to is a :class:`Consumer`: a projection with its checkpoint store, or a saga
manager with its saga store. The consumer commits a batch together with the checkpoint
move it is given; the engine decides which batch, under which lease, and what to do when a
handler fails.

Safety comes from the stores, not from timing. Every commit says which position the
checkpoint moves *from* (compare-and-set), and carries the worker's fencing token: a worker
that lost its lease, or raced another, keeps nothing, and reads again.
"""

from __future__ import annotations

import functools
import logging
import math
import os
import socket
import uuid
import zlib
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Protocol, TypeAlias, TypeVar, final

import attrs

from .._signal import Signal
from ..clock import Clock, SystemClock
from ..errors import (
    CheckpointMovedError,
    ConnectionLostError,
    InvalidArgumentError,
    LeaseLostError,
    SubscriptionError,
)
from ..eventstore import RecordedEvent
from ._leases import Lease, LeaseStore
from ._policy import OnError, Park, Retry, Stop, check_policy
from ._records import ParkedEvent

__all__ = [
    "Applied",
    "Call",
    "Consumer",
    "Flow",
    "Follower",
    "PartitionStatus",
    "ReadPage",
    "Seen",
    "Sleep",
    "Wait",
    "default_owner",
    "partition_of",
]

_log = logging.getLogger("busway.subscriptions")

_LOST_FIRST: Final = 0.05  # seconds before the first try after a connection broke
_LOST_LONGEST: Final = 2.0  # seconds between tries at most, while it stays broken

T = TypeVar("T")

# -- effects ---------------------------------------------------------------------------------


@final
@attrs.frozen
class ReadPage:
    """Read at most *limit* stored events from *position* on, as a list."""

    position: int
    limit: int


@final
@attrs.frozen
class Head:
    """Return the store's head position."""


@final
@attrs.frozen
class Call:
    """Call *fn*: store I/O, which an async driver runs on a worker thread."""

    fn: Callable[[], Any]


@final
@attrs.frozen
class Seen:
    """Return how many commits the store's wake-up signal has counted (0 if it has none)."""


@final
@attrs.frozen
class Wait:
    """Wait until *signal* (None: the store's) counts past *seen*, or *timeout* seconds pass."""

    seen: int
    timeout: float
    signal: Signal | None = None


@final
@attrs.frozen
class Sleep:
    """Wait *seconds* (a backoff); a stop request cuts it short."""

    seconds: float


Flow: TypeAlias = Generator[Any, Any, T]
"""A flow yields engine effects, and whatever effects its consumer's flows yield."""


# -- what the engine feeds -------------------------------------------------------------------


@final
@attrs.frozen
class Applied:
    """What a consumer did with a batch.

    ``position`` is where the checkpoint now is. ``failure`` is what to raise if the
    subscription stops: when ``failed`` is set, the handlers failed on that event and
    nothing of it was kept; when it is None, every event was kept, and the failure came
    after (a saga's command that could not be sent).
    """

    position: int
    failure: Exception | None = None
    failed: RecordedEvent | None = None


class Consumer(Protocol):
    """What a subscription hands its events to, and where it keeps its checkpoints.

    Every method is a flow. ``key`` names a checkpoint (the subscription's name, with its
    partition if split); ``token`` is the fencing token of the worker's lease (0 without
    leases), which the store refuses if a later one has written.
    """

    def load(self, key: str) -> Flow[int]:
        """Return the checkpoint's position (0 if none)."""
        ...

    def fence(self, key: str, token: int) -> Flow[None]:
        """Record *token* as the one to beat; raise LeaseLostError if a later one wrote."""
        ...

    def taken(self, key: str) -> Flow[None]:
        """Do what a worker does when it takes a partition over (sagas: send what is left)."""
        ...

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
        """Handle *events* in order, moving the checkpoint from *expected* to *through*.

        Stop at the first event whose handlers fail, keeping what came before. Raise
        CheckpointMovedError or LeaseLostError, keeping nothing, if the store refuses.
        After each event but the last, ask *pause* (if given): when it says so, stop there,
        keeping what was handled and moving the checkpoint to that event, so that the
        worker renews its lease before a long batch outlasts it; the rest is the next batch.
        """
        ...

    def park(self, key: str, parked: ParkedEvent, *, expected: int, token: int) -> Flow[None]:
        """Record *parked* and move the checkpoint from *expected* to its position."""
        ...

    def parked(self, key: str) -> Flow[list[ParkedEvent]]:
        """Return the events parked under *key*, by position."""
        ...

    def replay(self, key: str, recorded: RecordedEvent, *, token: int) -> Flow[Exception | None]:
        """Handle the parked *recorded* again; on success unpark it in the same commit.

        Return the failure (the event stays parked) or None.
        """
        ...


@final
@attrs.frozen
class PartitionStatus:
    """Where one partition of a subscription is, for a health check or a command line.

    ``lag`` is how many positions it is behind the store's head (an upper bound on the
    events to go); ``holder`` the last lease taken on it (check ``holder.expires_at``), or
    None without leases; ``parked`` the events it set aside.
    """

    subscription: str
    key: str
    partition: int
    partitions: int
    position: int
    head: int
    holder: Lease | None
    parked: tuple[ParkedEvent, ...]

    @property
    def lag(self) -> int:
        """How many positions the partition is behind the head; 0 when caught up."""
        return max(0, self.head - self.position)


def partition_of(stream_id: str, partitions: int) -> int:
    """Return the partition, from 0, that *stream_id*'s events go to, in every process."""
    return zlib.crc32(stream_id.encode("utf-8", "surrogatepass")) % partitions


def default_owner() -> str:
    """Return a worker id: host, process and a random part, unique across restarts."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def key_of(name: str, partition: int, partitions: int) -> str:
    """Return the checkpoint and lease name of one partition."""
    return name if partitions == 1 else f"{name}[{partition}/{partitions}]"


_MEMBERS: Final = "[workers]/"
_LONG_AGO: Final = datetime(1970, 1, 1, tzinfo=UTC)


@final
class _Part:
    """This worker's view of one partition."""

    __slots__ = ("failures", "index", "key", "lease", "position")

    def __init__(self, key: str, index: int) -> None:
        self.key = key
        self.index = index
        self.position: int | None = None  # None: read it from the store first
        self.lease: Lease | None = None
        self.failures: tuple[int, int] = (0, 0)  # (position, failures there)

    @property
    def token(self) -> int:
        return 0 if self.lease is None else self.lease.token


def _number(name: str, value: object, *, least: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > least:
        raise InvalidArgumentError(name, value, f"a number of seconds more than {least:g}")
    if not math.isfinite(value):
        raise InvalidArgumentError(name, value, "a finite number of seconds")
    return float(value)


class Follower:
    """One subscription in one worker: which partitions it holds, and how far each got.

    Without a lease store the worker runs every partition, and compare-and-set checkpoints
    keep it right beside others; with one, it holds at most its fair share of partitions
    at a time, renews their leases while it runs, and takes over those whose holder died.
    """

    consumer: Consumer
    name: str
    partitions: int
    leases: LeaseStore | None
    lease_time: float
    owner: str
    batch_size: int
    poll_interval: float
    on_error: OnError
    clock: Clock
    parts: tuple[_Part, ...]
    moved: Signal
    retrying: bool = False
    """Whether the last step is to try a failed event again (after a backoff)."""

    def __init__(
        self,
        consumer: Consumer,
        *,
        name: str,
        partitions: int = 1,
        leases: LeaseStore | None = None,
        lease: float = 5.0,
        owner: str | None = None,
        batch_size: int = 100,
        poll_interval: float = 0.5,
        on_error: OnError | None = None,
        clock: Clock | None = None,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise InvalidArgumentError("name", name, "a non-empty str")
        if type(partitions) is not int or not 1 <= partitions <= 1024:
            raise InvalidArgumentError("partitions", partitions, "an int from 1 to 1024")
        if type(batch_size) is not int or batch_size < 1:
            raise InvalidArgumentError("batch_size", batch_size, "an int of 1 or more")
        if leases is not None and not isinstance(leases, LeaseStore):
            raise InvalidArgumentError(
                "leases", leases, "a LeaseStore, such as SQLiteLeaseStore(path)"
            )
        if owner is not None and (not isinstance(owner, str) or not owner):
            raise InvalidArgumentError("owner", owner, "a non-empty str naming the worker")
        self.consumer = consumer
        self.name = name
        self.partitions = partitions
        self.leases = leases
        self.lease_time = _number("lease", lease)
        self.owner = default_owner() if owner is None else owner
        self.batch_size = batch_size
        self.poll_interval = _number("poll_interval", poll_interval)
        self.on_error = Stop() if on_error is None else check_policy(on_error)
        self.clock = SystemClock() if clock is None else clock
        self.parts = tuple(_Part(key_of(name, p, partitions), p) for p in range(partitions))
        self.moved = Signal()
        """Notified whenever a partition's position moves, for those who wait on it."""
        self._member: Lease | None = None
        self._renew_at = _LONG_AGO
        self._share_now = 0  # the share found at the last renewal
        # Workers start looking at different partitions, so that they rarely race for one.
        self._first = zlib.crc32(self.owner.encode()) % partitions

    def __repr__(self) -> str:
        return f"<Follower {self.name!r} of {self.owner!r}>"

    def stale(self, stored: Iterable[str]) -> list[str]:
        """Return the names in *stored* of this subscription's checkpoints under another layout."""
        mine = {p.key for p in self.parts}
        prefix = f"{self.name}["
        return [
            key
            for key in stored
            if (key == self.name or (key.startswith(prefix) and key.endswith("]")))
            and key not in mine
            and _MEMBERS not in key
        ]

    def check_layout(self, stored: Mapping[str, int]) -> None:
        """Refuse to run if *stored* checkpoints show another number of partitions.

        Their positions would not carry over: each partition would start from the beginning
        while the old ones stay behind, so the read model would see events twice.
        """
        for key in self.stale(stored):
            if stored[key] > 0:
                raise SubscriptionError(
                    f"subscription {self.name!r} has a checkpoint {key!r} from a run with "
                    f"another number of partitions than {self.partitions}: run it as it was, "
                    "or rebuild it (which starts every partition from the beginning)"
                )

    # -- what the runners show -----------------------------------------------------------

    @property
    def held(self) -> tuple[_Part, ...]:
        """The partitions this worker runs now."""
        if self.leases is None:
            return self.parts
        return tuple(p for p in self.parts if p.lease is not None)

    @property
    def position(self) -> int:
        """The lowest position known for the partitions: every event up to it is handled."""
        return min((p.position or 0) for p in self.parts)

    def idle_timeout(self) -> float:
        """How long a caught-up worker may sleep before it must look again."""
        if self.leases is None:
            return self.poll_interval
        return min(self.poll_interval, self.lease_time / 3)

    # -- flows ---------------------------------------------------------------------------

    def refresh(self) -> Flow[int]:
        """Read again the checkpoints of the partitions others hold; return the lowest."""
        held = self.held
        for part in self.parts:
            if part not in held:
                part.position = yield from self.consumer.load(part.key)
        return self.position

    def reset(self) -> None:
        """Take note that every checkpoint was put back to 0."""
        for part in self.parts:
            part.position = 0
            part.failures = (0, 0)
        self.moved.notify()

    def claim_all(self) -> Flow[None]:
        """Hold every partition's lease (to rebuild), or raise if another worker holds one."""
        leases = self.leases
        assert leases is not None
        for part in self.parts:
            lease: Lease | None = yield Call(
                functools.partial(leases.acquire, part.key, self.owner, ttl=self.lease_time)
            )
            if lease is None:
                holder: Lease | None = yield Call(functools.partial(leases.holder, part.key))
                raise SubscriptionError(
                    f"subscription {part.key!r} is held by worker "
                    f"{holder.owner if holder else '?'!r}: stop the other workers first"
                )
            if part.lease is None or part.lease.token != lease.token:
                yield from self.consumer.fence(part.key, lease.token)
            part.lease = lease

    def step(self) -> Flow[int]:
        """Renew or take leases, then handle one batch per partition held.

        Return how many stored events the checkpoints moved past (0: caught up, standing
        by, or waiting to try a failed event again: see :attr:`retrying`).
        """
        self.retrying = False
        if self.leases is not None:
            yield from self._hold(self.leases)
        read = 0
        for part in self.held:
            read += yield from self._batch(part)
        return read

    def catch_up(self) -> Flow[int]:
        """Take steps until none is left to do; return how many events were handled."""
        total = 0
        while (n := (yield from self.step())) or self.retrying:
            total += n
        return total

    def follow(self) -> Flow[None]:
        """Take steps for ever, sleeping on the store's wake-up whenever caught up.

        A connection to a database server that broke costs the step, not the run: the
        worker tries again after a backoff, on a new connection. What the broken step
        committed, if anything, the compare-and-set checkpoints tell on the next one.
        """
        lost = 0
        while True:
            seen: int = yield Seen()
            try:
                read = yield from self.step()
            except ConnectionLostError as error:
                lost += 1
                delay = min(_LOST_FIRST * 2 ** (lost - 1), _LOST_LONGEST)
                _log.warning(
                    "subscription %r: %s lost its connection (%s); trying again in %gs",
                    self.name,
                    self.owner,
                    error,
                    delay,
                )
                yield Sleep(delay)
                continue
            lost = 0
            if read == 0:
                yield Wait(seen, self.idle_timeout())

    def release(self) -> Flow[None]:
        """Give every lease back, so that a standby takes over at once."""
        leases = self.leases
        if leases is None:
            return
        for part in self.parts:
            if part.lease is not None:
                lease, part.lease = part.lease, None
                yield Call(functools.partial(leases.release, lease))
        if self._member is not None:
            member, self._member = self._member, None
            yield Call(functools.partial(leases.release, member))
        self._renew_at = _LONG_AGO

    def status(self) -> Flow[list[PartitionStatus]]:
        """Return where every partition is, who holds it, and what it parked."""
        head: int = yield Head()
        found = []
        for part in self.parts:
            position = yield from self.consumer.load(part.key)
            holder = None
            if self.leases is not None:
                holder = yield Call(functools.partial(self.leases.holder, part.key))
            parked = yield from self.consumer.parked(part.key)
            found.append(
                PartitionStatus(
                    subscription=self.name,
                    key=part.key,
                    partition=part.index,
                    partitions=self.partitions,
                    position=position,
                    head=max(head, position),
                    holder=holder,
                    parked=tuple(parked),
                )
            )
        return found

    def parked(self) -> Flow[list[ParkedEvent]]:
        """Return every event the partitions parked, by position."""
        found: list[ParkedEvent] = []
        for part in self.parts:
            found += yield from self.consumer.parked(part.key)
        return sorted(found, key=lambda p: p.position)

    def replay(self, position: int | None = None) -> Flow[int]:
        """Handle parked events again (all, or the one at *position*); return how many passed.

        Only partitions this worker holds are replayed. An event that fails again stays
        parked as it was.
        """
        if position is not None and (type(position) is not int or position < 1):
            raise InvalidArgumentError("position", position, "the int position of a parked event")
        if self.leases is not None:
            yield from self._hold(self.leases)
        passed = 0
        for part in self.held:
            for parked in (yield from self.consumer.parked(part.key)):
                if position is not None and parked.position != position:
                    continue
                page: list[RecordedEvent] = yield ReadPage(parked.position, 1)
                if not page or page[0].position != parked.position:
                    raise InvalidArgumentError(
                        "position",
                        parked.position,
                        "the position of an event still in the store (the parked one is gone)",
                    )
                failure = yield from self.consumer.replay(part.key, page[0], token=part.token)
                if failure is None:
                    passed += 1
                    continue
                _log.warning(
                    "subscription %r: parked event at position %d failed again: %r",
                    part.key,
                    parked.position,
                    failure,
                )
        return passed

    # -- leases --------------------------------------------------------------------------

    def _hold(self, leases: LeaseStore) -> Flow[None]:
        """Renew the leases held, then take or give back partitions to hold a fair share."""
        ttl = self.lease_time
        if not self._renewal_due():
            yield from self._fill(leases, self.clock.now())
            return
        share = self._share_now = yield from self._share(leases)
        for part in self.parts:
            if part.lease is None:
                continue
            renewed = yield Call(functools.partial(leases.renew, part.lease, ttl=ttl))
            if renewed is None:
                _log.warning(
                    "subscription %r: %s lost its lease; standing by", part.key, self.owner
                )
                self._lose(part)
            else:
                part.lease = renewed
        order = self._order()
        for part in order:
            if len(self.held) >= share:
                break
            if part.lease is None:
                yield from self._take(leases, part)
        for part in reversed(order):
            if len(self.held) <= share:
                break
            if part.lease is not None:
                lease = part.lease
                self._lose(part)
                yield Call(functools.partial(leases.release, lease))
        self._renew_at = self.clock.now() + timedelta(seconds=ttl / 3)

    def _renewal_due(self) -> bool:
        """Tell whether the leases want renewing: a third of the lease time went by since."""
        now = self.clock.now()
        # A clock set back (the renewal more than a lease time away) renews too.
        return not now < self._renew_at <= now + timedelta(seconds=self.lease_time)

    def _fill(self, leases: LeaseStore, now: datetime) -> Flow[None]:
        """Between renewals, take the partitions given back or run out, up to the share.

        So a standby takes over as soon as its holder stops, not at its own next renewal.
        It costs a standby one read of the lease store; a worker that holds its share
        reads nothing here.
        """
        if len(self.held) >= self._share_now:
            return
        found: list[Lease | None]
        if self.partitions == 1:
            found = [(yield Call(functools.partial(leases.holder, self.name)))]
        else:
            found = yield Call(functools.partial(leases.leases, f"{self.name}["))
        busy = {lease.name for lease in found if lease is not None and not lease.expired(now)}
        for part in self._order():
            if len(self.held) >= self._share_now:
                break
            if part.lease is None and part.key not in busy:
                yield from self._take(leases, part)

    def _order(self) -> tuple[_Part, ...]:
        return self.parts[self._first :] + self.parts[: self._first]

    def _share(self, leases: LeaseStore) -> Flow[int]:
        """Return how many partitions this worker may hold, with the workers alive now."""
        if self.partitions == 1:
            return 1
        ttl = self.lease_time
        self._member = yield Call(
            functools.partial(leases.acquire, self._member_key(), self.owner, ttl=ttl)
        )
        members: list[Lease] = yield Call(
            functools.partial(leases.leases, f"{self.name}{_MEMBERS}")
        )
        now = self.clock.now()
        live = max(1, sum(1 for m in members if not m.expired(now)))
        return -(-self.partitions // live)

    def _take(self, leases: LeaseStore, part: _Part) -> Flow[None]:
        """Take *part*'s lease if it is free, fence its checkpoint, and take over its work."""
        lease: Lease | None = yield Call(
            functools.partial(leases.acquire, part.key, self.owner, ttl=self.lease_time)
        )
        if lease is None:
            return
        try:
            yield from self.consumer.fence(part.key, lease.token)
        except LeaseLostError:
            return  # a later holder wrote meanwhile: it has the partition
        part.lease, part.position = lease, None
        _log.info("subscription %r: %s took over (token %d)", part.key, self.owner, lease.token)
        yield from self.consumer.taken(part.key)

    def _member_key(self) -> str:
        return f"{self.name}{_MEMBERS}{self.owner}"

    def _fenced(self, part: _Part, error: LeaseLostError) -> None:
        """Stand *part* by: a later lease holder wrote to it. Without leases, refuse to go on.

        A worker without leases writes with token 0, which a checkpoint fenced by a lease
        refuses for ever: standing by would stop the subscription without a word.
        """
        if self.leases is None:
            raise SubscriptionError(
                f"subscription {part.key!r} was written by a worker holding a lease (fencing "
                f"token {error.current}), so its checkpoint refuses this worker, which runs "
                "without leases: give every worker of the subscription the same leases= store"
            ) from error
        _log.warning("subscription %r: %s was fenced off", part.key, self.owner)
        self._lose(part)

    def _lose(self, part: _Part) -> None:
        part.lease = None
        part.position = None

    # -- batches -------------------------------------------------------------------------

    def _batch(self, part: _Part) -> Flow[int]:
        """Handle the next page of *part*; return how many of its events were read.

        0: nothing new, or fenced off. A batch paused to renew the lease counts only what
        it got through.
        """
        while True:
            if part.position is None:
                part.position = yield from self.consumer.load(part.key)
            expected = part.position
            page: list[RecordedEvent] = yield ReadPage(expected + 1, self.batch_size)
            if not page:
                return 0
            events: Sequence[RecordedEvent] = page
            if self.partitions > 1:
                n = self.partitions
                events = [r for r in page if partition_of(r.stream_id, n) == part.index]
            try:
                applied: Applied = yield from self.consumer.apply(
                    part.key,
                    events,
                    through=page[-1].position,
                    expected=expected,
                    token=part.token,
                    pause=None if self.leases is None else self._renewal_due,
                )
            except CheckpointMovedError:
                part.position = None  # another worker got there first: go on from there
                continue
            except LeaseLostError as error:
                self._fenced(part, error)
                return 0
            if applied.position != expected:
                part.position = applied.position
                self.moved.notify()
            if applied.failure is not None:
                yield from self._failed(part, applied, applied.failure)
            # Count what the checkpoint moved past: a paused or failed batch is read again.
            reached = part.position
            if reached is None or reached >= page[-1].position:
                return len(page)
            return sum(1 for r in page if r.position <= reached)

    def _failed(self, part: _Part, applied: Applied, failure: Exception) -> Flow[None]:
        failed = applied.failed
        policy = self.on_error
        if failed is None:  # kept, and failed after: nothing to try again
            if isinstance(policy, Stop):
                raise failure
            _log.error("subscription %r: %s", part.key, failure, exc_info=failure)
            return
        at, count = part.failures
        count = count + 1 if at == failed.position else 1
        part.failures = (failed.position, count)
        if isinstance(policy, Retry) and count <= policy.attempts:
            delay = policy.backoff(count)
            _log.warning(
                "subscription %r: failure %d at position %d, trying again in %gs: %s",
                part.key,
                count,
                failed.position,
                delay,
                failure,
            )
            self.retrying = True
            yield Sleep(delay)
            return
        final = policy.then if isinstance(policy, Retry) else policy
        if not isinstance(final, Park):
            raise failure
        cause = failure.__cause__ if isinstance(failure.__cause__, Exception) else failure
        parked = ParkedEvent.of(part.key, failed, cause, attempts=count, at=self._now())
        try:
            yield from self.consumer.park(
                part.key, parked, expected=applied.position, token=part.token
            )
        except CheckpointMovedError:
            part.position = None
            return
        except LeaseLostError as error:
            self._fenced(part, error)
            return
        part.position = failed.position
        part.failures = (0, 0)
        self.moved.notify()
        _log.error(
            "subscription %r: parked %s at position %d after %d failures: %s",
            part.key,
            failed.type,
            failed.position,
            count,
            parked.error,
        )

    def _now(self) -> datetime:
        return self.clock.now()
