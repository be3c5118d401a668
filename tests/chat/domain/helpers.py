"""A chat on a real SQLite file, driven from plain test code on an event loop of its own.

Between calls the loop stands still, so the projection and the welcome saga only move while
a call runs; :meth:`Driven.settle` and :meth:`Driven.welcomes` wait for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from busway import Command, Query
from busway.eventstore import RecordedEvent
from examples.chat.messages import ListMessages, MessageView
from examples.chat.service import WELCOME_AUTHOR, Chat

T = TypeVar("T")
E = TypeVar("E", bound=Exception)

WAIT = 5.0  # seconds: far above what the background tasks need


class Driven:
    """A running chat, and blocking ways to use it."""

    def __init__(self, loop: asyncio.Runner, chat: Chat) -> None:
        self.loop = loop
        self.chat = chat

    def run(self, awaitable: Awaitable[T]) -> T:
        async def go() -> T:
            return await awaitable

        return self.loop.run(go())

    def execute(self, command: Command[T]) -> T:
        return self.run(self.chat.commands.execute(command))

    def ask(self, query: Query[T]) -> T:
        return self.run(self.chat.queries.execute(query))

    def head(self) -> int:
        return self.run(self.chat.store.head_position())

    def events(self, after: int = 0) -> list[RecordedEvent]:
        async def read() -> list[RecordedEvent]:
            return [r async for r in self.chat.store.read_all(from_position=after + 1)]

        return self.run(read())

    def send(self, message: Command[Any] | Query[Any]) -> object:
        """Execute a command or ask a query."""
        if isinstance(message, Query):
            return self.ask(message)
        return self.execute(message)

    def refused(self, message: Command[Any] | Query[Any], error: type[E]) -> E:
        """Send *message*, expect *error*, check that nothing was stored; return the error."""
        before = self.head()
        with pytest.raises(error) as caught:
            self.send(message)
        assert self.changes(before) == []
        return caught.value

    def changes(self, after: int) -> list[RecordedEvent]:
        """The events stored after position *after*, but for the welcomes the saga posts."""
        return [r for r in self.events(after) if not r.stream_id.startswith("message-welcome-")]

    def settle(self) -> None:
        """Wait until the read model has applied every stored event."""
        self.run(self.chat.wait_for(self.head()))

    def messages(self, room_id: str, first: int = 100) -> list[MessageView]:
        """Every message of the room in the read model, page by page, once it has settled."""
        self.settle()
        found: list[MessageView] = []
        after = None
        while True:
            page = self.ask(ListMessages(room_id, first=first, after=after))
            found.extend(page.items)
            if page.next_cursor is None:
                return found
            after = page.next_cursor

    def welcomes(self, room_id: str, count: int) -> list[MessageView]:
        """Wait until the room shows *count* welcomes (or WAIT passes); return them all."""
        return self.until(lambda: _welcomes(self.messages(room_id)), lambda w: len(w) >= count)

    def until(self, get: Callable[[], T], done: Callable[[T], bool]) -> T:
        """Call *get* until *done* says yes of what it returns, or WAIT passes; return that."""
        deadline = time.monotonic() + WAIT
        value = get()
        while not done(value) and time.monotonic() < deadline:
            self.run(asyncio.sleep(0.01))
            value = get()
        return value


def _welcomes(messages: list[MessageView]) -> list[MessageView]:
    return [m for m in messages if m.author == WELCOME_AUTHOR]


@contextlib.contextmanager
def opened(path: Path, **options: Any) -> Iterator[Driven]:
    """Open the chat at *path* for the block, on a loop of its own, and close it after."""
    with asyncio.Runner() as loop:
        stack = contextlib.AsyncExitStack()
        chat = loop.run(stack.enter_async_context(Chat.open(path, **options)))
        try:
            yield Driven(loop, chat)
        finally:
            loop.run(stack.aclose())
