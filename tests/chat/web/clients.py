"""Real clients of a running chat server: GraphQL over HTTP, graphql-transport-ws, push."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from websockets.sync.client import ClientConnection, connect
from websockets.typing import Subprotocol

from examples.chat.service import WELCOME_AUTHOR

WAIT = 5.0  # seconds a client waits for what the server must send
MESSAGE = "messageId roomId author text position edited"


class GraphQLError(Exception):
    """A GraphQL error the server answered with, and its ``extensions.code``."""

    def __init__(self, message: str, code: str | None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


class GraphQL:
    """Queries and mutations over HTTP POST /graphql."""

    def __init__(self, http: httpx.Client) -> None:
        self.http = http

    def call(self, query: str, **variables: object) -> dict[str, Any]:
        """Return the response's data, or raise its first error as :class:`GraphQLError`."""
        response = self.http.post("/graphql", json={"query": query, "variables": variables})
        body: dict[str, Any] = response.json()
        if body.get("errors"):
            error = body["errors"][0]
            raise GraphQLError(error["message"], error.get("extensions", {}).get("code"))
        data: dict[str, Any] = body["data"]
        return data

    def one(self, query: str, **variables: object) -> dict[str, Any]:
        """Call a query or mutation of one field; return that field's object."""
        (value,) = self.call(query, **variables).values()
        answer: dict[str, Any] = value
        return answer

    def open_room(self, room_id: str, user: str) -> dict[str, Any]:
        query = "mutation($r: String!, $u: String!) { openRoom(roomId: $r, name: $r, user: $u) "
        return self.one(query + "{ roomId members } }", r=room_id, u=user)

    def join_room(self, room_id: str, user: str) -> dict[str, Any]:
        query = "mutation($r: String!, $u: String!) { joinRoom(roomId: $r, user: $u) "
        return self.one(query + "{ roomId members } }", r=room_id, u=user)

    def post(
        self, room_id: str, author: str, text: str, message_id: str | None = None
    ) -> dict[str, Any]:
        """Post a message and return it as the mutation answers."""
        query = (
            "mutation($r: String!, $a: String!, $t: String!, $m: String) "
            f"{{ postMessage(roomId: $r, author: $a, text: $t, messageId: $m) {{ {MESSAGE} }} }}"
        )
        return self.one(query, r=room_id, a=author, t=text, m=message_id)

    def live_streams(self) -> int:
        return int(self.call("{ liveStreams }")["liveStreams"])

    def wait_live_streams(self, expected: int) -> None:
        """Wait until the server streams to *expected* clients, failing after WAIT seconds."""
        deadline = time.monotonic() + WAIT
        while (count := self.live_streams()) != expected:
            assert time.monotonic() < deadline, f"{count} live streams, not {expected}"
            time.sleep(0.02)


class Subscriptions:
    """One graphql-transport-ws connection: init and ack, then subscriptions by id."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = (str(n) for n in itertools.count(1))
        self.send({"type": "connection_init"})
        assert {"type": "connection_ack"} == self.receive()

    def send(self, message: dict[str, Any]) -> None:
        self.ws.send(json.dumps(message))

    def receive(self) -> dict[str, Any]:
        message: dict[str, Any] = json.loads(self.ws.recv(timeout=WAIT))
        return message

    def messages(self, room_id: str, after: int | None = None) -> str:
        """Subscribe to the room's messages; return the subscription's id."""
        operation = next(self.ids)
        query = (
            "subscription($r: String!, $after: Int) "
            f"{{ messages(roomId: $r, after: $after) {{ {MESSAGE} }} }}"
        )
        variables = {"r": room_id, "after": after}
        self.send(
            {
                "id": operation,
                "type": "subscribe",
                "payload": {"query": query, "variables": variables},
            }
        )
        return operation

    def error(self, operation: str) -> dict[str, Any]:
        """The error a subscription ends with, then its ``complete``: the error's extensions."""
        reply = self.receive()
        assert ("next", operation, None) == (reply["type"], reply["id"], reply["payload"]["data"])
        assert {"id": operation, "type": "complete"} == self.receive()
        (error,) = reply["payload"]["errors"]
        extensions: dict[str, Any] = error["extensions"]
        return extensions

    def next_message(self, operation: str) -> dict[str, Any]:
        """The next message a subscription sends that is not a welcome."""
        while True:
            reply = self.receive()
            assert {"id": operation, "type": "next"} == {k: reply[k] for k in ("id", "type")}, reply
            message: dict[str, Any] = reply["payload"]["data"]["messages"]
            if message["author"] != WELCOME_AUTHOR:
                return message


@contextmanager
def subscriptions(ws_url: str) -> Iterator[Subscriptions]:
    """A graphql-transport-ws connection to the server, closed after the block."""
    with connect(f"{ws_url}/graphql", subprotocols=[Subprotocol("graphql-transport-ws")]) as ws:
        yield Subscriptions(ws)


@contextmanager
def push(ws_url: str, room_id: str, after: int | str | None = None) -> Iterator[ClientConnection]:
    """A connection to the room's push endpoint, after *after* when given (sent as is)."""
    query = "" if after is None else f"?after={after}"
    with connect(f"{ws_url}/rooms/{room_id}/events{query}") as ws:
        yield ws


def pushed(ws: ClientConnection, keep: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The next pushed event that *keep* accepts."""
    while True:
        event: dict[str, Any] = json.loads(ws.recv(timeout=WAIT))
        if keep(event):
            return event


def posted_by_people(event: dict[str, Any]) -> bool:
    """A message a member posted (not a welcome)."""
    return bool(event["type"] == "MessagePosted" and event["data"]["author"] != WELCOME_AUTHOR)
