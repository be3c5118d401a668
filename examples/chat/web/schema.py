"""The chat in GraphQL: mutations run commands, queries read the read model, a
subscription follows the store.

A mutation waits until the read model has applied what its command wrote, then returns
the view a query would: a client reads its own write. Every busway error becomes a
GraphQL error with a stable ``extensions.code`` (``NOT_FOUND``, ``CONFLICT``,
``INVALID_INPUT``, ...), by :class:`busway.web.strawberry.BuswayErrors`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from datetime import datetime

import strawberry

from busway import Command
from busway.eventstore import RecordedEvent
from busway.web.strawberry import BuswayErrors, BuswaySchema
from examples.chat.messages import (
    DeleteMessage,
    EditMessage,
    GetMessage,
    GetRoom,
    JoinRoom,
    LeaveRoom,
    ListMessages,
    ListRooms,
    MessagePage,
    MessagePosted,
    MessageView,
    OpenRoom,
    PostMessage,
    RoomPage,
    RoomView,
    Written,
)
from examples.chat.web.context import Context, in_room

__all__ = ["schema"]

Info = strawberry.Info[Context, None]


@strawberry.type(description="A room: its members in the order they joined.")
class Room:
    room_id: str
    name: str
    members: list[str]
    message_count: int

    @classmethod
    def of(cls, view: RoomView) -> Room:
        return cls(
            room_id=view.room_id,
            name=view.name,
            members=list(view.members),
            message_count=view.message_count,
        )


@strawberry.type(description="A message; `position` is where it was posted in the store.")
class Message:
    message_id: str
    room_id: str
    author: str
    text: str
    posted_at: datetime
    position: int
    edited: bool

    @classmethod
    def of(cls, view: MessageView) -> Message:
        return cls(
            message_id=view.message_id,
            room_id=view.room_id,
            author=view.author,
            text=view.text,
            posted_at=view.posted_at,
            position=view.position,
            edited=view.edited,
        )

    @classmethod
    def posted(cls, recorded: RecordedEvent) -> Message:
        """The message a ``MessagePosted`` event records, as it was when posted."""
        event = recorded.event
        assert isinstance(event, MessagePosted)
        return cls(
            message_id=event.message_id,
            room_id=event.room_id,
            author=event.author,
            text=event.text,
            posted_at=recorded.recorded_at,
            position=recorded.position,
            edited=False,
        )


@strawberry.type(description="One page of rooms; pass `nextCursor` as `after` for the next.")
class RoomList:
    items: list[Room]
    next_cursor: str | None

    @classmethod
    def of(cls, page: RoomPage) -> RoomList:
        return cls(items=[Room.of(view) for view in page.items], next_cursor=page.next_cursor)


@strawberry.type(description="One page of messages, oldest first; pass `nextCursor` as `after`.")
class MessageList:
    items: list[Message]
    next_cursor: str | None

    @classmethod
    def of(cls, page: MessagePage) -> MessageList:
        return cls(items=[Message.of(view) for view in page.items], next_cursor=page.next_cursor)


@strawberry.type(description="A deleted message: its id and the position of its deletion.")
class DeletedMessage:
    message_id: str
    position: int


async def write(info: Info, command: Command[Written]) -> Written:
    """Execute *command*, then wait until the read model shows what it wrote."""
    chat = info.context.chat
    written = await chat.commands.execute(command)
    await chat.wait_for(written.position)
    return written


# -- queries ---------------------------------------------------------------------------------


async def list_rooms(info: Info, first: int = 20, after: str | None = None) -> RoomList:
    return RoomList.of(await info.context.chat.queries.execute(ListRooms(first, after)))


async def get_room(info: Info, room_id: str) -> Room:
    return Room.of(await info.context.chat.queries.execute(GetRoom(room_id)))


async def list_messages(
    info: Info, room_id: str, first: int = 50, after: str | None = None
) -> MessageList:
    page = await info.context.chat.queries.execute(ListMessages(room_id, first, after))
    return MessageList.of(page)


async def get_message(info: Info, message_id: str) -> Message:
    return Message.of(await info.context.chat.queries.execute(GetMessage(message_id)))


def live_streams(info: Info) -> int:
    return info.context.live.open


@strawberry.type
class Query:
    rooms: RoomList = strawberry.field(
        resolver=list_rooms, description="Every room, oldest first, `first` (1 to 100) at a time."
    )
    room: Room = strawberry.field(
        resolver=get_room, description="One room; an unknown id is a NOT_FOUND error."
    )
    messages: MessageList = strawberry.field(
        resolver=list_messages,
        description="A room's messages, oldest first, `first` (1 to 100) at a time; deleted "
        "ones are left out.",
    )
    message: Message = strawberry.field(
        resolver=get_message, description="One message; an unknown or deleted id is NOT_FOUND."
    )
    live_streams: int = strawberry.field(
        resolver=live_streams,
        description="How many subscriptions and pushes the server is streaming now.",
    )


# -- mutations -------------------------------------------------------------------------------


async def open_room(info: Info, room_id: str, name: str, user: str) -> Room:
    written = await write(info, OpenRoom(room_id, name, user))
    return await get_room(info, written.id)


async def join_room(info: Info, room_id: str, user: str) -> Room:
    written = await write(info, JoinRoom(room_id, user))
    return await get_room(info, written.id)


async def leave_room(info: Info, room_id: str, user: str) -> Room:
    written = await write(info, LeaveRoom(room_id, user))
    return await get_room(info, written.id)


async def post_message(
    info: Info, room_id: str, author: str, text: str, message_id: str | None = None
) -> Message:
    written = await write(info, PostMessage(room_id, author, text, message_id))
    return await get_message(info, written.id)


async def edit_message(info: Info, message_id: str, author: str, text: str) -> Message:
    written = await write(info, EditMessage(message_id, author, text))
    return await get_message(info, written.id)


async def delete_message(info: Info, message_id: str, author: str) -> DeletedMessage:
    written = await write(info, DeleteMessage(message_id, author))
    return DeletedMessage(message_id=written.id, position=written.position)


@strawberry.type
class Mutation:
    open_room: Room = strawberry.mutation(
        resolver=open_room, description="Open a room; `user` opens it and is its first member."
    )
    join_room: Room = strawberry.mutation(
        resolver=join_room, description="Make `user` a member of the room."
    )
    leave_room: Room = strawberry.mutation(
        resolver=leave_room, description="Take `user`, a member, out of the room."
    )
    post_message: Message = strawberry.mutation(
        resolver=post_message,
        description="Post as `author`, a member; the id is made unless given (CONFLICT if taken).",
    )
    edit_message: Message = strawberry.mutation(
        resolver=edit_message, description="Replace the text of a message; only its author may."
    )
    delete_message: DeletedMessage = strawberry.mutation(
        resolver=delete_message, description="Delete a message; only its author may."
    )


# -- subscriptions ---------------------------------------------------------------------------


async def follow_messages(
    info: Info, room_id: str, after: int | None = None
) -> AsyncGenerator[Message, None]:
    await get_room(info, room_id)  # an unknown room is an error, not a silent stream
    async with info.context.live.follow(
        after=after, types=(MessagePosted,), where=in_room(room_id)
    ) as following:
        async for recorded in following:
            yield Message.posted(recorded)


@strawberry.type
class Subscription:
    messages: AsyncGenerator[Message, None] = strawberry.subscription(
        resolver=follow_messages,
        description="The room's messages as they are posted, after store position `after` "
        "(the last `position` a client saw, to resume) or, without it, from now on.",
    )


schema = BuswaySchema(
    query=Query, mutation=Mutation, subscription=Subscription, extensions=[BuswayErrors]
)
"""The chat's GraphQL schema: errors coded by :class:`BuswayErrors`, and only the server's
faults logged."""
