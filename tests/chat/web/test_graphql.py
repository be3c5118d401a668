"""The chat over GraphQL: mutations read their own writes, subscriptions stream and resume."""

from __future__ import annotations

import pytest

from tests.chat.web.clients import GraphQL, GraphQLError, subscriptions
from tests.chat.web.conftest import Served


def test_a_mutation_answers_with_what_a_query_then_reads(graphql: GraphQL) -> None:
    """Opening, joining and posting answer with the views; the queries show the same."""
    assert ["alice"] == graphql.open_room("lobby", "alice")["members"]
    assert ["alice", "bob"] == graphql.join_room("lobby", "bob")["members"]
    posted = graphql.post("lobby", "alice", "hello", message_id="m-1")
    assert ("m-1", "lobby", "alice", "hello", False) == (
        posted["messageId"],
        posted["roomId"],
        posted["author"],
        posted["text"],
        posted["edited"],
    )
    room = graphql.call('{ room(roomId: "lobby") { name members messageCount } }')["room"]
    assert {"name": "lobby", "members": ["alice", "bob"]} == {
        k: room[k] for k in ("name", "members")
    }
    page = graphql.call('{ messages(roomId: "lobby") { items { messageId text } } }')
    assert {"messageId": "m-1", "text": "hello"} in page["messages"]["items"]
    edited = graphql.call(
        'mutation { editMessage(messageId: "m-1", author: "alice", text: "hi") { text edited } }'
    )
    assert {"text": "hi", "edited": True} == edited["editMessage"]
    deleted = graphql.call(
        'mutation { deleteMessage(messageId: "m-1", author: "alice") { messageId position } }'
    )
    assert "m-1" == deleted["deleteMessage"]["messageId"]
    with pytest.raises(GraphQLError) as missing:
        graphql.call('{ message(messageId: "m-1") { text } }')
    assert "NOT_FOUND" == missing.value.code
    rooms = graphql.call("{ rooms { items { roomId } nextCursor } }")["rooms"]
    assert {"items": [{"roomId": "lobby"}], "nextCursor": None} == rooms


def test_two_subscribers_see_each_others_messages_in_order(
    served: Served, graphql: GraphQL
) -> None:
    """Alice and Bob each see both their messages, in the order they were posted."""
    graphql.open_room("lobby", "alice")
    graphql.join_room("lobby", "bob")
    with subscriptions(served.ws_url) as alice, subscriptions(served.ws_url) as bob:
        seen_by_alice = alice.messages("lobby")
        seen_by_bob = bob.messages("lobby")
        graphql.wait_live_streams(2)
        texts = ["hi bob", "hi alice", "how are you?", "fine"]
        posted = [
            graphql.post("lobby", author, text)
            for author, text in zip(["alice", "bob"] * 2, texts, strict=True)
        ]
        for client, operation in ((alice, seen_by_alice), (bob, seen_by_bob)):
            received = [client.next_message(operation) for _ in texts]
            assert texts == [m["text"] for m in received]
            assert [m["position"] for m in posted] == [m["position"] for m in received]


def test_a_resumed_subscription_gets_exactly_the_messages_it_missed(
    served: Served, graphql: GraphQL
) -> None:
    """Subscribing again after the last position seen brings the missed ones, none twice."""
    graphql.open_room("lobby", "alice")
    with subscriptions(served.ws_url) as client:
        operation = client.messages("lobby")
        graphql.wait_live_streams(1)
        graphql.post("lobby", "alice", "one")
        graphql.post("lobby", "alice", "two")
        seen = [client.next_message(operation) for _ in range(2)]
    graphql.wait_live_streams(0)
    graphql.post("lobby", "alice", "three")
    graphql.post("lobby", "alice", "four")
    with subscriptions(served.ws_url) as client:
        operation = client.messages("lobby", after=seen[-1]["position"])
        seen += [client.next_message(operation) for _ in range(2)]
        graphql.post("lobby", "alice", "five")
        seen.append(client.next_message(operation))
    assert ["one", "two", "three", "four", "five"] == [m["text"] for m in seen]


def test_a_disconnected_subscriber_stream_is_closed_on_the_server(
    served: Served, graphql: GraphQL
) -> None:
    """When a subscriber goes away, the server stops following the store for it."""
    graphql.open_room("lobby", "alice")
    with subscriptions(served.ws_url) as client:
        client.messages("lobby")
        client.messages("lobby", after=0)
        graphql.wait_live_streams(2)
    graphql.wait_live_streams(0)


def test_a_subscriber_that_completes_its_subscription_ends_the_stream(
    served: Served, graphql: GraphQL
) -> None:
    """A client's `complete` ends one subscription; its connection stays open for more."""
    graphql.open_room("lobby", "alice")
    with subscriptions(served.ws_url) as client:
        operation = client.messages("lobby")
        graphql.wait_live_streams(1)
        client.send({"id": operation, "type": "complete"})
        graphql.wait_live_streams(0)
        again = client.messages("lobby")
        graphql.wait_live_streams(1)
        graphql.post("lobby", "alice", "still here")
        assert "still here" == client.next_message(again)["text"]
