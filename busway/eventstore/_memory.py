"""An event store in a Python process's memory, for tests and short-lived programs."""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, final

from .._closeable import Closeable
from .._signal import Signal
from ._core import (
    Row,
    check_count,
    check_limit,
    check_position,
    check_stream_id,
    check_types,
    concurrency_error,
    decode,
    decode_page,
    matches,
    now,
    prepare,
    resolve_existing,
    type_names,
    wanted,
)
from ._live import LiveEvents
from ._serialization import EventTypes
from ._types import ANY, ExpectedVersion, RecordedEvent

__all__ = ["InMemoryEventStore"]


@final
class InMemoryEventStore(Closeable):
    """An :class:`EventStore` that keeps its events in memory, safe to share between threads.

    Events are stored encoded, exactly as the SQLite store stores them, and decoded on every
    read: a test against this store fails where a production store would, on an event that
    does not survive serialization.
    """

    types: EventTypes

    def __init__(self, *, types: EventTypes, page_size: int = 1000) -> None:
        self.types = check_types(types)
        self._page_size = check_count("page_size", page_size, 1)
        self._lock = threading.Lock()
        self._rows: list[Row] = []  # position order; position p is at index p - 1
        self._streams: dict[str, list[Row]] = {}
        self._ids: dict[bytes, tuple[str, int]] = {}
        self._appended = Signal()

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._rows)} events"
        return f"<InMemoryEventStore {state}>"

    def append(
        self,
        stream_id: str,
        events: Iterable[object],
        *,
        expected_version: ExpectedVersion = ANY,
        metadata: Mapping[str, Any] | None = None,
    ) -> int:
        """Append *events* atomically; return the stream's new version."""
        stream, expected, pending = prepare(
            self.types, stream_id, events, expected_version, metadata
        )
        ids = [p[0] for p in pending]
        with self._lock:
            self._check_open()
            known = self._streams.get(stream)
            current = 0 if known is None else len(known)
            found = {eid: self._ids[eid] for eid in ids if eid in self._ids}
            if found:
                return resolve_existing(stream, expected, ids, found)
            if not matches(expected, current):
                raise concurrency_error(stream, expected, current)
            if not pending:
                return current
            at = now()
            head = len(self._rows)
            rows = [
                (head + i, stream, current + i, eid, name, version, data, meta, at)
                for i, (eid, name, version, data, meta) in enumerate(pending, start=1)
            ]
            self._rows.extend(rows)
            self._streams.setdefault(stream, []).extend(rows)
            for eid, row in zip(ids, rows, strict=True):
                self._ids[eid] = (stream, row[2])
        self._appended.notify()  # out of the lock, where readers can see the events
        return current + len(rows)

    @property
    def appended(self) -> Signal:
        """The signal notified after each append that stored events."""
        return self._appended

    def subscribe(
        self,
        *,
        from_position: int = 1,
        types: Iterable[type | str] | None = None,
        poll_interval: float = 0.5,
    ) -> LiveEvents:
        """Follow the store: every event from *from_position* on, then each new one as it comes.

        Appends wake the stream at once; *poll_interval* only bounds each wait.
        """
        return LiveEvents(
            self, from_position=from_position, types=types, poll_interval=poll_interval
        )

    def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int | None = None,
        limit: int | None = None,
        backwards: bool = False,
    ) -> list[RecordedEvent]:
        """Return a stream's events from *from_version* on, inclusive, at most *limit*."""
        stream = check_stream_id(stream_id)
        start = None if from_version is None else check_count("from_version", from_version, 1)
        count = check_limit(limit)
        with self._lock:
            self._check_open()
            rows = self._streams.get(stream, [])
            if backwards:
                top = len(rows) if start is None else min(start, len(rows))
                bottom = 0 if count is None else max(0, top - count)
                selected = rows[bottom:top][::-1]
            else:
                first = 0 if start is None else start - 1
                selected = rows[first:] if count is None else rows[first : first + count]
        return decode(self.types, selected)

    def read_all(
        self,
        *,
        from_position: int = 1,
        limit: int | None = None,
        types: Iterable[type | str] | None = None,
    ) -> Iterator[RecordedEvent]:
        """Iterate over every stream's events in position order, a page at a time."""
        start = check_position(from_position)
        count = check_limit(limit)
        names = type_names(self.types, types)
        self._check_open()
        return self._iter_all(start, count, names)

    def _iter_all(
        self, position: int, count: int | None, names: frozenset[str] | None
    ) -> Iterator[RecordedEvent]:
        while count is None or count > 0:
            with self._lock:
                self._check_open()
                page = self._rows[position - 1 : position - 1 + self._page_size]
            if not page:
                return
            position = page[-1][0] + 1
            rows = wanted(page, names, count)
            if count is not None:
                count -= len(rows)
            yield from decode_page(self.types, rows)

    def stream_version(self, stream_id: str) -> int:
        """Return the version of a stream's last event; 0 if it has none."""
        stream = check_stream_id(stream_id)
        with self._lock:
            self._check_open()
            return len(self._streams.get(stream, ()))

    def head_position(self) -> int:
        """Return the position of the last event in the store; 0 if it is empty."""
        with self._lock:
            self._check_open()
            return len(self._rows)

    def streams(
        self, *, after: str | None = None, limit: int | None = None
    ) -> Iterator[tuple[str, int]]:
        """Iterate over ``(stream_id, version)`` of every stream, ordered by id."""
        if after is not None:
            check_stream_id(after)
        count = check_limit(limit)
        with self._lock:
            self._check_open()
            found = sorted(
                (s, len(rows)) for s, rows in self._streams.items() if after is None or s > after
            )
        return iter(found if count is None else found[:count])

    def _release(self) -> None:
        self._rows, self._streams, self._ids = [], {}, {}  # nothing can read them any more
        self._appended.notify()  # live streams waiting on the store wake, to find it closed
