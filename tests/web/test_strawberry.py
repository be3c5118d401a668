"""busway.web.strawberry: busway's error codes in a Strawberry schema's results."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import AsyncGenerator
from typing import Any

import pytest
import strawberry
from graphql import GraphQLError

from busway import AggregateNotFoundError, ConcurrencyError, SerializationError, ValidationError
from busway.web import ErrorCode, ErrorCodes
from busway.web.strawberry import BuswayErrors, BuswaySchema


class Room:
    """Names an aggregate type in the errors below."""


class NotAMemberError(Exception):
    """The application's own error."""


def _fail(kind: str) -> None:
    if kind == "missing":
        raise AggregateNotFoundError(Room, "attic", "room-attic")
    if kind == "invalid":
        raise ValidationError("PostMessage", ["text is empty"])
    if kind == "stale":
        raise ConcurrencyError("room-lobby", 2, 3)
    if kind == "member":
        raise NotAMemberError("ada is not in lobby")
    if kind == "coded":
        raise GraphQLError("teapot", extensions={"code": "TEAPOT"})
    raise SerializationError("row 9 holds the secret 'hunter2'")


@strawberry.type
class Query:
    @strawberry.field
    def room(self, kind: str) -> str:
        _fail(kind)
        return "lobby"  # pragma: no cover - every call above fails


@strawberry.type
class Mutation:
    @strawberry.mutation
    async def post(self, kind: str) -> str:
        _fail(kind)
        return "posted"  # pragma: no cover - every call above fails


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def messages(self, kind: str) -> AsyncGenerator[str, None]:
        yield "hello"
        _fail(kind)


class ChatErrors(BuswayErrors):
    codes = ErrorCodes({NotAMemberError: ErrorCode("FORBIDDEN", 403)})


def schema(extension: type[BuswayErrors] = BuswayErrors) -> strawberry.Schema:
    """A schema with the extension, as an application declares it."""
    return strawberry.Schema(Query, Mutation, Subscription, extensions=[extension])


def errors_of(result: Any) -> list[dict[str, Any]]:
    """The errors as the client receives them."""
    return [error.formatted for error in result.errors or ()]


def test_a_query_error_carries_its_code_and_the_message() -> None:
    """A missing aggregate reaches the client as NOT_FOUND with busway's message."""
    result = schema().execute_sync('{ room(kind: "missing") }')
    [error] = errors_of(result)
    assert error["extensions"] == {"code": "NOT_FOUND"}
    assert error["message"].startswith("no Room with id 'attic'")
    assert error["path"] == ["room"]


def test_a_mutation_error_carries_its_code_and_problems() -> None:
    """Invalid input reaches the client as INVALID_INPUT, problem by problem."""
    result = asyncio.run(schema().execute('mutation { post(kind: "invalid") }'))
    [error] = errors_of(result)
    assert error["extensions"] == {"code": "INVALID_INPUT", "problems": ["text is empty"]}


def test_an_internal_error_is_masked_but_kept_for_the_server() -> None:
    """A server fault's message is replaced; the exception stays on the error for the logs."""
    result = schema().execute_sync('{ room(kind: "fault") }')
    [error] = result.errors or []
    assert error.formatted["message"] == "internal error"
    assert error.formatted["extensions"] == {"code": "INTERNAL"}
    assert isinstance(error.original_error, SerializationError)


def test_an_applications_errors_get_its_codes() -> None:
    """A subclass with its own table maps the application's exceptions."""
    result = schema(ChatErrors).execute_sync('{ room(kind: "member") }')
    [error] = errors_of(result)
    assert error["extensions"] == {"code": "FORBIDDEN"}
    assert error["message"] == "ada is not in lobby"


def test_graphqls_own_errors_and_coded_ones_are_left_as_they_are() -> None:
    """A request GraphQL refuses, or an error a resolver coded itself, is not rewritten."""
    [unknown_field] = errors_of(schema().execute_sync("{ nothing }"))
    assert "code" not in unknown_field.get("extensions", {})
    [coded] = errors_of(schema().execute_sync('{ room(kind: "coded") }'))
    assert coded["extensions"] == {"code": "TEAPOT"}
    assert coded["message"] == "teapot"


def test_each_result_of_a_subscription_carries_the_code() -> None:
    """A subscription that fails after a message sends the error with its code."""

    async def main() -> list[Any]:
        results = await schema().subscribe('subscription { messages(kind: "stale") }')
        assert isinstance(results, AsyncGenerator)
        return [result async for result in results]

    first, failed = asyncio.run(main())
    assert first.data == {"messages": "hello"}
    [error] = errors_of(failed)
    assert error["extensions"] == {"code": "CONFLICT"}


def test_busway_web_needs_no_web_framework() -> None:
    """``import busway.web`` imports neither Strawberry nor GraphQL: any framework can use it."""
    code = (
        "import sys, busway.web\n"
        "print(sorted(m for m in ('strawberry', 'graphql', 'starlette') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert out.stdout.strip() == "[]"


def test_without_strawberry_the_import_says_which_extra_to_install() -> None:
    """Importing busway.web.strawberry where Strawberry is missing names the extra to install."""
    code = (
        "import sys; sys.modules['strawberry'] = None\n"
        "try:\n    import busway.web.strawberry\n"
        "except ImportError as e:\n    print(e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True)
    assert "pip install 'busway[graphql]'" in out.stdout


def logged(caplog: pytest.LogCaptureFixture, schema: strawberry.Schema, query: str) -> list[str]:
    """The messages of the errors Strawberry logs while executing *query*."""
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="strawberry.execution"):
        schema.execute_sync(query)
    return [r.getMessage() for r in caplog.records if r.name == "strawberry.execution"]


def test_a_busway_schema_logs_the_servers_faults_but_not_the_clients_mistakes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Not found, invalid input and conflicts are answered; faults are logged as Strawberry does."""
    busway_schema = BuswaySchema(Query, Mutation, Subscription, extensions=[BuswayErrors])
    for kind in ("missing", "invalid", "stale"):
        assert logged(caplog, busway_schema, f'{{ room(kind: "{kind}") }}') == [], kind
    assert len(logged(caplog, busway_schema, '{ room(kind: "fault") }')) == 1
    assert len(logged(caplog, busway_schema, '{ room(kind: "coded") }')) == 1
    assert len(logged(caplog, busway_schema, '{ room(kind: "member") }')) == 1  # unmapped
    assert len(logged(caplog, busway_schema, "{ nothing }")) == 1
    assert len(logged(caplog, schema(), '{ room(kind: "missing") }')) == 1  # plain Strawberry


def test_a_busway_schema_reads_the_codes_of_the_extension_it_is_given(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An application's mapped exception with a 4xx code is not logged either."""
    chat_schema = BuswaySchema(Query, extensions=[ChatErrors])
    assert logged(caplog, chat_schema, '{ room(kind: "member") }') == []
    without = BuswaySchema(Query)
    assert logged(caplog, without, '{ room(kind: "missing") }') == []
    assert len(logged(caplog, without, '{ room(kind: "member") }')) == 1
