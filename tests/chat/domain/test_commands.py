"""Each chat command stores the events it should, and every rule it breaks is refused whole."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from busway import (
    AggregateExistsError,
    AggregateNotFoundError,
    Command,
    Query,
    ValidationError,
)
from examples.chat.domain import TEXT_MAX, ChatRuleError
from examples.chat.messages import (
    DeleteMessage,
    EditMessage,
    GetMessage,
    GetRoom,
    JoinRoom,
    LeaveRoom,
    ListMessages,
    ListRooms,
    MemberJoined,
    MemberLeft,
    MessageDeleted,
    MessageEdited,
    MessagePosted,
    OpenRoom,
    PostMessage,
    RoomOpened,
    Written,
)
from examples.chat.service import WELCOME_AUTHOR

from .helpers import Driven


def stored(chat: Driven, after: int = 0) -> list[object]:
    return [r.event for r in chat.events(after)]


def lobby(chat: Driven, *members: str) -> None:
    """Open room r1, "Lobby", by alice, and let *members* join it."""
    chat.execute(OpenRoom("r1", "Lobby", "alice"))
    for user in members:
        chat.execute(JoinRoom("r1", user))


def test_opening_a_room_records_it_with_its_opener_as_member(chat: Driven) -> None:
    """Opening a room stores RoomOpened, with the name trimmed, and returns its position."""
    assert chat.execute(OpenRoom("r1", "  Lobby ", "alice")) == Written("r1", 1)
    assert stored(chat) == [RoomOpened("r1", "Lobby", "alice")]
    chat.settle()
    assert chat.ask(GetRoom("r1")).members == ("alice",)


def test_joining_and_leaving_record_members(chat: Driven) -> None:
    """Joining stores MemberJoined and leaving MemberLeft, each returning the room's position."""
    lobby(chat)
    joined = chat.execute(JoinRoom("r1", "bob"))
    left = chat.execute(LeaveRoom("r1", "bob"))
    events = chat.events()
    [join] = [r for r in events if r.event == MemberJoined("r1", "bob")]
    [leave] = [r for r in events if r.event == MemberLeft("r1", "bob")]
    assert (joined, left) == (Written("r1", join.position), Written("r1", leave.position))


def test_joining_twice_is_harmless(chat: Driven) -> None:
    """A member who joins again stays a member once: nothing is stored, and the position
    returned is the room's latest, so waiting for it reads the room as it is."""
    lobby(chat, "bob")
    room_head = chat.events()[1].position
    before = chat.head()
    assert chat.execute(JoinRoom("r1", "alice")) == Written("r1", room_head)
    assert chat.execute(JoinRoom("r1", "bob")) == Written("r1", room_head)
    assert chat.changes(before) == []
    chat.settle()
    assert chat.ask(GetRoom("r1")).members == ("alice", "bob")


def test_posting_editing_and_deleting_record_message_events(chat: Driven) -> None:
    """Post, edit and delete store their events with trimmed text and the message's id."""
    lobby(chat, "bob")
    start = chat.head()
    posted = chat.execute(PostMessage("r1", "bob", "  hello \n", "hi"))
    edited = chat.execute(EditMessage("hi", "bob", "hello all"))
    deleted = chat.execute(DeleteMessage("hi", "bob"))
    mine = [r for r in chat.events(start) if r.stream_id == "message-hi"]
    assert [r.event for r in mine] == [
        MessagePosted("hi", "r1", "bob", "hello"),
        MessageEdited("hi", "r1", "hello all"),
        MessageDeleted("hi", "r1"),
    ]
    assert [posted, edited, deleted] == [Written("hi", r.position) for r in mine]


def test_a_message_posted_without_an_id_gets_a_new_one(chat: Driven) -> None:
    """PostMessage without message_id makes one, and returns it."""
    lobby(chat)
    assert chat.execute(PostMessage("r1", "alice", "one")).id == "m1"
    assert chat.execute(PostMessage("r1", "alice", "two")).id == "m2"


def test_commands_carry_their_correlation_ids(chat: Driven) -> None:
    """Each command's events carry a correlation id of the command's own in their metadata."""
    lobby(chat)
    chat.execute(PostMessage("r1", "alice", "hi"))
    ids = [r.metadata["correlation_id"] for r in chat.events()]
    assert len(set(ids)) == 2


def test_concurrent_joins_all_land(chat: Driven) -> None:
    """Many users joining one room at once all become members: losers of a race try again."""
    lobby(chat)
    users = [f"user{n}" for n in range(8)]

    async def join_all() -> None:
        await asyncio.gather(*(chat.chat.commands.execute(JoinRoom("r1", u)) for u in users))

    chat.run(join_all())
    chat.settle()
    assert sorted(chat.ask(GetRoom("r1")).members) == sorted(["alice", *users])


# -- rules the aggregates keep ----------------------------------------------------------------


def test_only_members_post(chat: Driven) -> None:
    """A user who never joined, or has left, cannot post; the error says to join."""
    lobby(chat, "bob")
    chat.execute(LeaveRoom("r1", "bob"))
    for user in ("carol", "bob"):
        error = chat.refused(PostMessage("r1", user, "hi"), ChatRuleError)
        assert f"{user!r} is not a member of room 'r1'" in str(error)


def test_only_members_leave(chat: Driven) -> None:
    """Leaving a room one is not in is refused."""
    lobby(chat)
    chat.refused(LeaveRoom("r1", "bob"), ChatRuleError)


def test_only_the_author_edits_or_deletes(chat: Driven) -> None:
    """Another member can neither edit nor delete a message; the error names its author."""
    lobby(chat, "bob")
    chat.execute(PostMessage("r1", "alice", "mine", "m"))
    for command in (EditMessage("m", "bob", "yours"), DeleteMessage("m", "bob")):
        error = chat.refused(command, ChatRuleError)
        assert "is 'alice''s" in str(error)
        assert isinstance(error, ValidationError)
        assert error.problems == (str(error),)


def test_a_deleted_message_stays_deleted(chat: Driven) -> None:
    """After a delete, neither an edit nor a second delete is taken."""
    lobby(chat)
    chat.execute(PostMessage("r1", "alice", "oops", "m"))
    chat.execute(DeleteMessage("m", "alice"))
    chat.refused(EditMessage("m", "alice", "fixed"), ChatRuleError)
    chat.refused(DeleteMessage("m", "alice"), ChatRuleError)


def test_taken_ids_conflict(chat: Driven) -> None:
    """A room id or message id used twice is a conflict, and nothing is stored."""
    lobby(chat)
    chat.execute(PostMessage("r1", "alice", "first", "m"))
    room = chat.refused(OpenRoom("r1", "Other", "bob"), AggregateExistsError)
    message = chat.refused(PostMessage("r1", "alice", "second", "m"), AggregateExistsError)
    assert (
        str(room)
        == "a room with the id 'r1' is there already; nothing was stored. Choose another id"
    )
    assert "message with the id 'm'" in str(message)
    assert "leave message_id out" in str(message)


@pytest.mark.parametrize(
    "command",
    [
        JoinRoom("nowhere", "bob"),
        LeaveRoom("nowhere", "bob"),
        PostMessage("nowhere", "bob", "hi"),
        EditMessage("nothing", "bob", "hi"),
        DeleteMessage("nothing", "bob"),
    ],
)
def test_unknown_rooms_and_messages_are_not_found(chat: Driven, command: Command[Written]) -> None:
    """A command on a room or message that does not exist is not found, naming the id."""
    error = chat.refused(command, AggregateNotFoundError)
    assert "'nowhere'" in str(error) or "'nothing'" in str(error)


# -- what commands and queries must look like -------------------------------------------------


@pytest.mark.parametrize(
    ("message", "field"),
    [
        (OpenRoom("", "Lobby", "alice"), "room_id"),
        (OpenRoom("r 1", "Lobby", "alice"), "room_id"),
        (OpenRoom("r" * 65, "Lobby", "alice"), "room_id"),
        (OpenRoom("r1", "   ", "alice"), "name"),
        (OpenRoom("r1", "n" * 101, "alice"), "name"),
        (OpenRoom("r1", "Lobby", ""), "user"),
        (OpenRoom("r1", "Lobby", " alice"), "user"),
        (OpenRoom("r1", "Lobby", "a\nb"), "user"),
        (OpenRoom("r1", "Lobby", "u" * 41), "user"),
        (OpenRoom("r1", "Lobby", WELCOME_AUTHOR), "user"),
        (JoinRoom("r1", WELCOME_AUTHOR), "user"),
        (PostMessage("r1", "alice", ""), "text"),
        (PostMessage("r1", "alice", "x" * (TEXT_MAX + 1)), "text"),
        (PostMessage("r1", "alice", "hi", "bad id"), "message_id"),
        (PostMessage("r1", 7, "hi"), "author"),  # type: ignore[arg-type]
        (EditMessage("m", "alice", " \t "), "text"),
        (DeleteMessage("", "alice"), "message_id"),
        (ListRooms(first=0), "first"),
        (ListRooms(first=101), "first"),
        (ListRooms(first=True), "first"),
        (ListRooms(after=3), "after"),  # type: ignore[arg-type]
        (ListMessages("r1", first=-1), "first"),
        (ListMessages("r 1"), "room_id"),
        (GetRoom(""), "room_id"),
        (GetMessage("?"), "message_id"),
    ],
)
def test_malformed_messages_are_refused(
    chat: Driven, message: Command[object] | Query[object], field: str
) -> None:
    """A command or query with a bad field is a ValidationError naming the field and its value."""
    lobby(chat)
    error = chat.refused(message, ValidationError)
    [problem] = error.problems
    assert problem.startswith(f"{field} must")
    assert repr(getattr(message, field)) in problem


def test_every_problem_is_reported_at_once(chat: Driven) -> None:
    """A message with several bad fields lists each of them."""
    error = chat.refused(OpenRoom("", "", ""), ValidationError)
    assert [p.split()[0] for p in error.problems] == ["room_id", "name", "user"]


def test_text_is_taken_when_one_to_two_thousand_characters_after_trimming(chat: Driven) -> None:
    """Any text with 1 to 2000 characters inside its spaces is posted trimmed; any other refused."""
    lobby(chat)

    @settings(max_examples=40)
    @given(
        st.text(st.sampled_from(" \t\n"), max_size=3),
        st.one_of(st.text(min_size=0, max_size=5), st.text(min_size=1995, max_size=2010)),
        st.text(st.sampled_from(" \t\n"), max_size=3),
    )
    def post(before: str, inner: str, after: str) -> None:
        text = before + inner + after
        if 1 <= len(text.strip()) <= TEXT_MAX:
            written = chat.execute(PostMessage("r1", "alice", text))
            [recorded] = chat.events(written.position - 1)
            assert recorded.event == MessagePosted(written.id, "r1", "alice", text.strip())
        else:
            chat.refused(PostMessage("r1", "alice", text), ValidationError)

    post()
