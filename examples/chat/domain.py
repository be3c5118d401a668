"""The chat's aggregates and rules: rooms with members, and messages their authors own.

A message lives in a stream of its own, so posting in a busy room never conflicts with
joins, and editing one message never with another. Two kinds of rule: what a command must
look like (:func:`problems`, run by the validation middleware before any handler), and
what the aggregates decide from their history (only members post, only authors edit or
delete, nothing is edited after its deletion). Either way a refusal is a
``busway.ValidationError`` and nothing is stored.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import attrs

from busway import AggregateExistsError, AggregateNotFoundError, ValidationError
from busway.aggregates import Aggregate, when

from .messages import (
    MemberJoined,
    MemberLeft,
    MessageDeleted,
    MessageEdited,
    MessagePosted,
    RoomOpened,
)

__all__ = [
    "FIRST_MAX",
    "NAME_MAX",
    "TEXT_MAX",
    "USER_MAX",
    "WELCOME_AUTHOR",
    "ChatRuleError",
    "IdTakenError",
    "Message",
    "NotFoundError",
    "Room",
    "problems",
]

WELCOME_AUTHOR = "chat"
"""The author of welcome messages; no user may take this name, so no user posts as it."""

TEXT_MAX = 2000
NAME_MAX = 100
USER_MAX = 40
FIRST_MAX = 100
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


class ChatRuleError(ValidationError):
    """A command the chat's rules refuse, for what the room or message is; nothing was stored."""

    def __init__(self, problem: str) -> None:
        self.message = None
        self.problems = (problem,)
        Exception.__init__(self, problem)


class NotFoundError(AggregateNotFoundError):
    """No room or message has the id asked for (a deleted message is gone too)."""

    def __init__(self, kind: type[Aggregate], aggregate_id: str, hint: str) -> None:
        self.aggregate_type = kind
        self.aggregate_id = aggregate_id
        self.stream_id = f"{kind.__name__.lower()}-{aggregate_id}"
        Exception.__init__(self, f"no {kind.__name__.lower()} has the id {aggregate_id!r}; {hint}")


class IdTakenError(AggregateExistsError):
    """A new room or message was given the id of one there is; nothing was stored."""

    def _explain(self, stream_id: str, expected: object, actual: int) -> str:
        kind = self.aggregate_type.__name__.lower()
        advice = ", or leave message_id out to get a new one" if kind == "message" else ""
        return (
            f"a {kind} with the id {self.aggregate_id!r} is there already; nothing was "
            f"stored. Choose another id{advice}"
        )


class Room(Aggregate):
    """A room: opened by a user, its first member; others join and leave."""

    name: str
    members: list[str]

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.name = ""
        self.members = []

    @classmethod
    def open(cls, room_id: str, name: str, user: str) -> Room:
        """Return a new room, with RoomOpened recorded."""
        room = cls(room_id)
        room.record(RoomOpened(room_id, name.strip(), user))
        return room

    def join(self, user: str) -> None:
        """Make *user* a member; joining again records nothing (the member stays as it was)."""
        if user not in self.members:
            self.record(MemberJoined(self.id, user))

    def leave(self, user: str) -> None:
        self.check_member(user)
        self.record(MemberLeft(self.id, user))

    def check_member(self, user: str) -> None:
        """Raise ChatRuleError unless *user* is a member now."""
        if user not in self.members:
            raise ChatRuleError(
                f"{user!r} is not a member of room {self.id!r}; join it first (JoinRoom)"
            )

    @when(RoomOpened)
    def _opened(self, event: RoomOpened) -> None:
        self.name = event.name
        self.members = [event.opened_by]

    @when(MemberJoined)
    def _joined(self, event: MemberJoined) -> None:
        self.members.append(event.user)

    @when(MemberLeft)
    def _left(self, event: MemberLeft) -> None:
        self.members.remove(event.user)


class Message(Aggregate):
    """A message in a room: its author may edit it until they delete it."""

    room_id: str
    author: str
    text: str
    deleted: bool

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.room_id = ""
        self.author = ""
        self.text = ""
        self.deleted = False

    @classmethod
    def post(cls, message_id: str, room_id: str, author: str, text: str) -> Message:
        """Return a new message, with MessagePosted recorded (membership is the caller's check)."""
        message = cls(message_id)
        message.record(MessagePosted(message_id, room_id, author, text.strip()))
        return message

    def edit(self, author: str, text: str) -> None:
        self._check_change(author, "edit")
        self.record(MessageEdited(self.id, self.room_id, text.strip()))

    def delete(self, author: str) -> None:
        self._check_change(author, "delete")
        self.record(MessageDeleted(self.id, self.room_id))

    def _check_change(self, author: str, what: str) -> None:
        if self.deleted:
            raise ChatRuleError(f"message {self.id!r} is deleted; it cannot be changed any more")
        if author != self.author:
            raise ChatRuleError(
                f"message {self.id!r} is {self.author!r}'s, so {author!r} cannot {what} it; "
                "only its author can"
            )

    @when(MessagePosted)
    def _posted(self, event: MessagePosted) -> None:
        self.room_id = event.room_id
        self.author = event.author
        self.text = event.text

    @when(MessageEdited)
    def _edited(self, event: MessageEdited) -> None:
        self.text = event.text

    @when(MessageDeleted)
    def _deleted(self, event: MessageDeleted) -> None:
        self.deleted = True


# -- what a message must look like -----------------------------------------------------------

_Check = Callable[[str], "str | None"]


def _id(value: str) -> str | None:
    if _ID.fullmatch(value):
        return None
    return "must be 1 to 64 letters, digits, '-' or '_'"


def _user(value: str) -> str | None:
    if not 1 <= len(value) <= USER_MAX or value != value.strip() or not value.isprintable():
        return f"must be 1 to {USER_MAX} printable characters, without spaces around them"
    if value == WELCOME_AUTHOR:
        return "must be another name than the chat's own"
    return None


def _length(most: int) -> _Check:
    def check(value: str) -> str | None:
        if 1 <= len(value.strip()) <= most:
            return None
        return f"must be 1 to {most} characters (spaces around them not counted)"

    return check


# Each str field by name, and what else it must be (None: nothing; the read model tells
# which strs are cursors).
_CHECKS: dict[str, _Check | None] = {
    "room_id": _id,
    "message_id": _id,
    "user": _user,
    "author": _user,
    "name": _length(NAME_MAX),
    "text": _length(TEXT_MAX),
    "after": None,
}


def problems(message: object) -> list[str]:
    """Return what is wrong with the fields of a chat command or query; empty if nothing.

    The validation middleware raises them as one ValidationError. A field whose default is
    None may be None.
    """
    found: list[str] = []
    cls = type(message)
    for field in attrs.fields(cls) if attrs.has(cls) else ():
        value = getattr(message, field.name)
        if field.name == "first":
            if type(value) is not int or not 1 <= value <= FIRST_MAX:
                found.append(f"first must be an int from 1 to {FIRST_MAX}, not {value!r}")
        elif field.name not in _CHECKS or (value is None and field.default is None):
            continue
        elif not isinstance(value, str):
            found.append(f"{field.name} must be a str, not {value!r}")
        elif (check := _CHECKS[field.name]) is not None and (problem := check(value)):
            found.append(f"{field.name} {problem}, not {value!r}")
    return found
