"""Both projection runners behind one blocking API, so that one test checks them both.

A test takes the ``make_runner`` fixture (tests/conftest.py) and runs three times: with
:class:`ProjectionRunner` on the plain store, and with :class:`AsyncProjectionRunner` on
the async twin of the store and on the plain store itself. The async runner lives on an
event loop of its own, on a thread (:class:`LoopThread`); :class:`Blocking` schedules
each call there and waits for its result, so the test reads the same either way:
``run_once()`` awaits ``run_once()``, ``start()`` starts the task on that loop,
``stop()`` awaits ``stop()``, ``with running():`` is ``async with running():``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import os
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Protocol, TypeVar, cast, final

from busway.eventstore import (
    AsyncEventStore,
    AsyncInMemoryEventStore,
    AsyncSQLiteEventStore,
    EventStore,
    EventTypes,
    InMemoryEventStore,
    SQLiteEventStore,
)
from busway.projections import (
    AsyncProjectionRunner,
    Progress,
    Projection,
    ProjectionRunner,
    WritingProjection,
)
from busway.subscriptions import ParkedEvent, PartitionStatus

T = TypeVar("T")

FLAVOURS: Final = ("sync", "async", "async-over-sync")
"""The sync runner; the async one on an async store; the async one on the plain store."""

WAIT: Final = 60.0  # seconds: a call that takes longer is stuck, and the test says so


class Runner(Protocol):
    """What a test sees of either runner: the sync runner's API."""

    name: str

    @property
    def position(self) -> int: ...

    @property
    def owner(self) -> str: ...

    @property
    def error(self) -> BaseException | None: ...

    @property
    def is_running(self) -> bool: ...

    def run_once(self) -> int: ...

    def run_until_caught_up(self, *, progress: Progress | None = None) -> int: ...

    def rebuild(self, *, progress: Progress | None = None) -> int: ...

    def lag(self) -> int: ...

    def status(self) -> list[PartitionStatus]: ...

    def parked(self) -> list[ParkedEvent]: ...

    def replay_parked(self, position: int | None = None) -> int: ...

    def wait_for(self, position: int, timeout: float = 10.0) -> None: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def running(self) -> AbstractContextManager[object]: ...


@final
class LoopThread:
    """An event loop running on a thread of its own, for blocking callers to use."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="test-loop", daemon=True)
        self._thread.start()

    def call(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Await ``fn()`` on the loop, and return the result (or raise what it raised)."""

        async def go() -> T:
            return await fn()

        return asyncio.run_coroutine_threadsafe(go(), self.loop).result(WAIT)

    def close(self) -> None:
        """Cancel what is left on the loop, then stop and close it."""

        async def finish() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_default_executor()

        self.call(finish)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(WAIT)
        self.loop.close()


def _is_async_context(value: object) -> bool:
    return hasattr(value, "__aenter__") and not inspect.isawaitable(value)


@final
class Blocking:
    """An object with async methods, called from outside its loop as if they blocked.

    Each method runs on the loop and its awaitable is awaited there; an async iterator
    comes back as a list, an async context manager as a plain one. ``close()`` is
    ``aclose()`` where the object has no ``close``.
    """

    def __init__(self, target: object, loop: LoopThread) -> None:
        self.target = target
        self.loop = loop

    def __repr__(self) -> str:
        return repr(self.target)

    def __getattr__(self, name: str) -> Any:
        if name == "close" and not hasattr(self.target, "close"):
            name = "aclose"
        value = getattr(self.target, name)
        if not callable(value):
            return value

        def call(*args: object, **kwargs: object) -> object:
            async def go() -> object:
                result = value(*args, **kwargs)
                if inspect.isawaitable(result):
                    return await result
                if hasattr(result, "__aiter__"):
                    return [item async for item in result]
                return result

            result: object = self.loop.call(go)
            if result is self.target:
                return self
            if _is_async_context(result):
                return _BlockingContext(result, self)
            return result

        return call


@final
class _BlockingContext:
    """An async context manager entered and left on its loop, from outside it."""

    def __init__(self, context: Any, owner: Blocking) -> None:
        self._context = context
        self._owner = owner

    def __enter__(self) -> object:
        entered = self._owner.loop.call(self._context.__aenter__)
        return self._owner if entered is self._owner.target else entered

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        return bool(self._owner.loop.call(lambda: self._context.__aexit__(kind, exc, traceback)))


@contextlib.contextmanager
def memory_store(flavour: str, loop: LoopThread, types: EventTypes) -> Iterator[EventStore]:
    """Yield an event store in memory as the test of *flavour* appends to it."""
    if flavour == "async":
        store = AsyncInMemoryEventStore(types=types)
        try:
            yield cast(EventStore, Blocking(store, loop))
        finally:
            loop.call(store.aclose)
        return
    with InMemoryEventStore(types=types) as plain:
        yield plain


@contextlib.contextmanager
def file_store(
    flavour: str, loop: LoopThread, path: str | os.PathLike[str], types: EventTypes
) -> Iterator[EventStore]:
    """Yield an event store in the SQLite file at *path*, as the test of *flavour* sees it."""
    if flavour == "async":
        store = AsyncSQLiteEventStore(Path(path), types=types)
        try:
            yield cast(EventStore, Blocking(store, loop))
        finally:
            loop.call(store.aclose)
        return
    with SQLiteEventStore(path, types=types) as plain:
        yield plain


class MakeRunner(Protocol):
    """Makes a runner of the test's flavour, with the runners' options."""

    def __call__(
        self, store: EventStore, projection: Projection | WritingProjection[Any], **options: Any
    ) -> Runner: ...


def runner_maker(flavour: str, loop: LoopThread) -> MakeRunner:
    """Return what makes runners of *flavour*, given a store the test got from this module."""

    def make(
        store: EventStore, projection: Projection | WritingProjection[Any], **options: Any
    ) -> Runner:
        if flavour == "sync":
            return ProjectionRunner(store, projection, **options)
        target = cast(AsyncEventStore, store.target) if isinstance(store, Blocking) else store
        return cast(Runner, Blocking(AsyncProjectionRunner(target, projection, **options), loop))

    return make
