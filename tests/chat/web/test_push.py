"""The push WebSocket: a room's events as JSON, resumed after the position a client sends."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosed

from tests.chat.web.clients import GraphQL, posted_by_people, push, pushed
from tests.chat.web.conftest import Served


def test_two_clients_see_each_others_messages_in_order(served: Served, graphql: GraphQL) -> None:
    """Both clients receive every message of the room as JSON events, in store order."""
    graphql.open_room("lobby", "alice")
    graphql.join_room("lobby", "bob")
    with push(served.ws_url, "lobby") as alice, push(served.ws_url, "lobby") as bob:
        graphql.wait_live_streams(2)
        posted = [graphql.post("lobby", "alice", "hi"), graphql.post("lobby", "bob", "hello")]
        for client in (alice, bob):
            events = [pushed(client, posted_by_people) for _ in posted]
            assert [(p["position"], p["author"], p["text"]) for p in posted] == [
                (e["position"], e["data"]["author"], e["data"]["text"]) for e in events
            ]
            assert {
                "position",
                "stream_id",
                "version",
                "event_id",
                "type",
                "data",
                "metadata",
                "recorded_at",
            } == set(events[0])


def test_every_event_of_the_room_is_pushed_and_no_other_room_s(
    served: Served, graphql: GraphQL
) -> None:
    """Opening, joining and posting all arrive, each once; another room's events do not."""
    graphql.open_room("lobby", "alice")
    graphql.open_room("attic", "alice")
    graphql.join_room("lobby", "bob")
    graphql.post("attic", "alice", "elsewhere")
    graphql.post("lobby", "bob", "here")
    with push(served.ws_url, "lobby", after=0) as client:
        events = [pushed(client, lambda _: True)]
        while events[-1]["data"].get("text") != "here":
            events.append(pushed(client, lambda _: True))
    assert "RoomOpened" == events[0]["type"]
    assert ("MemberJoined", "bob") in [(e["type"], e["data"].get("user")) for e in events]
    assert {"lobby"} == {e["data"]["room_id"] for e in events}
    positions = [e["position"] for e in events]
    assert sorted(set(positions)) == positions


# One server for every example, each example in a room of its own.
@settings(max_examples=8, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(before=st.integers(0, 3), missed=st.integers(0, 3), after=st.integers(1, 2))
def test_a_reconnecting_client_misses_nothing_and_sees_nothing_twice(
    served: Served, graphql: GraphQL, before: int, missed: int, after: int
) -> None:
    """Resuming after the last position seen brings exactly the events posted meanwhile."""
    room = f"room-{served.head()}"
    graphql.open_room(room, "alice")
    texts = iter(str(n) for n in range(before + missed + after))
    received: list[dict[str, Any]] = []
    with push(served.ws_url, room, after=0) as client:
        received.append(pushed(client, lambda e: e["type"] == "RoomOpened"))
        for _ in range(before):
            graphql.post(room, "alice", next(texts))
            received.append(pushed(client, posted_by_people))
    graphql.wait_live_streams(0)
    for _ in range(missed):
        graphql.post(room, "alice", next(texts))
    with push(served.ws_url, room, after=received[-1]["position"]) as client:
        received += [pushed(client, posted_by_people) for _ in range(missed)]
        for _ in range(after):
            graphql.post(room, "alice", next(texts))
            received.append(pushed(client, posted_by_people))
    positions = [e["position"] for e in received]
    assert sorted(set(positions)) == positions
    assert [str(n) for n in range(before + missed + after)] == [
        e["data"]["text"] for e in received[1:]
    ]


def test_a_client_that_leaves_ends_its_stream_on_the_server(
    served: Served, graphql: GraphQL
) -> None:
    """When a client closes its connection, the server stops following the store for it."""
    graphql.open_room("lobby", "alice")
    with push(served.ws_url, "lobby"), push(served.ws_url, "lobby", after=0) as client:
        graphql.wait_live_streams(2)
        client.send("ignored: the client has nothing to say")
    graphql.wait_live_streams(0)


@pytest.mark.parametrize(
    ("room", "after", "code"),
    [
        pytest.param("attic", "0", 4404, id="unknown room"),
        pytest.param("lobby", "-1", 4422, id="negative position"),
        pytest.param("lobby", "two", 4422, id="not a number"),
    ],
)
def test_a_refused_request_is_closed_with_its_error_s_code(
    served: Served, graphql: GraphQL, room: str, after: str, code: int
) -> None:
    """The close code is 4000 plus the error's HTTP status; the reason says what was wrong."""
    graphql.open_room("lobby", "alice")
    with (
        push(served.ws_url, room, after=after) as client,
        pytest.raises(ConnectionClosed) as closed,
    ):
        json.loads(client.recv(timeout=5))
    assert closed.value.rcvd is not None
    assert code == closed.value.rcvd.code
    assert after in closed.value.rcvd.reason or room in closed.value.rcvd.reason
