"""The chat wired up on one SQLite file: store, buses, read model and welcome saga.

Everything lives in the one file: the events, the read model's tables and their
checkpoint, the welcome sagas and theirs. Commands are checked (:func:`domain.problems`)
before any handler runs, each in a correlation scope of its own, whose ids the events it
stores carry in their metadata; a command that lost a race for a room or message runs
again on its fresh state.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from busway import (
    AggregateExistsError,
    AggregateNotFoundError,
    AsyncCommandBus,
    AsyncQueryBus,
    ConcurrencyError,
    Registry,
)
from busway.aggregates import Aggregate, AsyncRepository
from busway.eventstore import AsyncEventStore, AsyncSQLiteEventStore
from busway.middleware import correlation, retry, validation
from busway.projections import AsyncProjectionRunner, SQLiteCheckpointStore
from busway.sagas import AsyncSagaManager, SQLiteSagaStore

from .domain import WELCOME_AUTHOR, IdTakenError, Message, NotFoundError, Room, problems
from .messages import (
    EVENT_TYPES,
    DeleteMessage,
    EditMessage,
    JoinRoom,
    LeaveRoom,
    OpenRoom,
    PostMessage,
    WelcomeMember,
    Written,
)
from .read_model import ChatProjection, ChatQueries
from .welcome import Welcome, welcome_text

__all__ = ["WELCOME_AUTHOR", "Chat"]

A = TypeVar("A", bound=Aggregate)

_log = logging.getLogger("examples.chat")


def _new_id() -> str:
    return uuid.uuid4().hex


class Chat:
    """Commands go through ``Room`` and ``Message`` aggregates into :attr:`store`; queries
    read the tables a projection keeps in the same SQLite file.

    Open it with ``async with Chat.open(path) as chat:``, which runs the projection and the
    welcome saga in the background until the block ends.
    """

    store: AsyncEventStore
    commands: AsyncCommandBus
    queries: AsyncQueryBus

    def __init__(
        self,
        store: AsyncEventStore,
        runner: AsyncProjectionRunner,
        read_model: ChatQueries,
        new_id: Callable[[], str],
    ) -> None:
        self.store = store
        self._new_id = new_id
        self._runner = runner
        self._rooms = AsyncRepository(store, Room)
        self._messages = AsyncRepository(store, Message)
        handlers = Registry()
        for command in (
            self.open_room,
            self.join_room,
            self.leave_room,
            self.post_message,
            self.edit_message,
            self.delete_message,
            self.welcome_member,
        ):
            handlers.command(command)
        for query in (
            read_model.list_rooms,
            read_model.get_room,
            read_model.list_messages,
            read_model.get_message,
        ):
            handlers.query(query)
        self.commands = AsyncCommandBus(handlers)
        self.commands.use(correlation())
        self.commands.use(validation(problems))
        # Users changing one room at once: each loser loads it again and re-decides, so up
        # to ten at once all get through.
        self.commands.use(retry(on=(ConcurrencyError,), attempts=10, backoff=0.001))
        self.queries = AsyncQueryBus(handlers)
        self.queries.use(validation(problems))

    @classmethod
    @contextlib.asynccontextmanager
    async def open(
        cls, path: str | os.PathLike[str], *, new_id: Callable[[], str] = _new_id
    ) -> AsyncIterator[Chat]:
        """Open the chat in the SQLite file at *path*, created if missing, and run it.

        *new_id* makes the ids of messages posted without one.
        """
        name = os.fspath(path)
        async with contextlib.AsyncExitStack() as stack:
            store = await stack.enter_async_context(AsyncSQLiteEventStore(name, types=EVENT_TYPES))
            checkpoints = stack.enter_context(contextlib.closing(SQLiteCheckpointStore(name)))
            runner = AsyncProjectionRunner(store, ChatProjection(), checkpoints=checkpoints)
            read_model = ChatQueries(name)
            stack.callback(read_model.close)
            chat = cls(store, runner, read_model, new_id)
            sagas = stack.enter_context(contextlib.closing(SQLiteSagaStore(name)))
            manager = AsyncSagaManager(Welcome, store=sagas, commands=chat.commands)
            await stack.enter_async_context(runner.running())
            await stack.enter_async_context(
                manager.background(events=store, subscription="welcome", report=_report)
            )
            yield chat

    async def wait_for(self, position: int, *, timeout: float = 5.0) -> None:
        """Return once the read model has applied every event up to store *position*.

        Raise ``ProjectionTimeoutError`` after *timeout* seconds.
        """
        await self._runner.wait_for(position, timeout)

    # -- command handlers ------------------------------------------------------------------

    async def open_room(self, command: OpenRoom) -> Written:
        room = Room.open(command.room_id, command.name, command.user)
        return await self._save(self._rooms, room)

    async def join_room(self, command: JoinRoom) -> Written:
        room = await self._room(command.room_id)
        room.join(command.user)
        return await self._save(self._rooms, room)

    async def leave_room(self, command: LeaveRoom) -> Written:
        room = await self._room(command.room_id)
        room.leave(command.user)
        return await self._save(self._rooms, room)

    async def post_message(self, command: PostMessage) -> Written:
        room = await self._room(command.room_id)
        room.check_member(command.author)
        message_id = self._new_id() if command.message_id is None else command.message_id
        message = Message.post(message_id, room.id, command.author, command.text)
        return await self._save(self._messages, message)

    async def edit_message(self, command: EditMessage) -> Written:
        message = await self._message(command.message_id)
        message.edit(command.author, command.text)
        return await self._save(self._messages, message)

    async def delete_message(self, command: DeleteMessage) -> Written:
        message = await self._message(command.message_id)
        message.delete(command.author)
        return await self._save(self._messages, message)

    async def welcome_member(self, command: WelcomeMember) -> Written:
        room = await self._room(command.room_id)
        text = welcome_text(command.user, room.name)
        message = Message.post(command.message_id, room.id, WELCOME_AUTHOR, text)
        try:
            return await self._save(self._messages, message)
        except IdTakenError:  # sent again after a stop: it is posted already
            stream = self._messages.stream_id(command.message_id)
            return await self._written(stream, command.message_id, None)

    async def _room(self, room_id: str) -> Room:
        try:
            return await self._rooms.get(room_id)
        except AggregateNotFoundError:
            raise NotFoundError(Room, room_id, "open it first (OpenRoom)") from None

    async def _message(self, message_id: str) -> Message:
        try:
            return await self._messages.get(message_id)
        except AggregateNotFoundError:
            raise NotFoundError(Message, message_id, "it was never posted") from None

    async def _save(self, repository: AsyncRepository[A], aggregate: A) -> Written:
        try:
            version = await repository.save(aggregate)
        except AggregateExistsError as exc:
            raise IdTakenError(
                exc.aggregate_type, exc.aggregate_id, exc.stream_id, exc.actual
            ) from exc
        return await self._written(repository.stream_id(aggregate.id), aggregate.id, version)

    async def _written(self, stream: str, aggregate_id: str, version: int | None) -> Written:
        """Return the Written of *stream* at *version* (None: its last event)."""
        [last] = await self.store.read_stream(
            stream, from_version=version, limit=1, backwards=version is None
        )
        return Written(aggregate_id, last.position)


def _report(exc: Exception) -> None:
    _log.error("the welcome saga failed a pass; it tries again on the next: %s", exc)
