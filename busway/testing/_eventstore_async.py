"""The event store contract for async stores, run through a blocking shim.

The shim drives an :class:`~busway.eventstore.AsyncEventStore` from its own event loop,
one call at a time, so every sync contract test (and the model state machine) runs against
the async store unchanged.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections.abc import AsyncIterator, Coroutine, Iterable, Iterator, Mapping
from typing import Any, Self, TypeVar

import pytest

from busway.eventstore import (
    ANY,
    AsyncEventStore,
    EventStore,
    EventTypes,
    ExpectedVersion,
    RecordedEvent,
)

from ._eventstore_contract import EventStoreContract

__all__ = ["AsyncEventStoreContract"]

T = TypeVar("T")


class _Blocking:
    """An EventStore whose every call runs an async store's twin to completion."""

    def __init__(self, store: AsyncEventStore, runner: asyncio.Runner) -> None:
        self.store = store
        self.types = store.types
        self._runner = runner
        self._closed = False

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        # The caller's context, so correlation ids set around the call reach the store.
        return self._runner.run(coro, context=contextvars.copy_context())

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
