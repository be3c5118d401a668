"""The read model shows rooms and messages as the events left them, a page at a time."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from busway import (
    AggregateNotFoundError,
    InvalidArgumentError,
    ProjectionError,
    ProjectionTimeoutError,
)
from busway.eventstore import SQLiteEventStore
from busway.projections import ProjectionRunner, SQLiteCheckpointStore
from examples.chat.messages import (
    EVENT_TYPES,
    DeleteMessage,
    EditMessage,
    GetMessage,
    GetRoom,
    JoinRoom,
    LeaveRoom,
    ListMessages,
    ListRooms,
    MemberLeft,
    OpenRoom,
    PostMessage,
    RoomOpened,
    RoomView,
)
from examples.chat.read_model import ChatProjection, InvalidCursorError

from .helpers import Driven, opened


def test_a_room_shows_its_members_in_join_order_and_its_message_count(chat: Driven) -> None:
    """GetRoom lists members as they joined, without those who left, and counts live messages."""
    chat.execute(OpenRoom("r1", "Lobby", "alice"))
    for user in ("bob", "carol", "dave"):
        chat.execute(JoinRoom("r1", user))
    chat.execute(LeaveRoom("r1", "carol"))
    chat.execute(PostMessage("r1", "alice", "one", "a"))
    chat.execute(PostMessage("r1", "bob", "two", "b"))
    chat.execute(DeleteMessage("a", "alice"))
    chat.welcomes("r1", 3)
    chat.settle()
    room = chat.ask(GetRoom("r1"))
    assert (room.name, room.members) == ("Lobby", ("alice", "bob", "dave"))
    assert room.message_count == 4  # "two" and the welcomes of bob, carol and dave


def test_messages_show_their_latest_text_and_leave_deleted_ones_out(chat: Driven) -> None:
    """ListMessages gives live messages oldest first, edited ones marked, deleted ones gone."""
    chat.execute(OpenRoom("r1", "Lobby", "alice"))
    first = chat.execute(PostMessage("r1", "alice", "first", "a"))
    chat.execute(PostMessage("r1", "alice", "second", "b"))
    chat.execute(PostMessage("r1", "alice", "thrid", "c"))
    chat.execute(EditMessage("c", "alice", "third"))
    chat.execute(DeleteMessage("b", "alice"))
    shown = chat.messages("r1")
    assert [(m.message_id, m.text, m.edited) for m in shown] == [
        ("a", "first", False),
        ("c", "third", True),
    ]
    [posted] = chat.events(first.position - 1)[:1]
    assert (shown[0].position, shown[0].posted_at) == (posted.position, posted.recorded_at)
    assert chat.ask(GetMessage("c")) == shown[1]
    with pytest.raises(AggregateNotFoundError, match="'b'"):
        chat.ask(GetMessage("b"))


def test_unknown_rooms_are_not_found(chat: Driven) -> None:
    """GetRoom and ListMessages of a room never opened are not found; an empty room lists none."""
    chat.execute(OpenRoom("empty", "Empty", "alice"))
    chat.settle()
    assert chat.ask(ListMessages("empty")).items == ()
    for query in (GetRoom("nowhere"), ListMessages("nowhere")):
        with pytest.raises(AggregateNotFoundError, match="'nowhere'"):
            chat.ask(query)


@pytest.mark.parametrize("cursor", ["", "garbage", "!!", "cm9vbXM6MQ", "bWVzc2FnZXM6cjI6MQ"])
def test_cursors_of_no_page_of_the_list_are_refused(chat: Driven, cursor: str) -> None:
    """A cursor that is not base64, of rooms, or of another room's messages, is refused."""
    chat.execute(OpenRoom("r1", "Lobby", "alice"))
    chat.settle()
    error = chat.refused(ListMessages("r1", after=cursor), InvalidCursorError)
    assert isinstance(error, InvalidArgumentError)  # what busway.web reports as INVALID_INPUT
    assert "ListMessages of room 'r1'" in str(error)


def test_a_cursor_of_messages_is_no_cursor_of_rooms(chat: Driven) -> None:
    """ListRooms refuses the cursor of a messages page."""
    chat.execute(OpenRoom("r1", "Lobby", "alice"))
    chat.execute(PostMessage("r1", "alice", "one"))
    chat.execute(PostMessage("r1", "alice", "two"))
    chat.settle()
    cursor = chat.ask(ListMessages("r1", first=1)).next_cursor
    assert cursor is not None
    chat.refused(ListRooms(after=cursor), InvalidCursorError)


def test_waiting_for_a_position_not_reached_times_out(chat: Driven) -> None:
    """wait_for a position the store never reaches gives up after its timeout."""
    with pytest.raises(ProjectionTimeoutError):
        chat.run(chat.chat.wait_for(10, timeout=0.05))


@settings(max_examples=20)
@given(count=st.integers(0, 25), first=st.integers(1, 12))
def test_pages_give_every_message_once_in_order(count: int, first: int) -> None:
    """Paging through a room with any page size gives each message once, oldest first."""
    with tempfile.TemporaryDirectory() as directory, opened(Path(directory) / "c.db") as chat:
        chat.execute(OpenRoom("r1", "Lobby", "alice"))
        posted = [chat.execute(PostMessage("r1", "alice", f"n{n}")).id for n in range(count)]
        chat.settle()
        pages, after = [], None
        while True:
            page = chat.ask(ListMessages("r1", first=first, after=after))
            pages.append(page.items)
            if page.next_cursor is None:
                break
            after = page.next_cursor
        assert [m.message_id for items in pages for m in items] == posted
        assert all(len(items) == first for items in pages[:-1])
        assert len(pages) == max(1, -(-count // first))


@settings(max_examples=10)
@given(count=st.integers(0, 12), first=st.integers(1, 5))
def test_room_pages_give_every_room_once_in_order(count: int, first: int) -> None:
    """Paging through the rooms gives each once, in the order they were opened."""
    with tempfile.TemporaryDirectory() as directory, opened(Path(directory) / "c.db") as chat:
        for n in range(count):
            chat.execute(OpenRoom(f"r{n}", f"Room {n}", "alice"))
        chat.settle()
        seen: list[RoomView] = []
        after = None
        while True:
            page = chat.ask(ListRooms(first=first, after=after))
            seen.extend(page.items)
            if page.next_cursor is None:
                break
            after = page.next_cursor
        assert seen == [RoomView(f"r{n}", f"Room {n}", ("alice",), 0) for n in range(count)]


def test_a_rebuild_gives_the_same_tables(tmp_path: Path) -> None:
    """Replaying every event from zero into emptied tables gives back what was there."""
    path = tmp_path / "chat.db"
    with opened(path) as chat:
        chat.execute(OpenRoom("r1", "Lobby", "alice"))
        chat.execute(JoinRoom("r1", "bob"))
        chat.execute(PostMessage("r1", "bob", "hi", "m"))
        chat.execute(EditMessage("m", "bob", "hello"))
        chat.execute(PostMessage("r1", "alice", "bye", "n"))
        chat.execute(DeleteMessage("n", "alice"))
        chat.execute(LeaveRoom("r1", "bob"))
        chat.welcomes("r1", 1)
        chat.settle()
    before = tables(path)
    with (
        SQLiteEventStore(path, types=EVENT_TYPES) as store,
        SQLiteCheckpointStore(path) as checkpoints,
    ):
        ProjectionRunner(store, ChatProjection(), checkpoints=checkpoints).rebuild()
    assert tables(path) == before


def tables(path: Path) -> dict[str, list[tuple[object, ...]]]:
    with sqlite3.connect(path) as conn:
        return {
            t: conn.execute(f"SELECT * FROM {t} ORDER BY 1, 2").fetchall()
            for t in ("rooms", "members", "messages")
        }


def test_events_that_do_not_fit_the_tables_stop_the_projection(tmp_path: Path) -> None:
    """A leave of someone never there (a damaged store) stops the projection, saying to rebuild."""
    path = tmp_path / "chat.db"
    with (
        SQLiteEventStore(path, types=EVENT_TYPES) as store,
        SQLiteCheckpointStore(path) as checkpoints,
    ):
        store.append("room-r1", [RoomOpened("r1", "Lobby", "alice"), MemberLeft("r1", "ghost")])
        runner = ProjectionRunner(store, ChatProjection(), checkpoints=checkpoints)
        with pytest.raises(ProjectionError) as caught:
            runner.run_until_caught_up()
    assert isinstance(caught.value.__cause__, LookupError)
    assert "rebuild the read model" in str(caught.value.__cause__)
    assert caught.value.position == 2
