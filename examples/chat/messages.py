"""What the chat is asked (commands, queries) and what it records (events)."""

from __future__ import annotations

from datetime import datetime

import attrs

from busway import Command, Event, Query
from busway.eventstore import EventTypes

__all__ = [
    "EVENT_TYPES",
    "MESSAGE_EVENTS",
    "DeleteMessage",
    "EditMessage",
    "GetMessage",
    "GetRoom",
    "JoinRoom",
    "LeaveRoom",
    "ListMessages",
    "ListRooms",
    "MemberJoined",
    "MemberLeft",
    "MessageDeleted",
    "MessageEdited",
    "MessagePage",
    "MessagePosted",
    "MessageView",
    "OpenRoom",
    "PostMessage",
    "RoomOpened",
    "RoomPage",
    "RoomView",
    "WelcomeMember",
    "Written",
]

# -- events ----------------------------------------------------------------------------------


@attrs.frozen
class RoomOpened(Event):
    """A room was opened; its opener is its first member."""

    room_id: str
    name: str
    opened_by: str


@attrs.frozen
class MemberJoined(Event):
    room_id: str
    user: str


@attrs.frozen
class MemberLeft(Event):
    room_id: str
    user: str


@attrs.frozen
class MessagePosted(Event):
    message_id: str
    room_id: str
    author: str
    text: str


@attrs.frozen
class MessageEdited(Event):
    message_id: str
    room_id: str
    text: str


@attrs.frozen
class MessageDeleted(Event):
    message_id: str
    room_id: str


EVENT_TYPES = EventTypes(
    RoomOpened, MemberJoined, MemberLeft, MessagePosted, MessageEdited, MessageDeleted
)
"""The events the store holds, under their class names."""

MESSAGE_EVENTS = (MessagePosted, MessageEdited, MessageDeleted)
"""The events that change a room's messages, for those who follow only those."""

# -- commands --------------------------------------------------------------------------------


@attrs.frozen
class Written:
    """What a command wrote: the room's or message's id, and the store position it reached.

    Pass ``position`` to ``Chat.wait_for`` to read your own write from the read model.
    """

    id: str
    position: int


@attrs.frozen
class OpenRoom(Command[Written]):
    """Open a room under a new id; *user* opens it and becomes its first member."""

    room_id: str
    name: str
    user: str


@attrs.frozen
class JoinRoom(Command[Written]):
    """Make *user* a member of the room, who may then post in it."""

    room_id: str
    user: str


@attrs.frozen
class LeaveRoom(Command[Written]):
    """Take *user*, a member, out of the room."""

    room_id: str
    user: str


@attrs.frozen
class PostMessage(Command[Written]):
    """Post *text* to the room as *author*, a member; the id is made unless given."""

    room_id: str
    author: str
    text: str
    message_id: str | None = None


@attrs.frozen
class EditMessage(Command[Written]):
    """Replace the text of a message; only its author may."""

    message_id: str
    author: str
    text: str


@attrs.frozen
class DeleteMessage(Command[Written]):
    """Delete a message; only its author may, and it cannot be edited afterwards."""

    message_id: str
    author: str


@attrs.frozen
class WelcomeMember(Command[Written]):
    """Post the welcome for *user*'s join under *message_id*; sent by the welcome saga.

    Sending it again with the same id posts nothing more, so a resend is harmless.
    """

    room_id: str
    user: str
    message_id: str


# -- queries ---------------------------------------------------------------------------------


@attrs.frozen
class RoomView:
    """A room as the read model shows it: members in the order they joined."""

    room_id: str
    name: str
    members: tuple[str, ...]
    message_count: int


@attrs.frozen
class RoomPage:
    """One page of rooms, oldest first; pass ``next_cursor`` as ``after`` for the next one."""

    items: tuple[RoomView, ...]
    next_cursor: str | None


@attrs.frozen
class MessageView:
    """A message as the read model shows it; ``position`` is where it was posted."""

    message_id: str
    room_id: str
    author: str
    text: str
    posted_at: datetime
    position: int
    edited: bool


@attrs.frozen
class MessagePage:
    """One page of a room's messages, oldest first; pass ``next_cursor`` as ``after``."""

    items: tuple[MessageView, ...]
    next_cursor: str | None


@attrs.frozen
class ListRooms(Query[RoomPage]):
    """Every room, oldest first, *first* (1 to 100) at a time, after the cursor *after*."""

    first: int = 20
    after: str | None = None


@attrs.frozen
class GetRoom(Query[RoomView]):
    """One room; unknown ids raise ``AggregateNotFoundError``."""

    room_id: str


@attrs.frozen
class ListMessages(Query[MessagePage]):
    """A room's messages, oldest first and without deleted ones, *first* (1 to 100) at a time."""

    room_id: str
    first: int = 50
    after: str | None = None


@attrs.frozen
class GetMessage(Query[MessageView]):
    """One message; unknown or deleted ids raise ``AggregateNotFoundError``."""

    message_id: str
