"""Bad input over GraphQL gets an error with a stable code, and nothing is stored."""

from __future__ import annotations

import pytest

from tests.chat.web.clients import GraphQL, GraphQLError, subscriptions
from tests.chat.web.conftest import Served

POST = (
    "mutation($r: String!, $a: String!, $t: String!, $m: String) "
    "{ postMessage(roomId: $r, author: $a, text: $t, messageId: $m) { messageId } }"
)


@pytest.mark.parametrize(
    ("post", "code"),
    [
        pytest.param({"t": ""}, "INVALID_INPUT", id="empty text"),
        pytest.param({"t": "   "}, "INVALID_INPUT", id="blank text"),
        pytest.param({"r": "attic"}, "NOT_FOUND", id="unknown room"),
        pytest.param({"a": "mallory"}, "INVALID_INPUT", id="not a member"),
        pytest.param({"m": "m-1"}, "CONFLICT", id="reused id"),
    ],
)
def test_a_refused_post_is_a_coded_error_and_stores_nothing(
    served: Served, graphql: GraphQL, post: dict[str, str], code: str
) -> None:
    """The error's `code` says what was wrong; the store's head has not moved."""
    graphql.open_room("lobby", "alice")
    graphql.post("lobby", "alice", "first", message_id="m-1")
    head = served.head()
    with pytest.raises(GraphQLError) as refused:
        graphql.call(POST, **{"r": "lobby", "a": "alice", "t": "hi", "m": None, **post})
    assert code == refused.value.code, refused.value.message
    assert head == served.head()


def test_opening_a_room_twice_is_a_conflict(served: Served, graphql: GraphQL) -> None:
    """A second room under a taken id is refused with CONFLICT, and nothing is stored."""
    graphql.open_room("lobby", "alice")
    head = served.head()
    with pytest.raises(GraphQLError) as refused:
        graphql.open_room("lobby", "bob")
    assert "CONFLICT" == refused.value.code
    assert head == served.head()


def test_subscribing_to_an_unknown_room_is_a_not_found_error(served: Served) -> None:
    """The subscription answers with a NOT_FOUND error instead of streaming nothing."""
    with subscriptions(served.ws_url) as client:
        assert "NOT_FOUND" == client.error(client.messages("attic"))["code"]


def test_subscribing_after_a_negative_position_is_invalid_input(
    served: Served, graphql: GraphQL
) -> None:
    """A position below zero is refused with INVALID_INPUT."""
    graphql.open_room("lobby", "alice")
    with subscriptions(served.ws_url) as client:
        assert "INVALID_INPUT" == client.error(client.messages("lobby", after=-1))["code"]
