"""The event store contract for async stores, run through a blocking shim.

The shim drives an :class:`~busway.eventstore.AsyncEventStore` from its own event loop,
one call at a time, so every sync contract test (and the model state machine) runs against
the async store unchanged; a call from another thread (a writer beside a live stream) runs
on an event loop of that thread's own. The async live streams are tested on their own.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator, Mapping
from typing import Any, Self, TypeVar

import pytest

from busway._signal import Notifying, Signal
from busway.eventstore import (
    ANY,
    AsyncEventStore,
    EventStore,
    EventTypes,
    ExpectedVersion,
    LiveEvents,
    RecordedEvent,
    StoreClosedError,
)

from ._eventstore_contract import EventStoreContract, Note, Opened

__all__ = ["AsyncEventStoreContract"]

T = TypeVar("T")


async def _collect(iterator: AsyncIterator[T]) -> list[T]:
    return [item async for item in iterator]


class _Blocking:
    """An EventStore whose every call runs an async store's twin to completion."""

    appended: Signal
    """The async store's signal, where it has one; then live streams of the shim wait on it."""

    def __init__(self, store: AsyncEventStore, runner: asyncio.Runner) -> None:
        self.store = store
        self.types = store.types
        if isinstance(store, Notifying):
            self.appended = store.appended
        self._runner = runner
        self._thread = threading.get_ident()
        self._closed = False

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        # The caller's context, so correlation ids set around the call reach the store.
        context = contextvars.copy_context()
        if threading.get_ident() == self._thread:
            return self._runner.run(coro, context=context)
        with asyncio.Runner() as runner:
            return runner.run(coro, context=context)

    def append(
        self,
        stream_id: str,
        events: Iterable[object],
        *,
        expected_version: ExpectedVersion = ANY,
        metadata: Mapping[str, Any] | None = None,
    ) -> int:
        return self._run(
            self.store.append(
                stream_id, events, expected_version=expected_version, metadata=metadata
            )
        )

    def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int | None = None,
        limit: int | None = None,
        backwards: bool = False,
    ) -> list[RecordedEvent]:
        return self._run(
            self.store.read_stream(
                stream_id, from_version=from_version, limit=limit, backwards=backwards
            )
        )

    def read_all(
        self,
        *,
        from_position: int = 1,
        limit: int | None = None,
        types: Iterable[type | str] | None = None,
    ) -> Iterator[RecordedEvent]:
        return self._iterate(
            self.store.read_all(from_position=from_position, limit=limit, types=types)
        )

    def streams(
        self, *, after: str | None = None, limit: int | None = None
    ) -> Iterator[tuple[str, int]]:
        return self._iterate(self.store.streams(after=after, limit=limit))

    def _iterate(self, iterator: AsyncIterator[T]) -> Iterator[T]:
        if threading.get_ident() != self._thread:
            # An async generator belongs to the loop it first ran on: read it all on one.
            yield from self._run(_collect(iterator))
            return

        async def step() -> tuple[bool, T | None]:
            try:
                return True, await anext(iterator)
            except StopAsyncIteration:
                return False, None

        try:
            while True:
                more, item = self._run(step())
                if not more:
                    return
                yield item  # type: ignore[misc]  # item is a T whenever more is true
        finally:
            close = getattr(iterator, "aclose", None)
            if close is not None and not self._closed:
                self._run(close())

    def subscribe(
        self,
        *,
        from_position: int = 1,
        types: Iterable[type | str] | None = None,
        poll_interval: float = 0.5,
    ) -> LiveEvents:
        return LiveEvents(
            self, from_position=from_position, types=types, poll_interval=poll_interval
        )

    def stream_version(self, stream_id: str) -> int:
        return self._run(self.store.stream_version(stream_id))

    def head_position(self) -> int:
        return self._run(self.store.head_position())

    def close(self) -> None:
        if not self._closed:
            self._run(self.store.aclose())
            self._closed = True

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncEventStoreContract(EventStoreContract):
    """:class:`EventStoreContract` for an :class:`~busway.eventstore.AsyncEventStore`.

    Provide an ``async_store`` fixture returning an empty async store (not yet entered)
    built with ``types=self.event_types()``; persistent stores override
    :meth:`reopen_async`. The tests drive it from an event loop of their own.
    """

    @pytest.fixture
    def async_store(self) -> AsyncEventStore:
        """Return an empty async store built with ``types=self.event_types()``; override it."""
        raise NotImplementedError(
            "subclasses of AsyncEventStoreContract provide an `async_store` fixture"
        )

    @pytest.fixture
    def runner(self) -> Iterator[asyncio.Runner]:
        """Yield the event loop the contract drives the async store from."""
        with asyncio.Runner() as runner:
            yield runner

    @pytest.fixture
    def store(self, async_store: AsyncEventStore, runner: asyncio.Runner) -> Iterator[EventStore]:
        """Yield the async store behind a blocking shim, entered with ``async with``."""
        runner.run(async_store.__aenter__())
        with _Blocking(async_store, runner) as shim:
            yield shim

    async def reopen_async(self, store: AsyncEventStore, types: EventTypes) -> AsyncEventStore:
        """Close *store* and return a new async store over the same data, reading with *types*.

        Override it in stores that keep data across restarts.
        """
        raise NotImplementedError

    def _can_reopen(self) -> bool:
        return type(self).reopen_async is not AsyncEventStoreContract.reopen_async

    def reopen(self, store: EventStore, types: EventTypes) -> EventStore:
        """Reopen the async store behind the shim with :meth:`reopen_async`."""
        assert isinstance(store, _Blocking)
        reopened = store._run(self.reopen_async(store.store, types))
        store._closed = True
        store._run(reopened.__aenter__())
        return _Blocking(reopened, store._runner)

    # -- async live streams ------------------------------------------------------------------

    @staticmethod
    def _async(store: EventStore) -> AsyncEventStore:
        assert isinstance(store, _Blocking)
        return store.store

    def test_async_subscribe_yields_history_then_live(
        self, store: EventStore, runner: asyncio.Runner
    ) -> None:
        """An async live stream yields the stored events, then those another task appends."""
        events = self._async(store)
        poll = 30.0 if isinstance(events, Notifying) else 0.05

        async def main() -> list[tuple[str, float]]:
            await events.append("a", [Note("1"), Opened("x"), Note("2")])
            got: list[tuple[str, float]] = []
            sent: list[float] = []

            async def write() -> None:
                await asyncio.sleep(0.1)  # the stream is waiting by now
                for text in ("3", "4"):
                    await events.append("b", [Opened("y"), Note(text)])
                    sent.append(time.monotonic())
                    await asyncio.sleep(0.05)

            writer = asyncio.create_task(write())
            async with events.subscribe(types=[Note], poll_interval=poll) as live:
                assert live.__aiter__() is live
                for _ in range(4):
                    recorded = await anext(live)
                    assert isinstance(recorded.event, Note)
                    got.append((recorded.event.text, time.monotonic()))
                assert await events.head_position() == live.position
            assert [] == [recorded async for recorded in live]  # closed: it ends
            await writer
            for (_, came), at in zip(got[2:], sent, strict=True):
                assert came - at < self.wake_up_within
            return got

        assert ["1", "2", "3", "4"] == [text for text, _ in runner.run(main())]

    def test_async_subscribe_wakes_for_another_thread(
        self, store: EventStore, runner: asyncio.Runner
    ) -> None:
        """An append from another thread (and event loop) reaches a waiting task at once."""
        events = self._async(store)
        if not isinstance(events, Notifying):
            pytest.skip("the store has no `appended` signal: its live streams poll")
        sent: list[float] = []

        def write() -> None:
            time.sleep(0.2)
            store.append("a", [Note("from a thread")])  # on that thread's own event loop
            sent.append(time.monotonic())

        async def main() -> float:
            async with events.subscribe(poll_interval=30) as live:
                thread = threading.Thread(target=write)
                thread.start()
                try:
                    await anext(live)
                    return time.monotonic()
                finally:
                    thread.join()

        came = runner.run(main())
        assert came - sent[0] < self.wake_up_within

    def test_async_aclose_ends_a_waiting_stream(
        self, store: EventStore, runner: asyncio.Runner
    ) -> None:
        """aclose() ends a stream another task waits on, promptly, leaving no task or thread."""
        events = self._async(store)
        threads = set(threading.enumerate())

        async def main() -> None:
            tasks = asyncio.all_tasks()  # the store's own, such as a connection pool's
            live = events.subscribe(poll_interval=30)
            waiting = asyncio.create_task(anext(live))
            await asyncio.sleep(0.1)
            closed = time.monotonic()
            await live.aclose()
            with pytest.raises(StopAsyncIteration):
                await waiting
            assert time.monotonic() - closed < self.wake_up_within
            await live.aclose()
            with pytest.raises(StopAsyncIteration):
                await anext(live)
            assert tasks == asyncio.all_tasks()

        runner.run(main())
        assert set(threading.enumerate()) <= threads

    def test_async_cancelled_wait_loses_nothing(
        self, store: EventStore, runner: asyncio.Runner
    ) -> None:
        """A wait cancelled by a timeout leaves the stream where it was: the next event comes."""
        events = self._async(store)

        async def main() -> str:
            async with events.subscribe(poll_interval=0.05) as live:
                with pytest.raises(TimeoutError):
                    await asyncio.wait_for(anext(live), 0.1)
                await events.append("a", [Note("after the timeout")])
                recorded = await anext(live)
                assert isinstance(recorded.event, Note)
                return recorded.event.text

        assert "after the timeout" == runner.run(main())

    def test_async_closing_the_store_ends_its_streams(
        self, store: EventStore, runner: asyncio.Runner
    ) -> None:
        """A task waiting on a store that closes ends with StoreClosedError, promptly."""
        events = self._async(store)
        poll = 30.0 if isinstance(events, Notifying) else 0.05

        async def main() -> None:
            live = events.subscribe(poll_interval=poll)
            waiting = asyncio.create_task(anext(live))
            await asyncio.sleep(0.1)
            closed = time.monotonic()
            await events.aclose()
            with pytest.raises(StoreClosedError):
                await waiting
            assert time.monotonic() - closed < self.wake_up_within

        runner.run(main())
