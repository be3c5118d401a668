"""How the engine's effects are performed: plainly on a thread, or awaited under asyncio.

A runner hands :class:`SyncDriver` or :class:`AsyncDriver` the store it follows and a
function for its consumer's own effects (a saga manager's commits and commands); the
driver performs the engine's effects itself and passes every other one on.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any, TypeVar, cast, final

from .._effects import arun, run
from .._signal import Notifying, Signal
from ..eventstore import AsyncEventStore, EventStore, RecordedEvent
from ._engine import Call, Flow, Head, ReadPage, Seen, Sleep, Wait

__all__ = ["AsyncDriver", "Stopped", "SyncDriver"]

T = TypeVar("T")


class Stopped(BaseException):
    """Thrown into a flow at its next wait once its thread was asked to stop.

    A BaseException, like a cancellation, so that no ``except Exception`` holds it up.
    """


def _signal(store: object) -> Signal | None:
    return store.appended if isinstance(store, Notifying) else None


def _unknown(effect: object) -> Any:
    raise TypeError(f"no driver performs {effect!r}")  # pragma: no cover - a bug if reached


@final
class SyncDriver:
    """Performs effects on the calling thread.

    :meth:`stop` cuts the current wait or sleep short and throws :class:`Stopped` into the
    flow at its next one, so that a flow following the store ends there.
    """

    def __init__(
        self,
        store: EventStore,
        other: Callable[[Any], Any] = _unknown,
        *,
        lock: threading.RLock | None = None,
    ) -> None:
        self.store = store
        self.signal = _signal(store)
        self.stopping = threading.Event()
        self._other = other
        self._lock = lock

    @contextlib.contextmanager
    def _idle(self) -> Iterator[None]:
        """Let others take the runner's lock while the flow waits."""
        lock = self._lock
        if lock is None:
            yield
            return
        lock.release()
        try:
            yield
        finally:
            lock.acquire()

    def run(self, flow: Flow[T]) -> T:
        """Drive *flow* to its end and return its result."""
        return run(flow, self.perform)

    def stop(self) -> None:
        """Ask the flow to end at its next wait."""
        self.stopping.set()
        if self.signal is not None:
            self.signal.notify()  # the waiters that were not asked to stop just look again

    def perform(self, effect: Any) -> Any:  # noqa: PLR0911 - a case per effect
        if self.stopping.is_set() and isinstance(effect, Seen | Wait | Sleep):
            raise Stopped
        match effect:
            case ReadPage(position, limit):
                return list(self.store.read_all(from_position=position, limit=limit))
            case Call(fn):
                return fn()
            case Seen():
                return 0 if self.signal is None else self.signal.count
            case Wait(seen, timeout, signal):
                signal = signal or self.signal
                with self._idle():
                    if signal is None:
                        self.stopping.wait(timeout)
                    else:
                        signal.wait(seen, timeout)
                return None
            case Sleep(seconds):
                with self._idle():
                    self.stopping.wait(seconds)
                return None
            case Head():
                return self.store.head_position()
            case _:
                return self._other(effect)


def _read_page(store: EventStore, position: int, limit: int) -> list[RecordedEvent]:
    return list(store.read_all(from_position=position, limit=limit))


async def _unknown_async(effect: object) -> Any:
    return _unknown(effect)


@final
class AsyncDriver:
    """Awaits effects: an async store natively, a sync store and store calls on a thread.

    :meth:`stop` works as the sync driver's does, so that a flow following the store ends
    at its next wait, never in the middle of a store call that would go on on its thread.
    """

    def __init__(
        self,
        store: EventStore | AsyncEventStore,
        other: Callable[[Any], Awaitable[Any]] = _unknown_async,
        *,
        inline: bool = False,
        lock: asyncio.Lock | None = None,
    ) -> None:
        self.store = store
        self.signal = _signal(store)
        self.stopping = False
        # Futures of the naps in progress, made on the running loop (an asyncio.Event would
        # tie the driver to the first loop that waited on it).
        self._naps: set[asyncio.Future[None]] = set()
        self._other = other
        self._inline = inline
        self._lock = lock

    @contextlib.asynccontextmanager
    async def _idle(self) -> AsyncIterator[None]:
        """Let other tasks take the runner's lock while the flow waits."""
        lock = self._lock
        if lock is None:
            yield
            return
        lock.release()
        try:
            yield
        finally:
            await lock.acquire()

    def run(self, flow: Flow[T]) -> Awaitable[T]:
        """Drive *flow* to its end; await the result."""
        return arun(flow, self.perform)

    def stop(self) -> None:
        """Ask the flow to end at its next wait (call it on the flow's loop)."""
        self.stopping = True
        for nap in self._naps:
            if not nap.done():
                nap.set_result(None)
        if self.signal is not None:
            self.signal.notify()  # the waiters that were not asked to stop just look again

    async def _nap(self, seconds: float) -> None:
        """Sleep *seconds*, or until asked to stop."""
        nap = asyncio.get_running_loop().create_future()
        self._naps.add(nap)
        try:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(nap, seconds)
        finally:
            self._naps.discard(nap)

    async def _wait(self, seen: int, timeout: float, signal: Signal | None) -> None:
        """Wait for *signal* (None: the store's) to count past *seen*, for *timeout*, or a stop."""
        signal = signal or self.signal
        if signal is None:
            await self._nap(timeout)
        else:
            await signal.wait_async(seen, timeout)

    async def perform(self, effect: Any) -> Any:  # noqa: PLR0911 - a case per effect
        if self.stopping and isinstance(effect, Seen | Wait | Sleep):
            raise Stopped
        store = self.store
        match effect:
            case ReadPage(position, limit) if isinstance(store, AsyncEventStore):
                return [r async for r in store.read_all(from_position=position, limit=limit)]
            case ReadPage(position, limit):
                return await asyncio.to_thread(_read_page, cast(EventStore, store), position, limit)
            case Call(fn) if self._inline:
                return fn()
            case Call(fn):
                return await asyncio.to_thread(fn)
            case Seen():
                return 0 if self.signal is None else self.signal.count
            case Wait(seen, timeout, signal):
                async with self._idle():
                    await self._wait(seen, timeout, signal)
                return None
            case Sleep(seconds):
                async with self._idle():
                    await self._nap(seconds)
                return None
            case Head() if isinstance(store, AsyncEventStore):
                return await store.head_position()
            case Head():
                return await asyncio.to_thread(store.head_position)
            case _:
                return await self._other(effect)
