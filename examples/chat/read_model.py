"""The query side: rooms, members and messages tables, kept by a projection in the chat's file.

The projection writes each batch and its checkpoint in one SQLite transaction, so every
event is applied exactly once, also across crashes. Lists are paged by keyset: a cursor
holds the store position of the last row shown (a room's opening, a message's posting),
and the next page starts after it, so pages never repeat or skip a row when new ones come
meanwhile. A deleted message's row is removed, so lists and GetMessage leave it out.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import sqlite3
import threading
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from busway import InvalidArgumentError
from busway.eventstore import RecordedEvent
from busway.projections import SQLiteProjection, when

from .domain import Message, NotFoundError, Room
from .messages import (
    GetMessage,
    GetRoom,
    ListMessages,
    ListRooms,
    MemberJoined,
    MemberLeft,
    MessageDeleted,
    MessageEdited,
    MessagePage,
    MessagePosted,
    MessageView,
    RoomOpened,
    RoomPage,
    RoomView,
)

__all__ = ["ChatProjection", "ChatQueries", "InvalidCursorError"]

_MESSAGE_COLUMNS = "message_id, room_id, author, text, posted_at, position, edited"


class InvalidCursorError(InvalidArgumentError):
    """A cursor that no page of this list gave out."""

    def __init__(self, cursor: str, listing: str) -> None:
        self.cursor = cursor
        super().__init__("after", cursor, f"None or the next_cursor of a page of {listing}")


def _changed(cursor: sqlite3.Cursor, recorded: RecordedEvent) -> None:
    # A replayed or skipped event fails loudly here, rather than slip into the tables.
    if cursor.rowcount != 1:
        raise LookupError(
            f"the chat's tables do not fit event {recorded.position} "
            f"({type(recorded.event).__name__} of {recorded.stream_id!r}); rebuild the read model"
        )


class ChatProjection(SQLiteProjection):
    """Keeps the ``rooms``, ``members`` and ``messages`` tables in step with the chat's events."""

    name = "chat"

    def setup(self, conn: sqlite3.Connection) -> None:
        conn.execute(
            """CREATE TABLE IF NOT EXISTS rooms (
                room_id TEXT PRIMARY KEY,
                name TEXT NOT NULL,
                opened_by TEXT NOT NULL,
                opened_position INTEGER NOT NULL UNIQUE,
                message_count INTEGER NOT NULL
            )"""
        )
        conn.execute(
            """CREATE TABLE IF NOT EXISTS members (
                room_id TEXT NOT NULL,
                user TEXT NOT NULL,
                joined_position INTEGER NOT NULL,
                PRIMARY KEY (room_id, user)
            )"""
        )
        conn.execute(
            """CREATE TABLE IF NOT EXISTS messages (
                message_id TEXT PRIMARY KEY,
                room_id TEXT NOT NULL,
                author TEXT NOT NULL,
                text TEXT NOT NULL,
                posted_at TEXT NOT NULL,
                position INTEGER NOT NULL UNIQUE,
                edited INTEGER NOT NULL
            )"""
        )
        conn.execute("CREATE INDEX IF NOT EXISTS messages_by_room ON messages (room_id, position)")

    def reset(self, conn: sqlite3.Connection) -> None:
        for table in ("rooms", "members", "messages"):
            conn.execute(f"DELETE FROM {table}")

    @when(RoomOpened)
    def _opened(self, event: RoomOpened, recorded: RecordedEvent, conn: sqlite3.Connection) -> None:
        conn.execute(
            "INSERT INTO rooms VALUES (?, ?, ?, ?, 0)",
            (event.room_id, event.name, event.opened_by, recorded.position),
        )
        self._joined(MemberJoined(event.room_id, event.opened_by), recorded, conn)

    @when(MemberJoined)
    def _joined(
        self, event: MemberJoined, recorded: RecordedEvent, conn: sqlite3.Connection
    ) -> None:
        conn.execute(
            "INSERT INTO members VALUES (?, ?, ?)", (event.room_id, event.user, recorded.position)
        )

    @when(MemberLeft)
    def _left(self, event: MemberLeft, recorded: RecordedEvent, conn: sqlite3.Connection) -> None:
        _changed(
            conn.execute(
                "DELETE FROM members WHERE room_id = ? AND user = ?", (event.room_id, event.user)
            ),
            recorded,
        )

    @when(MessagePosted)
    def _posted(
        self, event: MessagePosted, recorded: RecordedEvent, conn: sqlite3.Connection
    ) -> None:
        conn.execute(
            f"INSERT INTO messages ({_MESSAGE_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, 0)",
            (
                event.message_id,
                event.room_id,
                event.author,
                event.text,
                recorded.recorded_at.isoformat(),
                recorded.position,
            ),
        )
        self._count(event.room_id, +1, recorded, conn)

    @when(MessageEdited)
    def _edited(
        self, event: MessageEdited, recorded: RecordedEvent, conn: sqlite3.Connection
    ) -> None:
        _changed(
            conn.execute(
                "UPDATE messages SET text = ?, edited = 1 WHERE message_id = ?",
                (event.text, event.message_id),
            ),
            recorded,
        )

    @when(MessageDeleted)
    def _deleted(
        self, event: MessageDeleted, recorded: RecordedEvent, conn: sqlite3.Connection
    ) -> None:
        _changed(
            conn.execute("DELETE FROM messages WHERE message_id = ?", (event.message_id,)),
            recorded,
        )
        self._count(event.room_id, -1, recorded, conn)

    def _count(
        self, room_id: str, change: int, recorded: RecordedEvent, conn: sqlite3.Connection
    ) -> None:
        _changed(
            conn.execute(
                "UPDATE rooms SET message_count = message_count + ? WHERE room_id = ?",
                (change, room_id),
            ),
            recorded,
        )


def _encode(kind: str, position: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{position}".encode()).decode().rstrip("=")


def _decode(kind: str, cursor: str, listing: str) -> int:
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, binascii.Error):
        raise InvalidCursorError(cursor, listing) from None
    prefix, _, position = text.rpartition(":")
    if prefix != kind or not position.isdigit():
        raise InvalidCursorError(cursor, listing)
    return int(position)


def _message(row: Sequence[Any]) -> MessageView:
    return MessageView(
        message_id=row[0],
        room_id=row[1],
        author=row[2],
        text=row[3],
        posted_at=datetime.fromisoformat(row[4]),
        position=row[5],
        edited=bool(row[6]),
    )


class ChatQueries:
    """Answers the chat's queries from the read model in the SQLite file at *path*.

    Queries run on a worker thread, on a connection of their own that :meth:`close` closes.
    """

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()

    def close(self) -> None:
        self._conn.close()

    def _fetch(self, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    async def _rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(self._fetch, sql, params)

    async def list_rooms(self, query: ListRooms) -> RoomPage:
        after = 0 if query.after is None else _decode("rooms", query.after, "ListRooms")
        rows = await self._rows(
            "SELECT room_id, name, message_count, opened_position FROM rooms "
            "WHERE opened_position > ? ORDER BY opened_position LIMIT ?",
            (after, query.first + 1),  # one more tells whether there is a next page
        )
        page = rows[: query.first]
        members = await self._members([row[0] for row in page])
        return RoomPage(
            items=tuple(RoomView(row[0], row[1], members.get(row[0], ()), row[2]) for row in page),
            next_cursor=_encode("rooms", page[-1][3]) if len(rows) > query.first else None,
        )

    async def get_room(self, query: GetRoom) -> RoomView:
        rows = await self._rows(
            "SELECT room_id, name, message_count FROM rooms WHERE room_id = ?", (query.room_id,)
        )
        if not rows:
            raise NotFoundError(Room, query.room_id, "ListRooms shows the rooms there are")
        (room_id, name, count), members = rows[0], await self._members([query.room_id])
        return RoomView(room_id, name, members.get(room_id, ()), count)

    async def _members(self, room_ids: Sequence[str]) -> dict[str, tuple[str, ...]]:
        marks = ", ".join("?" * len(room_ids))
        rows = await self._rows(
            f"SELECT room_id, user FROM members WHERE room_id IN ({marks}) "
            "ORDER BY joined_position",
            room_ids,
        )
        members: dict[str, tuple[str, ...]] = {}
        for room_id, user in rows:
            members[room_id] = (*members.get(room_id, ()), user)
        return members

    async def list_messages(self, query: ListMessages) -> MessagePage:
        kind = f"messages:{query.room_id}"
        listing = f"ListMessages of room {query.room_id!r}"
        after = 0 if query.after is None else _decode(kind, query.after, listing)
        rows = await self._rows(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE room_id = ? AND position > ? "
            "ORDER BY position LIMIT ?",
            (query.room_id, after, query.first + 1),
        )
        page = rows[: query.first]
        if not page and not await self._rows(
            "SELECT 1 FROM rooms WHERE room_id = ?", (query.room_id,)
        ):
            raise NotFoundError(Room, query.room_id, "ListRooms shows the rooms there are")
        return MessagePage(
            items=tuple(_message(row) for row in page),
            next_cursor=_encode(kind, page[-1][5]) if len(rows) > query.first else None,
        )

    async def get_message(self, query: GetMessage) -> MessageView:
        rows = await self._rows(
            f"SELECT {_MESSAGE_COLUMNS} FROM messages WHERE message_id = ?", (query.message_id,)
        )
        if not rows:
            raise NotFoundError(Message, query.message_id, "it was never posted, or it was deleted")
        return _message(rows[0])
