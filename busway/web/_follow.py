"""A live stream for one web client: resumable, filtered, and ended by the client leaving.

A GraphQL subscription or a WebSocket push reads :func:`follow`: the events after the
position the client last saw (so a reconnecting client misses nothing and sees nothing
twice), only those the client wants, until the client goes away. Waiting for the next event
and waiting for the disconnect race each other, so a client that leaves a quiet room is let
go at once instead of when the next event would have been sent.

Racing the two for every event would cost a task and a wait each. Instead, a task reads
ahead of the client, up to :data:`AHEAD` events at a time, and the two race only while the
client waits for it; an event it has read is handed over after one turn of the event loop,
in which a disconnect that has come ends the stream first.
"""

from __future__ import annotations

import asyncio
import collections
import inspect
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, Final, final

from ..errors import InvalidArgumentError
from ..eventstore import AsyncEventStore, AsyncLiveEvents, EventTypes, RawEvent, RecordedEvent

__all__ = ["Following", "event_json", "follow"]

AHEAD: Final = 100
"""At most this many events a task reads ahead of a client whose disconnect is watched."""


@final
class Following(AsyncIterator[RecordedEvent]):
    """The events :func:`follow` yields: ``async for`` them, or ``async with`` to close them."""

    __slots__ = (
        "_arrived",
        "_buffer",
        "_closed",
        "_live",
        "_options",
        "_owns_until",
        "_position",
        "_reader",
        "_store",
        "_until",
        "_where",
    )

    def __init__(
        self,
        store: AsyncEventStore,
        live: AsyncLiveEvents | None,
        options: dict[str, Any],
        where: Callable[[RecordedEvent], object] | None,
        until: Awaitable[object] | None,
    ) -> None:
        self._store = store
        self._live = live
        self._options = options
        self._where = where
        self._until: Awaitable[object] | asyncio.Future[object] | None = until
        self._owns_until = False
        self._position = None if live is None else live.position
        self._closed = False
        self._buffer: collections.deque[RecordedEvent] = collections.deque()
        self._reader: asyncio.Task[None] | None = None
        self._arrived: asyncio.Future[None] | None = None

    def __repr__(self) -> str:
        return f"<Following {self._store!r} after position {self._position}>"

    @property
    def position(self) -> int | None:
        """The last position yielded, or the one given as *after*: where a client resumes.

        ``None`` until the first event, when *after* was ``None`` and the stream not yet read.
        """
        return self._position

    async def __anext__(self) -> RecordedEvent:
        if self._closed:
            raise StopAsyncIteration
        until = self._until
        if until is None:
            recorded = await self._next()
            self._position = recorded.position
            return recorded
        if not isinstance(until, asyncio.Future):
            self._owns_until = inspect.iscoroutine(until)
            until = self._until = asyncio.ensure_future(until)
        buffer = self._buffer
        if buffer:
            await asyncio.sleep(0)  # one turn of the loop: a disconnect that came is seen first
        while not (buffer or self._closed or until.done()):
            await self._wait(until)
        if self._closed:  # by another task, while this one waited
            raise StopAsyncIteration
        if until.done():
            return await self._end(until)
        recorded = buffer.popleft()
        self._position = recorded.position
        return recorded

    async def _wait(self, until: asyncio.Future[object]) -> None:
        """Wait for the reader's next event, its end or *until*; start a reader if none reads."""
        reader = self._reader
        if reader is None or reader.done():
            self._reader = None
            if reader is not None:
                reader.result()  # one that read its fill ends quietly; one that failed, here
            reader = self._reader = asyncio.ensure_future(self._read())
        arrived = self._arrived = asyncio.get_running_loop().create_future()
        await asyncio.wait((arrived, until, reader), return_when=asyncio.FIRST_COMPLETED)

    async def _read(self) -> None:
        """Read up to :data:`AHEAD` events the client wants, telling a waiting client of each."""
        buffer = self._buffer
        while len(buffer) < AHEAD:
            buffer.append(await self._next())
            arrived = self._arrived
            if arrived is not None and not arrived.done():
                arrived.set_result(None)

    async def _next(self) -> RecordedEvent:
        live = self._live
        if live is None:
            after = self._position = await self._store.head_position()
            live = self._live = self._store.subscribe(from_position=after + 1, **self._options)
        where = self._where
        async for recorded in live:
            if where is None or where(recorded):
                return recorded
        raise StopAsyncIteration  # pragma: no cover - a live stream ends only when closed

    async def _end(self, until: asyncio.Future[object]) -> RecordedEvent:
        if not until.cancelled():
            until.exception()  # the client's way of leaving, even by raising, ends the stream
        await self.aclose()
        raise StopAsyncIteration

    async def aclose(self) -> None:
        """Stop following the store and stop waiting for the client; closing twice is harmless."""
        self._closed = True
        self._buffer.clear()
        until = self._until
        if self._owns_until and isinstance(until, asyncio.Future) and not until.done():
            until.cancel()
        reader = self._reader
        if reader is not None:
            reader.cancel()
            if reader.done() and not reader.cancelled():
                reader.exception()  # it had failed: what the store raised is moot once closed
        if self._live is not None:
            await self._live.aclose()

    async def __aenter__(self) -> Following:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def follow(
    store: AsyncEventStore,
    *,
    after: int | None = None,
    types: Iterable[type | str] | None = None,
    where: Callable[[RecordedEvent], object] | None = None,
    until: Awaitable[object] | None = None,
    poll_interval: float = 0.5,
) -> Following:
    """Yield *store*'s events after position *after*, then each new one, until *until* completes.

    *after* is the last position the client has (``0`` for everything); ``None`` means only
    events committed from now on. *types* keeps events of those classes or stored names and
    *where* those it returns true for. *until* is what completes when the client is gone
    (a disconnect, returned or raised): the stream then ends cleanly, as it does when it is
    closed or the task reading it is cancelled. A coroutine given as *until* is run by the
    stream and cancelled when it closes.
    """
    if after is not None and (type(after) is not int or after < 0):
        raise InvalidArgumentError("after", after, "None or a position of 0 or more (an int)")
    if where is not None and not callable(where):
        raise InvalidArgumentError("where", where, "None or a callable(recorded_event)")
    if until is not None and not inspect.isawaitable(until):
        raise InvalidArgumentError("until", until, "None or an awaitable, such as a disconnect")
    options: dict[str, Any] = {
        "types": None if types is None else tuple(types),
        "poll_interval": poll_interval,
    }
    # Made now, so the store checks the options before the client first reads; with no
    # position to start from, the stream starts where the store's head is at that read.
    live = store.subscribe(from_position=1 if after is None else after + 1, **options)
    return Following(store, None if after is None else live, options, where, until)


def event_json(recorded: RecordedEvent, types: EventTypes) -> dict[str, Any]:
    """*recorded* as a JSON-ready dict: where it is, its stored type, its data and metadata.

    ``data`` is the event as *types* stores it, so a client reads the same JSON a store
    holds; ``recorded_at`` is ISO 8601 and ``event_id`` the UUID's text.
    """
    event = recorded.event
    data = event.data if isinstance(event, RawEvent) else json.loads(types.encode(event)[2])
    return {
        "position": recorded.position,
        "stream_id": recorded.stream_id,
        "version": recorded.version,
        "event_id": str(recorded.event_id),
        "type": recorded.type,
        "data": data,
        "metadata": dict(recorded.metadata),
        "recorded_at": recorded.recorded_at.isoformat(),
    }
