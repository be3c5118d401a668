"""Saga managers: thin sync and async drivers over the flows of ``_core``.

A manager runs one operation at a time. An event that arrives while it works — published,
say, by the handler of a command the manager is sending — waits in a queue and is handled
once the current operation is done, so a saga never sees an event in the middle of its own
step. The queue belongs to the thread or task doing the work (a context variable), so other
threads and tasks simply wait their turn on the manager's lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import itertools
import logging
import threading
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator
from contextvars import ContextVar
from typing import Any, Final, Generic, Self, TypeVar, final

from .._async_buses import AsyncCommandBus, AsyncEventBus
from .._buses import CommandBus, EventBus
from .._dispatch import Subscription
from ..clock import Clock, SystemClock
from ..errors import InvalidArgumentError, RegistrationError
from ..eventstore import AsyncEventStore, EventStore, EventTypes, RecordedEvent
from ._core import Commit, Core, Flow, Send, raise_all
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

_PAGE: Final = 500
_draining: ContextVar[tuple[tuple[object, deque[object]], ...]] = ContextVar(
    "busway_saga_draining", default=()
)


def _queue_of(manager: object) -> deque[object] | None:
    """Return the queue of events waiting for *manager* in this context, if it is working."""
    for owner, queue in _draining.get():
        if owner is manager:
            return queue
    return None


@contextlib.contextmanager
def _draining_for(manager: object) -> Iterator[deque[object]]:
    queue: deque[object] = deque()
    token = _draining.set((*_draining.get(), (manager, queue)))
    try:
        yield queue
    finally:
        _draining.reset(token)


def _read_page(events: EventStore, position: int) -> list[RecordedEvent]:
    return list(events.read_all(from_position=position, limit=_PAGE))


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

    def _attach(self, bus: EventBus | AsyncEventBus, want: type, handler: Any) -> Attachment:
        if not isinstance(bus, want):
            raise RegistrationError(
                f"{type(self).__name__}.attach() takes an {want.__name__}, got {bus!r}"
            )
        return Attachment(bus.subscribe(t, handler) for t in _roots(self.event_types))


def _checkpoint_only(name: str, position: int) -> Flow[None]:
    yield Commit((), (name, position))


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

    def _perform(self, flow: Flow[T]) -> T:
        value: Any = None
        error: Exception | None = None
        while True:
            try:
                effect = flow.send(value) if error is None else flow.throw(error)
            except StopIteration as stop:
                result: T = stop.value
                return result
            try:
                if isinstance(effect, Send):
                    value, error = self._execute(effect.command), None
                else:
                    value, error = effect.perform(self.store), None
            except Exception as exc:
                value, error = None, exc

    def _exclusive(self, work: Callable[[], T]) -> T:
        if _queue_of(self) is not None:
            return work()
        with self._lock, _draining_for(self) as queue:
            results: list[T] = []
            errors: list[Exception] = []
            try:
                results.append(work())
            except Exception as exc:
                errors.append(exc)
            while queue:
                event = queue.popleft()
                try:
                    self._perform(self._core.handle(event))
                except Exception as exc:
                    errors.append(exc)
            raise_all(errors, "running sagas")
            return results[0]

    def handle(self, event: object) -> None:
        """Deliver *event* to the sagas it starts or is associated with."""
        queue = _queue_of(self)
        if queue is not None:
            queue.append(event)
            return
        self._exclusive(lambda: self._perform(self._core.handle(event)))

    def attach(self, bus: EventBus) -> Attachment:
        """Subscribe the manager to *bus* for every event class its sagas take."""
        return self._attach(bus, EventBus, self.handle)

    def fire_due(self) -> int:
        """Deliver every deadline due by the clock to its saga, each once; return how many."""
        return self._exclusive(lambda: self._perform(self._core.fire_due()))

    def recover(self) -> int:
        """Send the commands left in outboxes by a stop; return how many sagas had some.

        Call it when a worker starts (the background runner does): it sends again any
        command whose settling was not stored, so such a command may arrive twice.
        """
        return self._exclusive(lambda: self._perform(self._core.recover()))

    def catch_up(self, events: EventStore, *, subscription: str = "sagas") -> int:
        """Handle the events stored after the *subscription*'s checkpoint; return how many.

        Each event's saga changes are committed with the checkpoint at its position, in one
        transaction, so after a crash no event is handled twice or skipped.
        """
        return self._exclusive(lambda: self._catch_up(events, subscription))

    def _catch_up(self, events: EventStore, name: str) -> int:
        start = self.store.checkpoint(name)
        committed = last = start
        count = 0
        for recorded in events.read_all(from_position=start + 1):
            if self._perform(self._core.handle(recorded.event, (name, recorded.position))):
                committed = recorded.position
            last = recorded.position
            count += 1
        if last != committed:
            self._perform(_checkpoint_only(name, last))
        return count

    def find(self, saga_class: type[S], key: str, value: object) -> list[S]:
        """Return the state of the live *saga_class* sagas associated with ``(key, value)``."""
        return self._perform(self._core.find(saga_class, key, value))

    def background(
        self,
        *,
        interval: float = 1.0,
        events: EventStore | None = None,
        subscription: str = "sagas",
        on_error: Callable[[Exception], object] | None = None,
    ) -> BackgroundRunner:
        """Return a runner that works the manager on a thread (start it, or use ``with``)."""
        return BackgroundRunner(
            self, interval=interval, events=events, subscription=subscription, on_error=on_error
        )


@final
class AsyncSagaManager(_Manager):
    """The async twin of :class:`SagaManager`: the same logic, awaited.

    Commands go to an :class:`~busway.AsyncCommandBus`; the saga store is called on a
    worker thread (the in-memory store, which never waits, inline).
    """

    _bus_kind = AsyncCommandBus

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

    async def _call(self, fn: Callable[[], T]) -> T:
        return fn() if self._inline else await asyncio.to_thread(fn)

    async def _perform(self, flow: Flow[T]) -> T:
        value: Any = None
        error: Exception | None = None
        while True:
            try:
                effect = flow.send(value) if error is None else flow.throw(error)
            except StopIteration as stop:
                result: T = stop.value
                return result
            try:
                if isinstance(effect, Send):
                    value, error = await self._execute(effect.command), None
                else:
                    value, error = (
                        await self._call(functools.partial(effect.perform, self.store)),
                        None,
                    )
            except Exception as exc:
                value, error = None, exc

    async def _exclusive(self, work: Callable[[], Awaitable[T]]) -> T:
        if _queue_of(self) is not None:
            return await work()
        async with self._lock:
            with _draining_for(self) as queue:
                results: list[T] = []
                errors: list[Exception] = []
                try:
                    results.append(await work())
                except Exception as exc:
                    errors.append(exc)
                while queue:
                    event = queue.popleft()
                    try:
                        await self._perform(self._core.handle(event))
                    except Exception as exc:
                        errors.append(exc)
                raise_all(errors, "running sagas")
                return results[0]

    async def handle(self, event: object) -> None:
        """Deliver *event* to the sagas it starts or is associated with."""
        queue = _queue_of(self)
        if queue is not None:
            queue.append(event)
            return
        await self._exclusive(lambda: self._perform(self._core.handle(event)))

    def attach(self, bus: AsyncEventBus) -> Attachment:
        """Subscribe the manager to *bus* for every event class its sagas take."""
        return self._attach(bus, AsyncEventBus, self.handle)

    async def fire_due(self) -> int:
        """Deliver every deadline due by the clock to its saga, each once; return how many."""
        return await self._exclusive(lambda: self._perform(self._core.fire_due()))

    async def recover(self) -> int:
        """Send the commands left in outboxes by a stop; return how many sagas had some."""
        return await self._exclusive(lambda: self._perform(self._core.recover()))

    async def catch_up(
        self, events: EventStore | AsyncEventStore, *, subscription: str = "sagas"
    ) -> int:
        """Handle the events stored after the *subscription*'s checkpoint; return how many."""
        return await self._exclusive(lambda: self._catch_up(events, subscription))

    async def _catch_up(self, events: EventStore | AsyncEventStore, name: str) -> int:
        start = await self._call(lambda: self.store.checkpoint(name))
        committed = last = start
        count = 0
        async for recorded in self._read(events, start + 1):
            if await self._perform(self._core.handle(recorded.event, (name, recorded.position))):
                committed = recorded.position
            last = recorded.position
            count += 1
        if last != committed:
            await self._perform(_checkpoint_only(name, last))
        return count

    async def _read(
        self, events: EventStore | AsyncEventStore, position: int
    ) -> AsyncIterator[RecordedEvent]:
        if isinstance(events, AsyncEventStore):
            async for recorded in events.read_all(from_position=position):
                yield recorded
            return
        while True:
            page = await asyncio.to_thread(_read_page, events, position)
            for recorded in page:
                yield recorded
            if len(page) < _PAGE:
                return
            position = page[-1].position + 1

    async def find(self, saga_class: type[S], key: str, value: object) -> list[S]:
        """Return the state of the live *saga_class* sagas associated with ``(key, value)``."""
        return await self._perform(self._core.find(saga_class, key, value))

    def background(
        self,
        *,
        interval: float = 1.0,
        events: EventStore | AsyncEventStore | None = None,
        subscription: str = "sagas",
        on_error: Callable[[Exception], object] | None = None,
    ) -> AsyncBackgroundRunner:
        """Return a runner that works the manager in a task (start it, or ``async with``)."""
        return AsyncBackgroundRunner(
            self, interval=interval, events=events, subscription=subscription, on_error=on_error
        )


class _Runner(Generic[M]):
    """Settings and error reporting shared by the thread and the task runner."""

    _names = itertools.count(1)
    interval: float

    def __init__(
        self,
        manager: M,
        *,
        interval: float,
        events: Any,
        subscription: str,
        on_error: Callable[[Exception], object] | None,
    ) -> None:
        if isinstance(interval, bool) or not isinstance(interval, int | float) or interval <= 0:
            raise InvalidArgumentError("interval", interval, "a positive number of seconds")
        self.manager: M = manager
        self.interval = float(interval)
        self._events = events
        self._subscription = subscription
        self._on_error = on_error
        self._recovered = False

    def _report(self, exc: Exception) -> None:
        if self._on_error is not None:
            self._on_error(exc)
        else:
            logger.error("saga runner: %s", exc, exc_info=exc)


@final
class BackgroundRunner(_Runner[SagaManager]):
    """Works a :class:`SagaManager` on a daemon thread until stopped.

    It first sends what earlier runs left in outboxes (:meth:`SagaManager.recover`), then,
    every *interval* seconds, catches up with *events* (if given) and fires due deadlines.
    A failure goes to *on_error* (default: logged) and the runner carries on.
    """

    def __init__(
        self,
        manager: SagaManager,
        *,
        interval: float = 1.0,
        events: EventStore | None = None,
        subscription: str = "sagas",
        on_error: Callable[[Exception], object] | None = None,
    ) -> None:
        super().__init__(
            manager, interval=interval, events=events, subscription=subscription, on_error=on_error
        )
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Self:
        """Start the thread; starting a running runner does nothing."""
        if self._thread is None or not self._thread.is_alive():
            self._stopping.clear()
            self._thread = threading.Thread(
                target=self._loop, name=f"busway-sagas-{next(self._names)}", daemon=True
            )
            self._thread.start()
        return self

    def stop(self, timeout: float | None = None) -> None:
        """Ask the thread to stop after its current pass, and wait for it."""
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def tick(self) -> None:
        """Do one pass now, on the calling thread: what the thread does every interval."""
        if not self._recovered:
            self.manager.recover()
            self._recovered = True
        if self._events is not None:
            self.manager.catch_up(self._events, subscription=self._subscription)
        self.manager.fire_due()

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                self.tick()
            except Exception as exc:
                self._report(exc)
            self._stopping.wait(self.interval)

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
        on_error: Callable[[Exception], object] | None = None,
    ) -> None:
        super().__init__(
            manager, interval=interval, events=events, subscription=subscription, on_error=on_error
        )
        self._task: asyncio.Task[None] | None = None

    def start(self) -> Self:
        """Start the task on the running event loop; starting a running runner does nothing."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._loop())
        return self

    async def stop(self) -> None:
        """Cancel the task and wait for it to end."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def tick(self) -> None:
        """Do one pass now: what the task does every interval."""
        if not self._recovered:
            await self.manager.recover()
            self._recovered = True
        if self._events is not None:
            await self.manager.catch_up(self._events, subscription=self._subscription)
        await self.manager.fire_due()

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick()
            except Exception as exc:
                self._report(exc)
            await asyncio.sleep(self.interval)

    async def __aenter__(self) -> Self:
        return self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
