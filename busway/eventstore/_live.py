"""Live streams: every event from a position on, then each new one as it is committed.

One flow decides what a stream does next (read the next page, or wait for the store's
signal) and keeps its place; :class:`LiveEvents` performs the reads and waits by blocking,
:class:`AsyncLiveEvents` by awaiting, both through the drivers of ``busway._effects``.

A stream notes the signal's count before each read, so an append that commits while it
reads wakes its next wait at once. A store without a signal (``appended``) is read again
every *poll_interval* seconds; so are other processes' appends to an SQLite file.
"""

from __future__ import annotations

import collections
import math
import threading
from collections.abc import AsyncIterator, Generator, Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final, TypeAlias, final

from .._effects import arun, run
from .._signal import Notifying, Signal
from ..errors import InvalidArgumentError
from ._core import check_position, type_names, wanted_types
from ._serialization import EventTypes
from ._types import RecordedEvent

if TYPE_CHECKING:
    from ._protocol import AsyncEventStore, EventStore

__all__ = ["AsyncLiveEvents", "LiveEvents"]

PAGE: Final = 500
"""At most this many events are read, and held, at a time."""

_LONGEST_INTERVAL: Final = min(threading.TIMEOUT_MAX, 2_000_000.0)


@final
class _Read:
    """Read the next page from *start*, of *types* only."""

    __slots__ = ("start", "types")

    def __init__(self, start: int, types: tuple[type | str, ...] | None) -> None:
        self.start = start
        self.types = types


@final
class _Head:
    """Ask for the store's head position."""

    __slots__ = ()


@final
class _Wait:
    """Wait until *signal* moves on from *seen*, for *timeout* seconds at most."""

    __slots__ = ("seen", "signal", "timeout")

    def __init__(self, signal: Signal, seen: int, timeout: float) -> None:
        self.signal = signal
        self.seen = seen
        self.timeout = timeout


_Effect: TypeAlias = _Read | _Head | _Wait
_HEAD: Final = _Head()


def check_interval(value: object) -> float:
    """Return *value* if it is a number of seconds a live stream may wait between reads."""
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not 0 < value <= _LONGEST_INTERVAL
        or math.isnan(value)
    ):
        raise InvalidArgumentError(
            "poll_interval",
            value,
            f"a number of seconds above 0 and at most {_LONGEST_INTERVAL:,.0f}",
        )
    return float(value)


def _signal_of(store: object) -> Signal | None:
    return store.appended if isinstance(store, Notifying) else None


@final
class _Follow:
    """Where a live stream is, what it holds, and the flow that gets it the next events."""

    __slots__ = (
        "_buffer",
        "_caught_up",
        "_closed",
        "_seen",
        "_start",
        "_types",
        "_waiting",
        "interval",
        "position",
        "signal",
    )

    def __init__(
        self,
        store_types: EventTypes,
        signal: Signal | None,
        from_position: object,
        types: Iterable[type | str] | None,
        poll_interval: object,
    ) -> None:
        self._start = check_position(from_position)
        self._types = wanted_types(types)
        type_names(store_types, self._types)  # an unregistered class fails here, not later
        self.interval = check_interval(poll_interval)
        # A store that tells nobody is polled: its private signal wakes only on close().
        self.signal = Signal() if signal is None else signal
        self.position = self._start - 1
        self._buffer: collections.deque[RecordedEvent] = collections.deque()
        self._seen = 0
        self._caught_up = False
        self._closed = False
        self._waiting = False

    def take(self) -> RecordedEvent | None:
        """Return the next event in hand, None if there is none."""
        if not self._buffer:
            return None
        event = self._buffer.popleft()
        self.position = event.position
        return event

    def fill(self) -> Generator[_Effect, Any, bool]:
        """Get the next events in hand, waiting as long as it takes; False once closed.

        What a failed read or wait raises leaves the place as it was: the next call reads
        or waits again (a task cancelled while waiting may simply ask again).
        """
        while True:
            if self._caught_up:
                self._waiting = True
                try:
                    if not self._closed:  # looked at after raising the flag: see close()
                        yield _Wait(self.signal, self._seen, self.interval)
                finally:
                    self._waiting = False
                self._caught_up = False
            if self._closed:
                return False
            self._seen = self.signal.count  # before the read: a commit during it is not lost
            # With a type filter, the head read first says how far a short page looked, so
            # the events of other types there are not read again after every wake-up.
            head = None if self._types is None else (yield _HEAD)
            page: list[RecordedEvent] = yield _Read(self._start, self._types)
            if len(page) < PAGE:
                self._caught_up = True
                if head is not None:
                    self._start = max(self._start, head + 1)
            if page:
                self._start = max(self._start, page[-1].position + 1)
                self._buffer.extend(page)
                return True

    def close(self) -> None:
        """End the stream; a wait under way in another thread or task ends too."""
        self._closed = True
        self._buffer.clear()
        if self._waiting:
            self.signal.notify()


@final
class LiveEvents(Iterator[RecordedEvent]):
    """Every event of *store* from *from_position* on, then each new one as it commits.

    Iterating blocks while the store has nothing new: an append through the store (or,
    for SQLite, any store on the same file in this process) wakes it at once, and other
    appends are found within *poll_interval* seconds. Events come in position order, each
    once, for as long as you iterate; ``close()`` (or leaving a ``with`` block) ends it.
    *types* keeps only events of those classes or stored type names. What the store raises
    (``StoreClosedError`` once it is closed) comes out of ``next()``.
    """

    __slots__ = ("_follow", "_store")

    def __init__(
        self,
        store: EventStore,
        *,
        from_position: int = 1,
        types: Iterable[type | str] | None = None,
        poll_interval: float = 0.5,
    ) -> None:
        self._follow = _Follow(store.types, _signal_of(store), from_position, types, poll_interval)
        self._store = store

    def __repr__(self) -> str:
        return f"<LiveEvents of {self._store!r} at position {self.position}>"

    @property
    def position(self) -> int:
        """The position of the last event yielded; before any, the one before the first read."""
        return self._follow.position

    def __next__(self) -> RecordedEvent:
        follow = self._follow
        event = follow.take()
        while event is None:
            if not run(follow.fill(), self._perform):
                raise StopIteration
            event = follow.take()
        return event

    def _perform(self, effect: _Effect) -> object:
        if type(effect) is _Read:
            return list(
                self._store.read_all(from_position=effect.start, limit=PAGE, types=effect.types)
            )
        if type(effect) is _Wait:
            return effect.signal.wait(effect.seen, effect.timeout)
        return self._store.head_position()

    def close(self) -> None:
        """Stop following the store; closing twice is harmless."""
        self._follow.close()

    def __enter__(self) -> LiveEvents:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


@final
class AsyncLiveEvents(AsyncIterator[RecordedEvent]):
    """:class:`LiveEvents` for an :class:`AsyncEventStore`: ``async for`` it.

    A caught-up stream awaits the store's signal without holding a thread, however many
    streams wait; ``aclose()`` (or leaving an ``async with`` block) ends it.
    """

    __slots__ = ("_follow", "_store")

    def __init__(
        self,
        store: AsyncEventStore,
        *,
        from_position: int = 1,
        types: Iterable[type | str] | None = None,
        poll_interval: float = 0.5,
    ) -> None:
        self._follow = _Follow(store.types, _signal_of(store), from_position, types, poll_interval)
        self._store = store

    def __repr__(self) -> str:
        return f"<AsyncLiveEvents of {self._store!r} at position {self.position}>"

    @property
    def position(self) -> int:
        """The position of the last event yielded; before any, the one before the first read."""
        return self._follow.position

    async def __anext__(self) -> RecordedEvent:
        follow = self._follow
        event = follow.take()
        while event is None:
            if not await arun(follow.fill(), self._perform):
                raise StopAsyncIteration
            event = follow.take()
        return event

    async def _perform(self, effect: _Effect) -> object:
        if type(effect) is _Read:
            page = self._store.read_all(from_position=effect.start, limit=PAGE, types=effect.types)
            return [recorded async for recorded in page]
        if type(effect) is _Wait:
            return await effect.signal.wait_async(effect.seen, effect.timeout)
        return await self._store.head_position()

    async def aclose(self) -> None:
        """Stop following the store; closing twice is harmless."""
        self._follow.close()

    async def __aenter__(self) -> AsyncLiveEvents:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
