"""What every request sees of the running server: the chat, and its live streams counted."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import attrs
from starlette.requests import HTTPConnection

from busway.eventstore import AsyncEventStore, RecordedEvent
from busway.web import Following, follow
from examples.chat.service import Chat

__all__ = ["Context", "Live", "context_of", "in_room"]


def in_room(room_id: str) -> Callable[[RecordedEvent], bool]:
    """Accept the events of one room: every chat event names its room."""
    return lambda recorded: getattr(recorded.event, "room_id", None) == room_id


class Live:
    """Follows the store for subscriptions and pushes, and counts those open.

    The count is the server's own view of its streams: it falls when a client goes away,
    which is how an operator (or a test) sees that nothing is left running for it.
    """

    def __init__(self, store: AsyncEventStore) -> None:
        self.store = store
        self.open = 0

    @asynccontextmanager
    async def follow(
        self,
        *,
        after: int | None,
        where: Callable[[RecordedEvent], bool],
        types: tuple[type, ...] | None = None,
        until: Awaitable[object] | None = None,
    ) -> AsyncIterator[Following]:
        """Follow the store after *after* while the block runs, counted as open."""
        self.open += 1
        try:
            async with follow(
                self.store, after=after, types=types, where=where, until=until
            ) as following:
                yield following
        finally:
            self.open -= 1


@attrs.frozen
class Context:
    """The open chat and its live streams, made once when the server starts."""

    chat: Chat
    live: Live


def context_of(connection: HTTPConnection) -> Context:
    """Return the context the app's lifespan put in the connection's state."""
    context: Context = connection.state.context
    return context
