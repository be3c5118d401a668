"""Projection runners: a projection fed by the subscription engine, sync and async.

A runner reads events after the projection's checkpoint in batches, hands each to the
projection's ``@when`` handlers and moves the checkpoint past them, each batch in one
transaction of the checkpoint store. With an :class:`SQLiteProjection` and an
:class:`SQLiteCheckpointStore` in the read model's database, that transaction holds a
batch's writes and its checkpoint: a crash loses both or neither, so no event is applied
twice or skipped. The checkpoint moves by compare-and-set and carries the worker's lease
token, so any number of workers may run one projection: what a worker that lost the race
or its lease did is not kept.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any, Final, TypeVar, final

from ..clock import Clock
from ..errors import (
    CheckpointMovedError,
    ConnectionLostError,
    ProjectionError,
    ProjectionTimeoutError,
    RegistrationError,
)
from ..eventstore import AsyncEventStore, EventStore, RecordedEvent
from ..subscriptions._drive import AsyncDriver, Stopped, SyncDriver
from ..subscriptions._engine import (
    Applied,
    Call,
    Flow,
    Follower,
    Head,
    PartitionStatus,
    Seen,
    Wait,
)
from ..subscriptions._leases import LeaseStore
from ..subscriptions._observe import BatchObserver, check_observer, observed
from ..subscriptions._policy import OnError
from ..subscriptions._records import ParkedEvent
from ._checkpoints import CheckpointStore, CheckpointTransaction, InMemoryCheckpointStore
from ._projection import (
    Handle,
    Progress,
    Projection,
    ProjectionBase,
    WritingProjection,
    dispatcher,
)

__all__ = ["AsyncProjectionRunner", "ProjectionRunner"]

_log = logging.getLogger("busway.projections")

T = TypeVar("T")


def _handling(recorded: RecordedEvent) -> str:
    return (
        f"stopped at position {recorded.position}: handling {recorded.type} (version "
        f"{recorded.version} of stream {recorded.stream_id!r}, event id {recorded.event_id})"
    )


def _failed(name: str, recorded: RecordedEvent, exc: Exception) -> ProjectionError:
    error = ProjectionError(
        name,
        f"{_handling(recorded)} raised {type(exc).__name__}: {exc}. Nothing of this event was "
        "kept and the checkpoint is before it; fix the cause and run the projection again to "
        "resume here",
        position=recorded.position,
        recorded=recorded,
    )
    error.__cause__ = exc
    return error


def _broken(name: str, recorded: RecordedEvent, stored: int, exc: Exception) -> ProjectionError:
    problem = (
        exc.problem
        if isinstance(exc, ProjectionError)
        else f"has a checkpoint store whose savepoint failed ({type(exc).__name__}: {exc})"
    )
    return ProjectionError(
        name,
        f"{_handling(recorded)}, it {problem}. Nothing of this batch was kept: the checkpoint "
        f"stays at {stored}, and the next run starts again at position {stored + 1}",
        position=recorded.position,
        recorded=recorded,
    )


def _connection(projection: WritingProjection[Any], checkpoint: CheckpointTransaction) -> Any:
    """Return the connection *projection* writes through in *checkpoint*'s transaction."""
    conn = checkpoint.connection
    if not isinstance(conn, projection.connection_type):
        raise RegistrationError(
            f"{type(projection).__qualname__} writes through a "
            f"{projection.connection_type.__qualname__} of the runner: give the runner "
            f"checkpoints={projection.checkpoint_store}, so that its writes and its "
            "checkpoint commit together"
        )
    return conn


@final
class _Feed:
    """A projection and its checkpoint store, as the engine's consumer.

    Every method is a flow of one blocking call on the checkpoint store.
    """

    def __init__(
        self,
        name: str,
        projection: ProjectionBase,
        checkpoints: CheckpointStore,
        observer: BatchObserver | None = None,
    ) -> None:
        self.name = name
        self.projection = projection
        self.checkpoints = checkpoints
        self._observer = observer
        # A WritingProjection writes only through the transaction's connection, whose
        # savepoints undo those writes: its batch runs in one savepoint, and after a failure
        # the events before it run again. What a projection in memory did stays done, so
        # each of its events runs in a savepoint of its own.
        self._undone = isinstance(projection, WritingProjection)

    def load(self, key: str) -> Flow[int]:
        position: int = yield Call(functools.partial(self.checkpoints.load, key))
        return position

    def fence(self, key: str, token: int) -> Flow[None]:
        yield Call(functools.partial(self._fence, key, token))

    def _fence(self, key: str, token: int) -> None:
        with self.checkpoints.transaction(key) as checkpoint:
            checkpoint.fence(token)

    def taken(self, key: str) -> Flow[None]:
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
        flow = self._call(key, events, through, expected, token, pause=pause)
        if self._observer is not None:  # without one, a batch is handled as if none existed
            flow = observed(self._observer, self.name, key, events, flow)
        return (yield from flow)

    def _call(
        self,
        key: str,
        events: Sequence[RecordedEvent],
        through: int,
        expected: int,
        token: int,
        *,
        pause: Callable[[], bool] | None,
    ) -> Flow[Applied]:
        applied: Applied = yield Call(
            functools.partial(self._apply, key, events, through, expected, token, pause=pause)
        )
        return applied

    def _open(self, checkpoint: CheckpointTransaction, key: str, expected: int, token: int) -> None:
        checkpoint.fence(token)
        stored = checkpoint.load()
        if stored != expected:
            raise CheckpointMovedError(key, expected, stored)

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
        with self.checkpoints.transaction(key) as checkpoint:
            self._open(checkpoint, key, expected, token)
            run = dispatcher(self.projection, checkpoint.connection)
            if self._undone:
                return self._at_once(checkpoint, run, events, through, expected, pause=pause)
            return self._one_by_one(checkpoint, run, events, through, expected, pause=pause)

    def _at_once(
        self,
        checkpoint: CheckpointTransaction,
        run: Handle,
        events: Sequence[RecordedEvent],
        through: int,
        expected: int,
        *,
        pause: Callable[[], bool] | None,
    ) -> Applied:
        """Handle the batch in one savepoint; after a failure, the events before it again.

        The savepoint undoes every write of the batch when a handler raises; the events
        before the failing one, handled again on the read model as it was, write what they
        wrote the first time, so the checkpoint can end just before the failing event.
        """
        failure: ProjectionError | None = None
        failed: RecordedEvent | None = None
        last = through
        while events:
            passed, error = self._try(checkpoint, run, events, expected, pause=pause)
            if error is None:
                if passed < len(events):  # paused: the rest, and any failure, come next batch
                    failure, failed, last = None, None, events[passed - 1].position
                break
            # A handler that fails only now and then may fail earlier the second time:
            # then that event is the one the checkpoint stops before.
            failed = events[passed]
            failure = _failed(self.name, failed, error)
            last = failed.position - 1
            events = events[:passed]
        if last != expected:
            checkpoint.save(last)
        return Applied(last, failure, failed)

    def _try(
        self,
        checkpoint: CheckpointTransaction,
        run: Handle,
        events: Sequence[RecordedEvent],
        expected: int,
        *,
        pause: Callable[[], bool] | None,
    ) -> tuple[int, Exception | None]:
        """Run the handlers of *events* in one savepoint, checking the transaction after each.

        Return how many events passed, and what the handler of the next one raised, which
        left the savepoint and undid them all; or, if *pause* said so after an event but the
        last, how many passed up to there, kept. What the store raises of its own ends the
        batch, as in :meth:`_handle`.
        """
        check = checkpoint.check
        final = events[-1]
        passed = 0
        raised: Exception | None = None
        try:
            with checkpoint.savepoint():
                for recorded in events:
                    try:
                        run(recorded)
                    except Exception as exc:
                        raised = exc
                        raise
                    check()
                    passed += 1
                    if pause is not None and recorded is not final and pause():
                        break
        except ConnectionLostError:
            raise  # not the handlers' doing: the worker tries the batch again
        except Exception as exc:
            if exc is not raised:
                at = events[min(passed, len(events) - 1)]
                raise _broken(self.name, at, expected, exc) from exc
            return passed, exc
        return passed, None

    def _one_by_one(
        self,
        checkpoint: CheckpointTransaction,
        run: Handle,
        events: Sequence[RecordedEvent],
        through: int,
        expected: int,
        *,
        pause: Callable[[], bool] | None,
    ) -> Applied:
        """Handle each event in a savepoint of its own, up to the first that fails.

        For a read model that nothing undoes (a projection in memory): each event is kept
        as its handlers end, and so is the checkpoint past it.
        """
        failure: ProjectionError | None = None
        failed: RecordedEvent | None = None
        last = expected
        kept = True
        final = events[-1] if events else None
        try:
            for recorded in events:
                try:
                    error = self._handle(checkpoint, run, recorded)
                except Exception as exc:
                    # The store's own error: its transaction can no longer be trusted
                    # (a handler ended it, say), so nothing is saved, and leaving the
                    # block with the error has the store undo what is left of it.
                    kept = False
                    raise _broken(self.name, recorded, expected, exc) from exc
                if error is not None:
                    failure, failed = _failed(self.name, recorded, error), recorded
                    last = recorded.position - 1
                    break
                last = recorded.position
                if pause is not None and recorded is not final and pause():
                    break
            else:
                last = through
        finally:
            # Also when the process is told to stop: a store that cannot undo the
            # read model's changes must not apply them again.
            if kept and last != expected:
                checkpoint.save(last)
        return Applied(last, failure, failed)

    def _handle(
        self, checkpoint: CheckpointTransaction, run: Handle, recorded: RecordedEvent
    ) -> Exception | None:
        """Run the event's handlers in a savepoint; return the exception one of them raised.

        What the savepoint raises of its own passes through.
        """
        raised: BaseException | None = None
        try:
            with checkpoint.savepoint():
                try:
                    run(recorded)
                except BaseException as exc:
                    raised = exc
                    raise
        except Exception as exc:
            if exc is not raised:
                raise
            return exc
        return None

    def park(self, key: str, parked: ParkedEvent, *, expected: int, token: int) -> Flow[None]:
        yield Call(functools.partial(self._park, key, parked, expected, token))

    def _park(self, key: str, parked: ParkedEvent, expected: int, token: int) -> None:
        with self.checkpoints.transaction(key) as checkpoint:
            self._open(checkpoint, key, expected, token)
            checkpoint.park(parked)
            checkpoint.save(parked.position)

    def parked(self, key: str) -> Flow[list[ParkedEvent]]:
        found: list[ParkedEvent] = yield Call(functools.partial(self.checkpoints.parked, key))
        return found

    def replay(self, key: str, recorded: RecordedEvent, *, token: int) -> Flow[Exception | None]:
        failure: Exception | None = yield Call(
            functools.partial(self._replay, key, recorded, token)
        )
        return failure

    def _replay(self, key: str, recorded: RecordedEvent, token: int) -> Exception | None:
        with self.checkpoints.transaction(key) as checkpoint:
            checkpoint.fence(token)
            run = dispatcher(self.projection, checkpoint.connection)
            error = self._handle(checkpoint, run, recorded)
            if error is None:
                checkpoint.unpark(recorded.position)
            return error

    def reset(self, keys: Sequence[str], tokens: Sequence[int], stale: Sequence[str]) -> None:
        """Empty the read model and put every checkpoint back to 0, in one transaction.

        The checkpoints *stale* of another number of partitions go back to 0 too, and what
        was parked on any of them is dropped: the replay that follows handles it again.
        """
        fenced: list[tuple[str, int | None]] = [*zip(keys, tokens, strict=True)]
        with contextlib.ExitStack() as stack:
            for n, (key, token) in enumerate(fenced + [(key, None) for key in stale]):
                checkpoint = stack.enter_context(self.checkpoints.transaction(key))
                if token is not None:
                    checkpoint.fence(token)
                if n == 0:
                    if isinstance(self.projection, WritingProjection):
                        self.projection.reset(_connection(self.projection, checkpoint))
                    elif isinstance(self.projection, Projection):
                        self.projection.reset()
                for parked in self.checkpoints.parked(key):
                    checkpoint.unpark(parked.position)
                checkpoint.save(0)


_RUN_ONCE: Final = object()
"""The effect of handling one batch, as the runner's own :meth:`run_once` does."""


class _Runner:
    """What both runners check, hold and decide without I/O."""

    _follower: Follower

    def __init__(
        self,
        projection: Projection | WritingProjection[Any],
        *,
        checkpoints: CheckpointStore | None,
        batch_size: int,
        poll_interval: float,
        leases: LeaseStore | None,
        lease: float,
        partitions: int,
        owner: str | None,
        on_error: OnError | None,
        clock: Clock | None,
        observer: BatchObserver | None,
    ) -> None:
        name = getattr(projection, "name", None)
        if not isinstance(projection, ProjectionBase):
            raise RegistrationError(
                f"a runner runs a Projection or SQLiteProjection (or another WritingProjection), "
                f"not {projection!r}"
            )
        if not isinstance(name, str) or not name:
            raise RegistrationError(
                f"{type(projection).__qualname__} needs a name to key its checkpoint: set "
                "name = '...' in its class body"
            )
        if checkpoints is None:
            checkpoints = InMemoryCheckpointStore()
        elif not isinstance(checkpoints, CheckpointStore):
            raise RegistrationError(
                f"checkpoints= takes a CheckpointStore, such as SQLiteCheckpointStore(path), "
                f"got {checkpoints!r}"
            )
        self.projection = projection
        self.checkpoints = checkpoints
        self.name = name
        self._feed = _Feed(name, projection, checkpoints, check_observer(observer))
        self._follower = Follower(
            self._feed,
            name=name,
            partitions=partitions,
            leases=leases,
            lease=lease,
            owner=owner,
            batch_size=batch_size,
            poll_interval=poll_interval,
            on_error=on_error,
            clock=clock,
        )
        self._active = False
        self._error: BaseException | None = None
        # Checkpoints of another number of partitions, with their positions: the runner
        # refuses to run while one has progress, until a rebuild sets them back to 0.
        self._stale = {
            key: checkpoints.load(key) for key in self._follower.stale(checkpoints.names())
        }
        if isinstance(projection, WritingProjection):
            with checkpoints.transaction(self._follower.parts[0].key) as checkpoint:
                projection.setup(_connection(projection, checkpoint))
        for part in self._follower.parts:
            part.position = checkpoints.load(part.key)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} at position {self.position}>"

    @property
    def batch_size(self) -> int:
        """How many stored events a batch reads at most."""
        return self._follower.batch_size

    @property
    def poll_interval(self) -> float:
        """The longest a caught-up runner sleeps before it looks for other processes' events."""
        return self._follower.poll_interval

    @property
    def owner(self) -> str:
        """The worker id this runner takes leases under."""
        return self._follower.owner

    @property
    def position(self) -> int:
        """The checkpoint: every event up to this position is in the read model."""
        return self._follower.position

    @property
    def error(self) -> BaseException | None:
        """Why the background run stopped, if it failed; cleared when a run starts."""
        return self._error

    @property
    def is_running(self) -> bool:
        """Whether a thread or an asyncio task is following the store."""
        return self._active

    def _begin(self) -> None:
        if self._active:
            raise ProjectionError(self.name, "is already running; stop it first")
        self._follower.check_layout(self._stale)
        self._active = True
        self._error = None

    def _end(self, error: BaseException | None) -> None:
        if error is not None:
            self._error = error
            if isinstance(error, ProjectionError):
                _log.error("%s", error)
            else:
                _log.error("projection %r stopped: %r", self.name, error)
        self._active = False
        self._follower.moved.notify()

    # -- flows ---------------------------------------------------------------------------

    def _checked(self, flow: Flow[T]) -> Flow[T]:
        """Run *flow*, unless the checkpoints show another number of partitions."""
        self._follower.check_layout(self._stale)
        return (yield from flow)

    def _catch_up(self, progress: Progress | None) -> Flow[int]:
        self._follower.check_layout(self._stale)
        head = 0
        if progress is not None:
            head = yield Head()
            progress(self.position, max(head, self.position))
        total = 0
        while (n := (yield from self._follower.step())) or self._follower.retrying:
            total += n
            if progress is not None:
                head = max(head, self.position)
                progress(self.position, head)
        return total

    def _rebuild(self, progress: Progress | None) -> Flow[int]:
        follower = self._follower
        if follower.leases is not None:
            yield from follower.claim_all()
        names: list[str] = yield Call(self.checkpoints.names)
        parts = follower.parts
        keys, tokens = [p.key for p in parts], [p.token for p in parts]
        yield Call(functools.partial(self._feed.reset, keys, tokens, follower.stale(names)))
        self._stale = {}
        follower.reset()
        return (yield from self._catch_up(progress))

    def _waiting(self, position: int, timeout: float) -> Flow[None]:
        """Wait until every event up to *position* is in the read model.

        While the runner follows the store, wait on its progress (reading the checkpoints
        of the partitions other workers hold); else catch up here (the ``RunOnce`` effect),
        waiting for the store's wake-up whenever nothing is left.
        """
        deadline = time.monotonic() + timeout
        follower = self._follower
        while self.position < position:
            remaining = self._check_wait(position, timeout, deadline)
            if self._active:
                seen = follower.moved.count
                if len(follower.held) < len(follower.parts):
                    yield from follower.refresh()
                if self.position < position and self._active:
                    yield Wait(seen, min(remaining, follower.idle_timeout()), follower.moved)
                continue
            before: int = yield Seen()
            read: int = yield _RUN_ONCE
            if read == 0 and self.position < position:
                yield Wait(before, min(follower.idle_timeout(), remaining))

    def _check_wait(self, position: int, timeout: float, deadline: float) -> float:
        if self._error is not None:
            raise self._error
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise ProjectionTimeoutError(self.name, position, self.position, timeout)
        return remaining


@final
class ProjectionRunner(_Runner):
    """Feeds a projection the events after its checkpoint, a batch at a time.

    Run it once (:meth:`run_once`), until it is caught up (:meth:`run_until_caught_up`), or
    until stopped, on a thread (:meth:`start`, :meth:`stop`, :meth:`running`) or as an
    asyncio task (:meth:`run_async`). :meth:`wait_for` waits until a position is in the read
    model. A handler that raises stops the projection before that event, with a
    :class:`~busway.errors.ProjectionError` (or, with *on_error*, retries or parks it);
    the next run starts with that event again.

    Checkpoints default to memory. An :class:`SQLiteProjection` needs an
    :class:`SQLiteCheckpointStore` in its database (or any checkpoint store whose
    transactions give an :class:`sqlite3.Connection`), whose connection its handlers get;
    a ``busway.postgres.PostgresProjection`` likewise a ``PostgresCheckpointStore``.
    Several workers may run one projection: give each the same *leases* store, and at most
    one at a time runs each of its *partitions*; the others stand by and take over within
    *lease* seconds when it dies. A caught-up runner wakes as soon as an event is appended
    in this process, and looks every *poll_interval* seconds for those of other processes.
    An *observer* (``busway.otel.batches()``, say) sees each batch as it is handled.
    """

    def __init__(
        self,
        store: EventStore,
        projection: Projection | WritingProjection[Any],
        *,
        checkpoints: CheckpointStore | None = None,
        batch_size: int = 100,
        poll_interval: float = 0.1,
        leases: LeaseStore | None = None,
        lease: float = 5.0,
        partitions: int = 1,
        owner: str | None = None,
        on_error: OnError | None = None,
        clock: Clock | None = None,
        observer: BatchObserver | None = None,
    ) -> None:
        if not isinstance(store, EventStore):
            raise RegistrationError(
                f"ProjectionRunner follows an EventStore, got {store!r}"
                + (
                    "; for an AsyncEventStore use AsyncProjectionRunner"
                    if isinstance(store, AsyncEventStore)
                    else ""
                )
            )
        super().__init__(
            projection,
            checkpoints=checkpoints,
            batch_size=batch_size,
            poll_interval=poll_interval,
            leases=leases,
            lease=lease,
            partitions=partitions,
            owner=owner,
            on_error=on_error,
            clock=clock,
            observer=observer,
        )
        self.store = store
        self._driver = SyncDriver(store)
        self._work = threading.RLock()  # one batch at a time, whoever runs it
        self._state = threading.Lock()
        self._thread: threading.Thread | None = None

    def lag(self) -> int:
        """Return how many positions the read model is behind the store's head (0: caught up).

        Positions are not always consecutive, so this is an upper bound on events to go.
        """
        return max(0, self.store.head_position() - self.position)

    def status(self) -> list[PartitionStatus]:
        """Return each partition's position, lag, lease holder and parked events."""
        return self._driver.run(self._follower.status())

    def parked(self) -> list[ParkedEvent]:
        """Return the events the runner set aside (``on_error=Park()``), by position."""
        return self._driver.run(self._follower.parked())

    def replay_parked(self, position: int | None = None) -> int:
        """Run the handlers of parked events again (all, or the one at *position*).

        An event whose handlers now pass is unparked, in the same transaction as their
        writes; one that fails again stays parked. Return how many passed.
        """
        with self._work:
            return SyncDriver(self.store).run(self._checked(self._follower.replay(position)))

    # -- running -------------------------------------------------------------------------

    def run_once(self) -> int:
        """Handle the next batch of events, if any; return how many were read."""
        with self._work:
            return SyncDriver(self.store).run(self._checked(self._follower.step()))

    def run_until_caught_up(self, *, progress: Progress | None = None) -> int:
        """Handle batches until none is left; return how many events were read.

        *progress*, if given, is called with ``(position, head)`` before the first batch
        and after each one.
        """
        with self._work:
            return SyncDriver(self.store).run(self._catch_up(progress))

    def rebuild(self, *, progress: Progress | None = None) -> int:
        """Reset the read model and the checkpoint, then replay every event into it.

        The projection's ``reset`` hook clears the read model; with SQLite, in the same
        transaction as the checkpoint's return to 0. With leases, the runner takes every
        partition first (stop the other workers). Return how many events were read.
        """
        with self._work:
            return SyncDriver(self.store).run(self._rebuild(progress))

    # -- on a thread ---------------------------------------------------------------------

    def start(self) -> None:
        """Follow the store on a background thread until :meth:`stop`.

        If a batch fails the thread ends; :attr:`error` says why and :meth:`wait_for`
        raises it. Fix the cause and call :meth:`start` again to resume.
        """
        with self._state:
            self._begin()
        driver = self._driver = SyncDriver(self.store, lock=self._work)
        self._thread = threading.Thread(
            target=self._loop, args=(driver,), name=f"busway-projection-{self.name}", daemon=True
        )
        self._thread.start()

    def _loop(self, driver: SyncDriver) -> None:
        error: BaseException | None = None
        try:
            with self._work:
                driver.run(self._follower.follow())
        except Stopped:
            pass
        except Exception as exc:
            error = exc
        finally:
            try:
                driver.run(self._follower.release())
            except Exception as exc:  # the run's own error matters more
                _log.warning("projection %r could not release its leases: %r", self.name, exc)
            self._end(error)

    def stop(self, timeout: float | None = None) -> None:
        """Ask the background thread to stop after its batch, and wait for it to end.

        Its leases are given back, so that a standby takes over at once.
        """
        self._driver.stop()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    @contextlib.contextmanager
    def running(self) -> Iterator[ProjectionRunner]:
        """Run on a background thread for the duration of the block.

        If the thread failed and the block did not, the failure is raised on leaving it.
        """
        self.start()
        try:
            yield self
        finally:
            self.stop()
        if self._error is not None:
            raise self._error

    # -- under asyncio -------------------------------------------------------------------

    async def run_async(self, *, stop: asyncio.Event | None = None) -> None:
        """Follow the store until *stop* is set or the task is cancelled.

        Batches run on a worker thread, so the event loop never waits on the database.
        Once *stop* is set, the run ends after the batch in progress; a cancellation ends
        it at once, while that batch completes or rolls back whole on its thread. A
        failing batch ends the run with its error.
        """
        self._begin()
        error: BaseException | None = None
        driver = AsyncDriver(self.store)
        try:
            await _until(stop, driver, self._follower.follow())
        except Exception as exc:
            error = exc
            raise
        finally:
            try:
                await driver.run(self._follower.release())
            finally:
                self._end(error)

    # -- waiting for one's own writes ----------------------------------------------------

    def wait_for(self, position: int, timeout: float = 10.0) -> None:
        """Return once every event up to *position* is in the read model.

        Use it after a write, with the store's head position then, to read your own write.
        If the runner is not running, this call catches up itself. Raise
        :class:`~busway.errors.ProjectionTimeoutError` after *timeout* seconds, and the
        runner's error if it stopped on one.
        """
        SyncDriver(self.store, lambda _: self.run_once()).run(self._waiting(position, timeout))

    async def wait_for_async(self, position: int, timeout: float = 10.0) -> None:
        """Return once every event up to *position* is in the read model (see wait_for)."""

        async def run_once(_: object) -> int:
            return await asyncio.to_thread(self.run_once)

        await AsyncDriver(self.store, run_once).run(self._waiting(position, timeout))


async def _follow(driver: AsyncDriver, flow: Flow[None]) -> None:
    """Drive *flow* until it ends, or until it is asked to stop at one of its waits."""
    with contextlib.suppress(Stopped):
        await driver.run(flow)


async def _until(stop: asyncio.Event | None, driver: AsyncDriver, flow: Flow[None]) -> None:
    """Drive *flow* until it ends or *stop* is set; then let it end at its next wait.

    If the caller is cancelled, so is the flow, at once.
    """
    task = asyncio.ensure_future(_follow(driver, flow))
    try:
        if stop is not None:
            stopper = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopper.cancel()
            driver.stop()
        await task
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@final
class AsyncProjectionRunner(_Runner):
    """The async twin of :class:`ProjectionRunner`, following an ``AsyncEventStore``.

    The same batches, checkpoints, leases, partitions and failure policy, awaited: events
    are read from the async store, and each batch's transaction runs on a worker thread, so
    the event loop never waits on the database. :meth:`start` follows the store in a task;
    ``async with runner.running():`` does so for a block.
    """

    def __init__(
        self,
        store: AsyncEventStore | EventStore,
        projection: Projection | WritingProjection[Any],
        *,
        checkpoints: CheckpointStore | None = None,
        batch_size: int = 100,
        poll_interval: float = 0.1,
        leases: LeaseStore | None = None,
        lease: float = 5.0,
        partitions: int = 1,
        owner: str | None = None,
        on_error: OnError | None = None,
        clock: Clock | None = None,
        observer: BatchObserver | None = None,
    ) -> None:
        if not isinstance(store, AsyncEventStore | EventStore):
            raise RegistrationError(
                f"AsyncProjectionRunner follows an AsyncEventStore (or an EventStore), got "
                f"{store!r}"
            )
        super().__init__(
            projection,
            checkpoints=checkpoints,
            batch_size=batch_size,
            poll_interval=poll_interval,
            leases=leases,
            lease=lease,
            partitions=partitions,
            owner=owner,
            on_error=on_error,
            clock=clock,
            observer=observer,
        )
        self.store = store
        self._work = asyncio.Lock()
        self._driver = self._new_driver()
        self._task: asyncio.Task[None] | None = None
        self._following = self._driver

    def _new_driver(self) -> AsyncDriver:
        inline = isinstance(self.checkpoints, InMemoryCheckpointStore)
        return AsyncDriver(self.store, inline=inline, lock=self._work)

    async def lag(self) -> int:
        """Return how many positions the read model is behind the store's head (0: caught up)."""
        head: int = await self._driver.run(_head())
        return max(0, head - self.position)

    async def status(self) -> list[PartitionStatus]:
        """Return each partition's position, lag, lease holder and parked events."""
        return await self._driver.run(self._follower.status())

    async def parked(self) -> list[ParkedEvent]:
        """Return the events the runner set aside (``on_error=Park()``), by position."""
        return await self._driver.run(self._follower.parked())

    async def replay_parked(self, position: int | None = None) -> int:
        """Run the handlers of parked events again; return how many passed (see the sync twin)."""
        async with self._work:
            return await self._driver.run(self._checked(self._follower.replay(position)))

    async def run_once(self) -> int:
        """Handle the next batch of events, if any; return how many were read."""
        async with self._work:
            return await self._driver.run(self._checked(self._follower.step()))

    async def run_until_caught_up(self, *, progress: Progress | None = None) -> int:
        """Handle batches until none is left; return how many events were read."""
        async with self._work:
            return await self._driver.run(self._catch_up(progress))

    async def rebuild(self, *, progress: Progress | None = None) -> int:
        """Reset the read model and the checkpoint, then replay every event into it."""
        async with self._work:
            return await self._driver.run(self._rebuild(progress))

    def start(self) -> None:
        """Follow the store in a task of the running loop until :meth:`stop`."""
        loop = asyncio.get_running_loop()  # raises outside a loop, before anything changed
        self._begin()
        self._following = driver = self._new_driver()
        self._task = loop.create_task(self._loop(driver), name=f"busway-projection-{self.name}")

    async def _loop(self, driver: AsyncDriver) -> None:
        error: BaseException | None = None
        try:
            async with self._work:
                await _follow(driver, self._follower.follow())
        except Exception as exc:
            error = exc
        finally:
            try:
                await asyncio.shield(driver.run(self._follower.release()))
            except Exception as exc:
                _log.warning("projection %r could not release its leases: %r", self.name, exc)
            finally:
                self._end(error)

    async def stop(self) -> None:
        """Stop following the store after the batch in progress, and wait for the task to end.

        Its leases are given back, so that a standby takes over at once. Cancelling the
        task instead ends it at once, while the batch completes or rolls back whole on its
        thread.
        """
        task, self._task = self._task, None
        if task is not None:
            self._following.stop()
            await asyncio.wait({task})

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[AsyncProjectionRunner]:
        """Follow the store in a task for the duration of the block; raise its failure after."""
        self.start()
        try:
            yield self
        finally:
            await self.stop()
        if self._error is not None:
            raise self._error

    async def wait_for(self, position: int, timeout: float = 10.0) -> None:
        """Return once every event up to *position* is in the read model.

        If the runner is not running, this call catches up itself. Raise
        :class:`~busway.errors.ProjectionTimeoutError` after *timeout* seconds, and the
        runner's error if it stopped on one.
        """

        async def run_once(_: object) -> int:
            return await self.run_once()

        inline = isinstance(self.checkpoints, InMemoryCheckpointStore)
        driver = AsyncDriver(self.store, run_once, inline=inline)
        await driver.run(self._waiting(position, timeout))


def _head() -> Flow[int]:
    head: int = yield Head()
    return head
