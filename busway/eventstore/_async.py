"""Async event stores: one driver over the sync stores, so both keep the same promises.

A store that does I/O runs every call on its own worker thread, in the caller's context
(so correlation ids reach the metadata), one call at a time; the event loop never waits on
SQLite. The in-memory store has nothing to wait for and runs inline.

Each store's :attr:`appended` signal is its sync store's (the same file's, for SQLite), so
live streams of sync and async stores wake one another; where the sync store cannot tell
(a third-party store, or SQLite in memory or on a given connection), the async store
notifies a signal of its own after each of its appends that stored events.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import os
import sqlite3
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sized
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Self, TypeVar, final

from .._signal import Notifying, Signal, signal_for
from ..errors import StoreClosedError
from ._core import check_count, check_limit, check_position, check_stream_id, wanted_types
from ._live import AsyncLiveEvents
from ._memory import InMemoryEventStore
from ._protocol import EventStore
from ._serialization import EventTypes
from ._sqlite import SQLiteEventStore, Synchronous
from ._types import ANY, ExpectedVersion, RecordedEvent

__all__ = ["AsyncEventStoreAdapter", "AsyncInMemoryEventStore", "AsyncSQLiteEventStore"]

T = TypeVar("T")


def _read_all_page(
    store: EventStore, *, position: int, limit: int, types: tuple[type | str, ...] | None
) -> list[RecordedEvent]:
    return list(store.read_all(from_position=position, limit=limit, types=types))


def _not_empty(batch: Iterable[object]) -> bool:
    return len(batch) > 0 if isinstance(batch, Sized) else True


def _streams_page(store: EventStore, *, after: str | None, limit: int) -> list[tuple[str, int]]:
    return list(store.streams(after=after, limit=limit))


class _AsyncStore:
    """Everything an async store does, given a way to run a call on the sync store."""

    types: EventTypes
    _page_size: int = 1000
    _appended: Signal

    async def _run(self, call: Callable[[EventStore], T]) -> T:
        raise NotImplementedError

    @property
    def appended(self) -> Signal:
        """The signal notified after each commit of new events (its sync store's, if it has one)."""
        return self._appended

    async def append(
        self,
        stream_id: str,
        events: Iterable[object],
        *,
        expected_version: ExpectedVersion = ANY,
        metadata: Mapping[str, Any] | None = None,
    ) -> int:
        """Append *events* atomically; return the stream's new version.

        If the awaiting task is cancelled, the append may still complete: retry it with the
        same NewEvent ids to find out, idempotently.
        """
        # A generator is drained here, not on the worker thread, where it would run late.
        batch = list(events) if isinstance(events, Iterator) else events
        return await self._run(
            lambda store: self._append(store, stream_id, batch, expected_version, metadata)
        )

    def _append(
        self,
        store: EventStore,
        stream_id: str,
        batch: Iterable[object],
        expected_version: ExpectedVersion,
        metadata: Mapping[str, Any] | None,
    ) -> int:
        return store.append(stream_id, batch, expected_version=expected_version, metadata=metadata)

    async def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int | None = None,
        limit: int | None = None,
        backwards: bool = False,
    ) -> list[RecordedEvent]:
        """Return a stream's events from *from_version* on, inclusive, at most *limit*."""
        return await self._run(
            lambda store: store.read_stream(
                stream_id, from_version=from_version, limit=limit, backwards=backwards
            )
        )

    def read_all(
        self,
        *,
        from_position: int = 1,
        limit: int | None = None,
        types: Iterable[type | str] | None = None,
    ) -> AsyncIterator[RecordedEvent]:
        """Iterate over every stream's events in position order, fetching a page per await."""
        start = check_position(from_position)
        count = check_limit(limit)
        return self._iter_all(start, count, wanted_types(types))

    async def _iter_all(
        self, position: int, count: int | None, types: tuple[type | str, ...] | None
    ) -> AsyncIterator[RecordedEvent]:
        while count is None or count > 0:
            size = self._page_size if count is None else min(count, self._page_size)
            page = await self._run(
                functools.partial(_read_all_page, position=position, limit=size, types=types)
            )
            if not page:  # a short page is not the end: events may have come since
                return
            for recorded in page:
                yield recorded
            position = page[-1].position + 1
            if count is not None:
                count -= len(page)

    async def stream_version(self, stream_id: str) -> int:
        """Return the version of a stream's last event; 0 if it has none."""
        return await self._run(lambda store: store.stream_version(stream_id))

    async def head_position(self) -> int:
        """Return the position of the last event in the store; 0 if it is empty."""
        return await self._run(lambda store: store.head_position())

    def streams(
        self, *, after: str | None = None, limit: int | None = None
    ) -> AsyncIterator[tuple[str, int]]:
        """Iterate over ``(stream_id, version)`` of every stream, ordered by id."""
        if after is not None:
            check_stream_id(after)
        return self._iter_streams(after, check_limit(limit))

    async def _iter_streams(
        self, after: str | None, count: int | None
    ) -> AsyncIterator[tuple[str, int]]:
        while count is None or count > 0:
            size = self._page_size if count is None else min(count, self._page_size)
            page = await self._run(functools.partial(_streams_page, after=after, limit=size))
            if not page:
                return
            for item in page:
                yield item
            after = page[-1][0]
            if count is not None:
                count -= len(page)

    def subscribe(
        self,
        *,
        from_position: int = 1,
        types: Iterable[type | str] | None = None,
        poll_interval: float = 0.5,
    ) -> AsyncLiveEvents:
        """Follow the store: every event from *from_position* on, then each new one as it commits.

        Appends in this process wake the stream at once, without a thread per stream; other
        processes' appends are found within *poll_interval* seconds.
        """
        return AsyncLiveEvents(
            self, from_position=from_position, types=types, poll_interval=poll_interval
        )

    async def aclose(self) -> None:
        """Close the store; closing twice is harmless."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        try:
            await self._run(lambda store: None)  # open now, so a bad database fails here
        except BaseException:
            await self.aclose()  # or its worker thread would outlive the failed open
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


class _Threaded(_AsyncStore):
    """Runs each call of a sync store on one worker thread of its own, in order."""

    def __init__(self, opener: Callable[[], EventStore], page_size: int, appended: Signal) -> None:
        self._opener = opener
        self._store: EventStore | None = None
        self._page_size = check_count("page_size", page_size, 1)
        self._appended = appended
        self._told: Signal | None = None  # the sync store's signal, if it has one
        self._forward = False
        self._worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="busway-eventstore")
        self._closed = False

    def _opened(self) -> EventStore:
        # Only ever called on the worker thread, so there is no race to open twice.
        if self._store is None:
            store = self._opener()
            told = store.appended if isinstance(store, Notifying) else None
            self._forward = told is not self._appended
            self._told = told
            self._store = store
        return self._store

    def _append(
        self,
        store: EventStore,
        stream_id: str,
        batch: Iterable[object],
        expected_version: ExpectedVersion,
        metadata: Mapping[str, Any] | None,
    ) -> int:
        if not self._forward:  # the store notifies our signal itself
            return super()._append(store, stream_id, batch, expected_version, metadata)
        # Only this worker appends to the store, so its count moves for our appends alone;
        # a store without a signal is taken to have stored any batch that is not empty.
        told = self._told
        seen = 0 if told is None else told.count
        version = super()._append(store, stream_id, batch, expected_version, metadata)
        if told.count != seen if told is not None else _not_empty(batch):
            self._appended.notify()
        return version

    async def _run(self, call: Callable[[EventStore], T]) -> T:
        if self._closed:
            raise StoreClosedError(self)
        ctx = contextvars.copy_context()
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._worker, ctx.run, lambda: call(self._opened()))

    async def aclose(self) -> None:
        """Close the store and let its worker thread end; closing twice is harmless."""
        if self._closed:
            return
        self._closed = True
        loop = asyncio.get_running_loop()
        try:
            if self._store is not None:
                await loop.run_in_executor(self._worker, self._store.close)
        finally:
            self._worker.shutdown(wait=False)
            self._appended.notify()  # live streams waiting on the store wake, to find it closed


@final
class AsyncEventStoreAdapter(_Threaded):
    """Any sync :class:`EventStore` as an :class:`AsyncEventStore`, run on a worker thread.

    The adapter owns *store*: :meth:`aclose` closes it.
    """

    types: EventTypes
    """The wrapped store's types."""

    def __init__(self, store: EventStore, *, page_size: int = 1000) -> None:
        super().__init__(
            lambda: store, page_size, store.appended if isinstance(store, Notifying) else Signal()
        )
        self.types = store.types
        self._wrapped = store

    def __repr__(self) -> str:
        return f"<AsyncEventStoreAdapter of {self._wrapped!r}>"


@final
class AsyncSQLiteEventStore(_Threaded):
    """:class:`SQLiteEventStore` for asyncio: the database is only touched on a worker thread.

    It takes the same arguments and opens the database on first use, so ``async with``
    is where a file that is not a store fails. A connection you pass must have been made
    with ``check_same_thread=False``.
    """

    def __init__(
        self,
        path_or_connection: str | os.PathLike[str] | sqlite3.Connection,
        *,
        types: EventTypes,
        table: str = "events",
        synchronous: Synchronous | None = None,
        timeout: float = 10.0,
        page_size: int = 1000,
    ) -> None:
        self.types = types
        self._where = path_or_connection
        self.path: Path | None = None
        if not isinstance(path_or_connection, sqlite3.Connection):
            name = os.fspath(path_or_connection)
            self.path = None if name == ":memory:" else Path(name)

        def open_store() -> EventStore:
            return SQLiteEventStore(
                path_or_connection,
                types=types,
                table=table,
                synchronous=synchronous,
                timeout=timeout,
                page_size=page_size,
            )

        super().__init__(open_store, page_size, signal_for(self.path))

    def __repr__(self) -> str:
        return f"<AsyncSQLiteEventStore {self._where!r}{' closed' if self._closed else ''}>"


@final
class AsyncInMemoryEventStore(_AsyncStore):
    """:class:`InMemoryEventStore` for asyncio; it never waits on I/O, so it runs inline."""

    def __init__(self, *, types: EventTypes, page_size: int = 1000) -> None:
        self.types = types
        self._page_size = check_count("page_size", page_size, 1)
        self._store = InMemoryEventStore(types=types, page_size=page_size)
        self._appended = self._store.appended

    def __repr__(self) -> str:
        return f"<AsyncInMemoryEventStore of {self._store!r}>"

    async def _run(self, call: Callable[[EventStore], T]) -> T:
        return call(self._store)

    async def aclose(self) -> None:
        """Drop every event; the store cannot be used afterwards."""
        self._store.close()
