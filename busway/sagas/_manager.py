"""Saga managers and their background runners: thin sync and async drivers over ``_core``.

Each public operation is a flow of :class:`~busway.sagas._core.Core`; a manager only says
how to perform its effects (on the saga store, the command bus, the event store and its
lock), plainly or awaited, and hands the flow to :func:`busway._effects.run` or
:func:`~busway._effects.arun`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import threading
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Generic, Self, TypeVar, final

from .._async_buses import AsyncCommandBus, AsyncEventBus
from .._buses import CommandBus, EventBus
from .._dispatch import Subscription
from .._effects import arun, run
from ..clock import Clock, SystemClock
from ..errors import InvalidArgumentError, RegistrationError
from ..eventstore import AsyncEventStore, EventStore, EventTypes
from ..subscriptions._drive import AsyncDriver, Stopped, SyncDriver
from ..subscriptions._engine import Follower, PartitionStatus
from ..subscriptions._leases import LeaseStore
from ..subscriptions._observe import BatchObserver, check_observer
from ..subscriptions._policy import OnError
from ..subscriptions._records import ParkedEvent
from ._core import PAGE, Acquire, Core, Effect, Flow, Send
from ._feed import SagaFeed
from ._memory import InMemorySagaStore
from ._saga import Saga
from ._store import SagaStore

__all__ = [
    "AsyncBackgroundRunner",
    "AsyncSagaManager",
    "Attachment",
    "BackgroundRunner",
    "SagaManager",
]

logger = logging.getLogger("busway.sagas")

T = TypeVar("T")
S = TypeVar("S", bound=Saga)
M = TypeVar("M", "SagaManager", "AsyncSagaManager")


def _roots(types: Iterable[type]) -> tuple[type, ...]:
    """Keep the classes with no base class among *types*: a subscription covers subclasses."""
    wanted = tuple(types)
    return tuple(t for t in wanted if not any(o is not t and issubclass(t, o) for o in wanted))


@final
class Attachment:
    """The event bus subscriptions that feed a saga manager; :meth:`detach` ends them."""

    subscriptions: tuple[Subscription, ...]

    def __init__(self, subscriptions: Iterable[Subscription]) -> None:
        self.subscriptions = tuple(subscriptions)

    @property
    def active(self) -> bool:
        """Whether the manager still gets the bus's events."""
        return any(s.active for s in self.subscriptions)

    def detach(self) -> None:
        """Stop feeding the manager; calling it again does nothing."""
        for subscription in self.subscriptions:
            subscription.unsubscribe()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.detach()

    def __repr__(self) -> str:
        names = ", ".join(s.event_type.__qualname__ for s in self.subscriptions)
        return f"<Attachment {names} ({'active' if self.active else 'detached'})>"


class _Manager:
    """What both managers hold, check and answer without I/O."""

    _bus_kind: type
    #: The event stores the manager can catch up with.
    _feeds: tuple[type, ...]
    types: EventTypes

    def __init__(
        self,
        sagas: tuple[type[Saga], ...],
        *,
        store: SagaStore,
        commands: CommandBus | AsyncCommandBus,
        clock: Clock | None,
        types: EventTypes | None,
    ) -> None:
        want = self._bus_kind.__name__
        if not isinstance(commands, self._bus_kind):
            raise RegistrationError(
                f"{type(self).__name__}(commands=...) takes the {want} that sagas send "
                f"their commands to, got {commands!r}"
            )
        if not isinstance(store, SagaStore):
            raise RegistrationError(
                f"{type(self).__name__}(store=...) takes a saga store such as "
                f"InMemorySagaStore() or SQLiteSagaStore(path), got {store!r}"
            )
        if clock is not None and not isinstance(clock, Clock):
            raise RegistrationError(
                f"{type(self).__name__}(clock=...) takes a clock with a now() method, such as "
                f"SystemClock() or FakeClock(), got {clock!r}"
            )
        if types is not None and not isinstance(types, EventTypes):
            raise RegistrationError(
                f"{type(self).__name__}(types=...) takes an EventTypes, got {types!r}"
            )
        self.store = store
        self.commands = commands
        self.clock: Clock = SystemClock() if clock is None else clock
        self.types = EventTypes() if types is None else types
        self._core = Core(
            sagas,
            types=self.types,
            clock=self.clock,
            command_types=lambda: commands.registered().keys(),
        )

    @property
    def event_types(self) -> tuple[type, ...]:
        """The event classes the sagas start on or handle; feed the manager those."""
        return self._core.event_types()

    def __repr__(self) -> str:
        names = ", ".join(spec.cls.__name__ for spec in self._core.specs)
        return f"<{type(self).__name__} {names} on {self.store!r}>"

    def _feed(self, events: object, subscription: object) -> None:
        """Check what a catch-up is given: a store to read, and a subscription name."""
        if not isinstance(events, self._feeds):
            kinds = " or ".join(k.__name__ for k in self._feeds)
            raise RegistrationError(
                f"{type(self).__name__} catches up with an {kinds} (such as "
                f"SQLiteEventStore(path)), got {events!r}"
            )
        if not isinstance(subscription, str) or not subscription:
            raise InvalidArgumentError(
                "subscription", subscription, "a non-empty str naming the checkpoint"
            )

    def _follower(
        self,
        subscription: str,
        *,
        on_error: OnError | None = None,
        leases: LeaseStore | None = None,
        lease: float = 5.0,
        partitions: int = 1,
        owner: str | None = None,
        poll_interval: float = 0.5,
        observer: BatchObserver | None = None,
    ) -> Follower:
        return Follower(
            SagaFeed(self._core, subscription, check_observer(observer)),
            name=subscription,
            partitions=partitions,
            leases=leases,
            lease=lease,
            owner=owner,
            batch_size=PAGE,
            poll_interval=poll_interval,
            on_error=on_error,
            clock=self.clock,
        )

    def _attach(self, bus: EventBus | AsyncEventBus, want: type, handler: Any) -> Attachment:
        if not isinstance(bus, want):
            raise RegistrationError(
                f"{type(self).__name__}.attach() takes an {want.__name__}, got {bus!r}"
            )
        return Attachment(bus.subscribe(t, handler) for t in _roots(self.event_types))


@final
class SagaManager(_Manager):
    """Runs stateful sagas: routes events to them, stores them, then sends their commands.

    For each event, every saga method it routes to runs, and all the new states — with the
    commands they issued, waiting in each saga's outbox — are committed in one transaction.
    Only then are the commands sent, each leaving the outbox once settled. A crash in between
    leaves them there for :meth:`recover`, so commands are issued at least once: make their
    handlers idempotent.
    """

    _bus_kind = CommandBus
    _feeds = (EventStore,)

    def __init__(
        self,
        *sagas: type[Saga],
        store: SagaStore,
        commands: CommandBus,
        clock: Clock | None = None,
        types: EventTypes | None = None,
    ) -> None:
        super().__init__(sagas, store=store, commands=commands, clock=clock, types=types)
        self._execute = commands.execute
        self._lock = threading.RLock()

    def _perform(self, effect: Effect) -> Any:
        match effect:
            case Send(command):
                return self._execute(command)
            case Acquire():
                self._lock.acquire()
                return self._lock.release
            case _:
                return effect.perform(self.store)

    def _run(self, flow: Flow[T]) -> T:
        return run(flow, self._perform)

    def handle(self, event: object) -> bool:
        """Deliver *event* to the sagas it starts or is associated with.

        Return True once it is handled. While the manager is busy (sending a command, say,
        whose handler waits for the thread that calls this), the event is queued instead
        and this returns False at once: the busy thread handles it before its own call
        returns, and raises its failures there.
        """
        return self._run(self._core.receive(event))

    def attach(self, bus: EventBus) -> Attachment:
        """Subscribe the manager to *bus* for every event class its sagas take."""
        return self._attach(bus, EventBus, self.handle)

    def fire_due(self) -> int:
        """Deliver every deadline due by the clock to its saga, each once; return how many."""
        return self._run(self._core.exclusive(self._core.fire_due()))

    def recover(self) -> int:
        """Send the commands left in outboxes by a stop; return how many sagas had some.

        Call it when a worker starts (the background runner does): it sends again any
        command whose settling was not stored, so such a command may arrive twice.
        """
        return self._run(self._core.exclusive(self._core.recover()))

    def catch_up(
        self,
        events: EventStore,
        *,
        subscription: str = "sagas",
        on_error: OnError | None = None,
        observer: BatchObserver | None = None,
    ) -> int:
        """Handle the events stored after the *subscription*'s checkpoint; return how many.

        Each event's saga changes are committed with the checkpoint's move to its position,
        in one transaction, and only if no other worker moved it first, so no event is
        handled twice or skipped, after a crash or beside other workers. *on_error* says
        what to do when a saga fails on an event (default: stop there and raise). An
        *observer* (``busway.otel.batches()``, say) sees each batch, with the commands its
        sagas send, as it is handled.
        """
        self._feed(events, subscription)
        follower = self._follower(subscription, on_error=on_error, observer=observer)
        return SyncDriver(events, self._perform).run(follower.catch_up())

    def find(self, saga_class: type[S], key: str, value: object) -> list[S]:
        """Return the state of the live *saga_class* sagas associated with ``(key, value)``."""
        return self._run(self._core.find(saga_class, key, value))

    def background(
        self,
        *,
        interval: float = 1.0,
        events: EventStore | None = None,
        subscription: str = "sagas",
        report: Callable[[Exception], object] | None = None,
        on_error: OnError | None = None,
        leases: LeaseStore | None = None,
        lease: float = 5.0,
        partitions: int = 1,
        owner: str | None = None,
        observer: BatchObserver | None = None,
    ) -> BackgroundRunner:
        """Return a runner that works the manager on a thread (start it, or use ``with``)."""
        return BackgroundRunner(
            self,
            interval=interval,
            events=events,
            subscription=subscription,
            report=report,
            on_error=on_error,
            leases=leases,
            lease=lease,
            partitions=partitions,
            owner=owner,
            observer=observer,
        )


@final
class AsyncSagaManager(_Manager):
    """The async twin of :class:`SagaManager`: the same logic, awaited.

    Commands go to an :class:`~busway.AsyncCommandBus`; the saga store is called on a
    worker thread (the in-memory store, which never waits, inline).
    """

    _bus_kind = AsyncCommandBus
    _feeds = (EventStore, AsyncEventStore)

    def __init__(
        self,
        *sagas: type[Saga],
        store: SagaStore,
        commands: AsyncCommandBus,
        clock: Clock | None = None,
        types: EventTypes | None = None,
    ) -> None:
        super().__init__(sagas, store=store, commands=commands, clock=clock, types=types)
        self._execute: Callable[[object], Awaitable[Any]] = commands.execute
        self._lock = asyncio.Lock()
        self._inline = isinstance(store, InMemorySagaStore)

    async def _perform(self, effect: Effect) -> Any:
        match effect:
            case Send(command):
                return await self._execute(command)
            case Acquire():
                await self._lock.acquire()
                return self._lock.release
            case _ if self._inline:
                return effect.perform(self.store)
            case _:
                return await asyncio.to_thread(effect.perform, self.store)

    def _run(self, flow: Flow[T]) -> Awaitable[T]:
        return arun(flow, self._perform)

    async def handle(self, event: object) -> bool:
        """Deliver *event* to the sagas it starts or is associated with.

        Return True once it is handled, or False at once if it was queued for the task
        that keeps the manager busy, as :meth:`SagaManager.handle` does.
        """
        return await self._run(self._core.receive(event))

    def attach(self, bus: AsyncEventBus) -> Attachment:
        """Subscribe the manager to *bus* for every event class its sagas take."""
        return self._attach(bus, AsyncEventBus, self.handle)

    async def fire_due(self) -> int:
        """Deliver every deadline due by the clock to its saga, each once; return how many."""
        return await self._run(self._core.exclusive(self._core.fire_due()))

    async def recover(self) -> int:
        """Send the commands left in outboxes by a stop; return how many sagas had some."""
        return await self._run(self._core.exclusive(self._core.recover()))

    async def catch_up(
        self,
        events: EventStore | AsyncEventStore,
        *,
        subscription: str = "sagas",
        on_error: OnError | None = None,
        observer: BatchObserver | None = None,
    ) -> int:
        """Handle the events stored after the *subscription*'s checkpoint; return how many."""
        self._feed(events, subscription)
        follower = self._follower(subscription, on_error=on_error, observer=observer)
        return await AsyncDriver(events, self._perform).run(follower.catch_up())

    async def find(self, saga_class: type[S], key: str, value: object) -> list[S]:
        """Return the state of the live *saga_class* sagas associated with ``(key, value)``."""
        return await self._run(self._core.find(saga_class, key, value))

    def background(
        self,
        *,
        interval: float = 1.0,
        events: EventStore | AsyncEventStore | None = None,
        subscription: str = "sagas",
        report: Callable[[Exception], object] | None = None,
        on_error: OnError | None = None,
        leases: LeaseStore | None = None,
        lease: float = 5.0,
        partitions: int = 1,
        owner: str | None = None,
        observer: BatchObserver | None = None,
    ) -> AsyncBackgroundRunner:
        """Return a runner that works the manager in a task (start it, or ``async with``)."""
        return AsyncBackgroundRunner(
            self,
            interval=interval,
            events=events,
            subscription=subscription,
            report=report,
            on_error=on_error,
            leases=leases,
            lease=lease,
            partitions=partitions,
            owner=owner,
            observer=observer,
        )


class _Runner(Generic[M]):
    """Settings, the pass and error reporting shared by the thread and the task runner."""

    _names = itertools.count(1)
    interval: float

    def __init__(
        self,
        manager: M,
        *,
        interval: float,
        events: Any,
        subscription: str,
        report: Callable[[Exception], object] | None,
        on_error: OnError | None,
        leases: LeaseStore | None,
        lease: float,
        partitions: int,
        owner: str | None,
        observer: BatchObserver | None,
    ) -> None:
        if (
            isinstance(interval, bool)
            or not isinstance(interval, int | float)
            or not 0 < interval <= threading.TIMEOUT_MAX
        ):
            raise InvalidArgumentError(
                "interval", interval, "a number of seconds > 0 (and at most threading.TIMEOUT_MAX)"
            )
        if report is not None and not callable(report):
            raise RegistrationError(
                f"background(report=...) takes a callable report(exception), got {report!r}"
            )
        self.manager: M = manager
        self.interval = float(interval)
        self._events = events
        self._report_to = report
        self._follower: Follower | None = None
        if events is not None:
            manager._feed(events, subscription)
            self._follower = manager._follower(
                subscription,
                on_error=on_error,
                leases=leases,
                lease=lease,
                partitions=partitions,
                owner=owner,
                poll_interval=interval,
                observer=observer,
            )
        elif leases is not None or partitions != 1 or on_error is not None or observer is not None:
            raise RegistrationError(
                "background(leases=..., partitions=..., on_error=..., observer=...) are about "
                "following the event store: give events= too (to hear of failed passes, use "
                "report=)"
            )
        self._recovered = False

    def _pass(self) -> Flow[None]:
        """One pass: send what is left in outboxes, catch up with the events, fire deadlines.

        With leases, what is left is sent by the worker that takes a partition over, when it
        does; without, once, on the first pass.
        """
        core = self.manager._core
        follower = self._follower
        if not self._recovered and (follower is None or follower.leases is None):
            yield from core.exclusive(core.recover())
            self._recovered = True
        if follower is not None:
            yield from follower.catch_up()
        yield from core.exclusive(core.fire_due())

    def _timeout(self) -> float:
        if self._follower is None:
            return self.interval
        return min(self.interval, self._follower.idle_timeout())

    def _report(self, exc: Exception) -> None:
        if self._report_to is not None:
            self._report_to(exc)
        else:
            logger.error("saga runner: %s", exc, exc_info=exc)


@final
class BackgroundRunner(_Runner[SagaManager]):
    """Works a :class:`SagaManager` on a daemon thread until stopped.

    It first sends what earlier runs left in outboxes (:meth:`SagaManager.recover`), then
    catches up with *events* (if given) whenever they change and fires due deadlines,
    every *interval* seconds at least. A failure goes to *report* (default: logged) and the
    runner carries on; *on_error* says what to do with an event the sagas fail on (default:
    stop there, and try it again on the next pass). With *leases*, one worker at a time
    runs each of the subscription's *partitions*; the others stand by. An *observer*
    (``busway.otel.batches()``, say) sees each batch of events it handles.
    """

    def __init__(
        self,
        manager: SagaManager,
        *,
        interval: float = 1.0,
        events: EventStore | None = None,
        subscription: str = "sagas",
        report: Callable[[Exception], object] | None = None,
        on_error: OnError | None = None,
        leases: LeaseStore | None = None,
        lease: float = 5.0,
        partitions: int = 1,
        owner: str | None = None,
        observer: BatchObserver | None = None,
    ) -> None:
        super().__init__(
            manager,
            interval=interval,
            events=events,
            subscription=subscription,
            report=report,
            on_error=on_error,
            leases=leases,
            lease=lease,
            partitions=partitions,
            owner=owner,
            observer=observer,
        )
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._running: SyncDriver | None = None  # the thread's

    def _drive(self) -> SyncDriver | None:
        """Return a driver for a call from outside the thread (None: no events to follow)."""
        if self._events is None:
            return None
        return SyncDriver(self._events, self.manager._perform)

    def start(self) -> Self:
        """Start the thread; starting a running runner does nothing."""
        if self._thread is None or not self._thread.is_alive():
            self._stopping = threading.Event()
            self._running = self._drive()
            self._thread = threading.Thread(
                target=self._loop,
                args=(self._stopping, self._running),
                name=f"busway-sagas-{next(self._names)}",
                daemon=True,
            )
            self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Ask the thread to stop after its current pass, give the leases back, and wait."""
        self._stopping.set()
        if self._running is not None:
            self._running.stop()
        if self._thread is not None:
            self._thread.join(timeout)

    def tick(self) -> None:
        """Do one pass now, on the calling thread: what the thread does every interval."""
        self._tick(self._drive())

    def _tick(self, driver: SyncDriver | None) -> None:
        if driver is None:
            self.manager._run(self._pass())
        else:
            driver.run(self._pass())

    def status(self) -> list[PartitionStatus]:
        """Return where the subscription's partitions are, who holds them, what they parked."""
        driver = self._drive()
        if driver is None or self._follower is None:
            return []
        return driver.run(self._follower.status())

    def parked(self) -> list[ParkedEvent]:
        """Return the events the subscription set aside (``on_error=Park()``), by position."""
        driver = self._drive()
        if driver is None or self._follower is None:
            return []
        return driver.run(self._follower.parked())

    def replay_parked(self, position: int | None = None) -> int:
        """Hand parked events to the sagas again (all, or the one at *position*).

        An event the sagas now take is unparked in the same commit as their changes; one
        that fails again stays parked. Return how many passed.
        """
        driver = self._drive()
        if driver is None or self._follower is None:
            return 0
        return driver.run(self._follower.replay(position))

    def _loop(self, stopping: threading.Event, driver: SyncDriver | None) -> None:
        signal = None if driver is None else driver.signal
        try:
            while not stopping.is_set():
                seen = 0 if signal is None else signal.count
                try:
                    self._tick(driver)
                except Stopped:
                    break
                except Exception as exc:
                    self._report(exc)
                if signal is None or stopping.is_set():
                    stopping.wait(self._timeout())
                else:
                    signal.wait(seen, self._timeout())
        finally:
            if driver is not None and self._follower is not None:
                try:
                    driver.run(self._follower.release())
                except Exception as exc:
                    self._report(exc)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@final
class AsyncBackgroundRunner(_Runner[AsyncSagaManager]):
    """Works an :class:`AsyncSagaManager` in an asyncio task until stopped.

    It does what :class:`BackgroundRunner` does, awaiting the manager.
    """

    def __init__(
        self,
        manager: AsyncSagaManager,
        *,
        interval: float = 1.0,
        events: EventStore | AsyncEventStore | None = None,
        subscription: str = "sagas",
        report: Callable[[Exception], object] | None = None,
        on_error: OnError | None = None,
        leases: LeaseStore | None = None,
        lease: float = 5.0,
        partitions: int = 1,
        owner: str | None = None,
        observer: BatchObserver | None = None,
    ) -> None:
        super().__init__(
            manager,
            interval=interval,
            events=events,
            subscription=subscription,
            report=report,
            on_error=on_error,
            leases=leases,
            lease=lease,
            partitions=partitions,
            owner=owner,
            observer=observer,
        )
        self._driver = None if events is None else AsyncDriver(events, manager._perform)
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Self:
        """Start the task on the running event loop; starting a running runner does nothing."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop())
        return self

    async def stop(self) -> None:
        """Cancel the task, give the leases back, and wait for it to end."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def tick(self) -> None:
        """Do one pass now: what the task does every interval."""
        if self._driver is None:
            await self.manager._run(self._pass())
        else:
            await self._driver.run(self._pass())

    async def status(self) -> list[PartitionStatus]:
        """Return where the subscription's partitions are, who holds them, what they parked."""
        if self._driver is None or self._follower is None:
            return []
        return await self._driver.run(self._follower.status())

    async def parked(self) -> list[ParkedEvent]:
        """Return the events the subscription set aside (``on_error=Park()``), by position."""
        if self._driver is None or self._follower is None:
            return []
        return await self._driver.run(self._follower.parked())

    async def replay_parked(self, position: int | None = None) -> int:
        """Hand parked events to the sagas again; return how many passed (see the sync twin)."""
        if self._driver is None or self._follower is None:
            return 0
        return await self._driver.run(self._follower.replay(position))

    async def _loop(self) -> None:
        signal = None if self._driver is None else self._driver.signal
        try:
            while True:
                seen = 0 if signal is None else signal.count
                try:
                    await self.tick()
                except Exception as exc:
                    self._report(exc)
                if signal is None:
                    await asyncio.sleep(self._timeout())
                else:
                    await signal.wait_async(seen, self._timeout())
        finally:
            if self._driver is not None and self._follower is not None:
                try:
                    await asyncio.shield(self._driver.run(self._follower.release()))
                except Exception as exc:
                    self._report(exc)

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
