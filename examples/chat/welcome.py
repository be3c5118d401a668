"""The welcome saga: each member who joins a room gets one welcome message there.

A saga manager follows the event store with a checkpoint in its saga store, and stores
each saga with the command it sends before sending it; after a stop it sends what was left
unsent. So a welcome may be sent twice, never lost; it is posted once because its message
id comes from the saga's id, kept with the saga, and ``WelcomeMember`` posts nothing for an
id that is already there.
"""

from __future__ import annotations

import attrs

from busway.sagas import Saga, starts

from .messages import MemberJoined, WelcomeMember

__all__ = ["Welcome", "welcome_text"]


def welcome_text(user: str, room_name: str) -> str:
    return f"Welcome to {room_name}, {user}!"


@attrs.define
class Welcome(Saga):
    """Starts on a join, sends the welcome and ends, so the next join starts a new one."""

    @starts(MemberJoined, key="user")
    def joined(self, event: MemberJoined) -> None:
        self.send(WelcomeMember(event.room_id, event.user, f"welcome-{self.saga_id}"))
        self.end()
