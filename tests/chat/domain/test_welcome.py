"""Each join is welcomed in its room exactly once, also when the chat stops and starts again."""

from __future__ import annotations

from pathlib import Path

import pytest

from busway.eventstore import SQLiteEventStore
from examples.chat.messages import (
    EVENT_TYPES,
    JoinRoom,
    LeaveRoom,
    MemberJoined,
    OpenRoom,
    RoomOpened,
    WelcomeMember,
    Written,
)
from examples.chat.service import WELCOME_AUTHOR

from .helpers import Driven, opened


def texts(chat: Driven, room_id: str) -> list[str]:
    return [m.text for m in chat.messages(room_id) if m.author == WELCOME_AUTHOR]


def test_a_join_is_welcomed_once(chat: Driven) -> None:
    """Joining posts one welcome by the chat, naming the user and the room; opening posts none."""
    chat.execute(OpenRoom("r1", "Lobby", "alice"))
    chat.execute(JoinRoom("r1", "bob"))
    chat.execute(JoinRoom("r1", "bob"))  # already a member: no second join, no second welcome
    [welcome] = chat.welcomes("r1", 1)
    assert welcome.text == "Welcome to Lobby, bob!"
    chat.execute(JoinRoom("r1", "carol"))
    chat.welcomes("r1", 2)
    assert texts(chat, "r1") == ["Welcome to Lobby, bob!", "Welcome to Lobby, carol!"]


def test_joining_again_after_leaving_is_welcomed_again(chat: Driven) -> None:
    """Each join is welcomed, also a member's second one after leaving."""
    chat.execute(OpenRoom("r1", "Lobby", "alice"))
    chat.execute(JoinRoom("r1", "bob"))
    chat.welcomes("r1", 1)
    chat.execute(LeaveRoom("r1", "bob"))
    chat.execute(JoinRoom("r1", "bob"))
    assert len(chat.welcomes("r1", 2)) == 2


def test_joins_stored_while_the_chat_was_down_are_welcomed_once(tmp_path: Path) -> None:
    """Joins stored before the saga saw them are welcomed when the chat opens, and only then."""
    path = tmp_path / "chat.db"
    with SQLiteEventStore(path, types=EVENT_TYPES) as store:
        store.append(
            "room-r1",
            [RoomOpened("r1", "Lobby", "alice"), MemberJoined("r1", "bob")],
            expected_version=0,
        )
    with opened(path) as chat:
        chat.welcomes("r1", 1)
    with opened(path) as chat:
        chat.execute(JoinRoom("r1", "carol"))
        chat.welcomes("r1", 2)
        assert texts(chat, "r1") == ["Welcome to Lobby, bob!", "Welcome to Lobby, carol!"]


def test_a_chat_closed_right_after_a_join_welcomes_it_once_when_reopened(tmp_path: Path) -> None:
    """Closing at once after joins, and reopening, gives each join one welcome, never two."""
    path = tmp_path / "chat.db"
    with opened(path) as chat:
        chat.execute(OpenRoom("r1", "Lobby", "alice"))
        for user in ("bob", "carol", "dave"):
            chat.execute(JoinRoom("r1", user))
    for _ in range(2):
        with opened(path) as chat:
            chat.welcomes("r1", 3)
    with opened(path) as chat:
        chat.execute(JoinRoom("r1", "erin"))  # welcomed after the ones before it
        chat.welcomes("r1", 4)
        assert sorted(texts(chat, "r1")) == [
            f"Welcome to Lobby, {user}!" for user in ("bob", "carol", "dave", "erin")
        ]


def test_a_welcome_sent_again_posts_nothing_more(chat: Driven) -> None:
    """WelcomeMember repeated with the same id returns the first post and stores nothing."""
    chat.execute(OpenRoom("r1", "Lobby", "alice"))
    first = chat.execute(WelcomeMember("r1", "zoe", "welcome-1"))
    before = chat.head()
    assert (
        chat.execute(WelcomeMember("r1", "zoe", "welcome-1"))
        == first
        == Written("welcome-1", before)
    )
    assert chat.head() == before
    assert texts(chat, "r1") == ["Welcome to Lobby, zoe!"]


def test_a_welcome_that_cannot_be_posted_is_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A join whose room is not there (a damaged store) is logged, and the chat goes on."""
    path = tmp_path / "chat.db"
    with SQLiteEventStore(path, types=EVENT_TYPES) as store:
        store.append("elsewhere", [MemberJoined("ghost", "bob")])
    with opened(path) as chat:
        chat.until(lambda: caplog.records, bool)
        chat.execute(OpenRoom("r1", "Lobby", "alice"))
        chat.execute(JoinRoom("r1", "bob"))
        assert len(chat.welcomes("r1", 1)) == 1
    [record] = [r for r in caplog.records if r.name == "examples.chat"]
    assert "no room has the id 'ghost'" in record.getMessage()
