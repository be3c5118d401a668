"""Random command sequences leave the chat's read model as a plain in-memory model says.

The model is what a user expects: rooms with members in the order they joined, messages
that only members post and only authors change, until deleted; every join welcomed once.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path

import attrs
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from busway import AggregateExistsError, AggregateNotFoundError
from examples.chat.domain import ChatRuleError
from examples.chat.messages import (
    DeleteMessage,
    EditMessage,
    GetRoom,
    JoinRoom,
    LeaveRoom,
    OpenRoom,
    PostMessage,
)
from examples.chat.service import WELCOME_AUTHOR

from .helpers import opened

rooms = st.sampled_from(["r1", "r2", "r3"])
users = st.sampled_from(["ann", "bo", "cy"])
message_ids = st.sampled_from([f"m{n}" for n in range(6)])
texts = st.sampled_from(["hi", " there ", "bye", "ok"])


@attrs.define
class Posted:
    room_id: str
    author: str
    text: str
    edited: bool = False
    deleted: bool = False


class Chatting(RuleBasedStateMachine):
    """A chat on a fresh file, checked after each command against the model."""

    def __init__(self) -> None:
        super().__init__()
        self._stack = contextlib.ExitStack()
        directory = self._stack.enter_context(tempfile.TemporaryDirectory())
        self.chat = self._stack.enter_context(opened(Path(directory) / "chat.db"))
        self.members: dict[str, list[str]] = {}
        self.messages: dict[str, Posted] = {}
        self.welcomes: dict[str, int] = {}

    def teardown(self) -> None:
        self._stack.close()

    @rule(room_id=rooms, user=users)
    def open_room(self, room_id: str, user: str) -> None:
        if room_id in self.members:
            self.chat.refused(OpenRoom(room_id, room_id.upper(), user), AggregateExistsError)
            return
        self.chat.execute(OpenRoom(room_id, room_id.upper(), user))
        self.members[room_id] = [user]
        self.welcomes[room_id] = 0

    @rule(room_id=rooms, user=users)
    def join(self, room_id: str, user: str) -> None:
        if room_id not in self.members:
            self.chat.refused(JoinRoom(room_id, user), AggregateNotFoundError)
            return
        self.chat.execute(JoinRoom(room_id, user))
        if user not in self.members[room_id]:
            self.members[room_id].append(user)
            self.welcomes[room_id] += 1
            self.chat.welcomes(room_id, self.welcomes[room_id])

    @rule(room_id=rooms, user=users)
    def leave(self, room_id: str, user: str) -> None:
        if user not in self.members.get(room_id, ()):
            error = AggregateNotFoundError if room_id not in self.members else ChatRuleError
            self.chat.refused(LeaveRoom(room_id, user), error)
            return
        self.chat.execute(LeaveRoom(room_id, user))
        self.members[room_id].remove(user)

    @rule(room_id=rooms, author=users, message_id=message_ids, text=texts)
    def post(self, room_id: str, author: str, message_id: str, text: str) -> None:
        command = PostMessage(room_id, author, text, message_id)
        if room_id not in self.members:
            self.chat.refused(command, AggregateNotFoundError)
        elif author not in self.members[room_id]:
            self.chat.refused(command, ChatRuleError)
        elif message_id in self.messages:
            self.chat.refused(command, AggregateExistsError)
        else:
            self.chat.execute(command)
            self.messages[message_id] = Posted(room_id, author, text.strip())

    @rule(message_id=message_ids, author=users, text=texts)
    def edit(self, message_id: str, author: str, text: str) -> None:
        command = EditMessage(message_id, author, text)
        if self._changeable(command, message_id, author):
            self.chat.execute(command)
            self.messages[message_id].text = text.strip()
            self.messages[message_id].edited = True

    @rule(message_id=message_ids, author=users)
    def delete(self, message_id: str, author: str) -> None:
        command = DeleteMessage(message_id, author)
        if self._changeable(command, message_id, author):
            self.chat.execute(command)
            self.messages[message_id].deleted = True

    def _changeable(
        self, command: EditMessage | DeleteMessage, message_id: str, author: str
    ) -> bool:
        """Tell whether the model lets *author* change the message; check a refusal if not."""
        posted = self.messages.get(message_id)
        if posted is None:
            self.chat.refused(command, AggregateNotFoundError)
        elif posted.deleted or posted.author != author:
            self.chat.refused(command, ChatRuleError)
        return posted is not None and not posted.deleted and posted.author == author

    @invariant()
    def read_model_matches(self) -> None:
        for room_id, members in self.members.items():
            shown = self.chat.messages(room_id)
            assert [
                (m.message_id, m.author, m.text, m.edited)
                for m in shown
                if m.author != WELCOME_AUTHOR
            ] == [
                (message_id, p.author, p.text, p.edited)
                for message_id, p in self.messages.items()
                if p.room_id == room_id and not p.deleted
            ]
            assert sum(m.author == WELCOME_AUTHOR for m in shown) == self.welcomes[room_id]
            room = self.chat.ask(GetRoom(room_id))
            assert (room.members, room.message_count) == (tuple(members), len(shown))


Chatting.TestCase.settings = settings(
    Chatting.TestCase.settings, max_examples=25, stateful_step_count=20
)
test_chatting = Chatting.TestCase
