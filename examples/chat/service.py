"""The chat wired up on one SQLite file: store, buses, read model and welcome saga."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from busway import AsyncCommandBus, AsyncQueryBus
from busway.eventstore import AsyncEventStore

__all__ = ["WELCOME_AUTHOR", "Chat"]

WELCOME_AUTHOR = "chat"
"""The author of the welcome messages the chat posts for each member who joins."""


class Chat:
    """Commands go through ``Room`` and ``Message`` aggregates into :attr:`store`; queries
    read the tables a projection keeps in the same SQLite file.

    Open it with ``async with Chat.open(path) as chat:``, which runs the projection and the
    welcome saga in the background until the block ends.
    """

    store: AsyncEventStore
    commands: AsyncCommandBus
    queries: AsyncQueryBus

    @classmethod
    @asynccontextmanager
    async def open(cls, path: str | os.PathLike[str]) -> AsyncIterator[Chat]:
        """Open the chat in the SQLite file at *path*, created if missing, and run it."""
        yield await cls._start(path)

    @classmethod
    async def _start(cls, path: str | os.PathLike[str]) -> Chat:
        raise NotImplementedError

    async def wait_for(self, position: int, *, timeout: float = 5.0) -> None:
        """Return once the read model has applied every event up to store *position*."""
        raise NotImplementedError
