"""busway.web's error codes: what a client is told of each error, and how an app adds its own."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from busway import (
    AggregateExistsError,
    AggregateNotFoundError,
    BuswayError,
    ConcurrencyError,
    ConnectionLostError,
    DispatchTimeoutError,
    DuplicateEventError,
    DuplicateHandlerError,
    HandlerNotFoundError,
    InvalidArgumentError,
    SagaConcurrencyError,
    SerializationError,
    StoreClosedError,
    StoreLockedError,
    ValidationError,
)
from busway.web import (
    CONFLICT,
    DEFAULT_CODES,
    INTERNAL,
    INVALID_INPUT,
    NOT_FOUND,
    TIMEOUT,
    UNAVAILABLE,
    ErrorCode,
    ErrorCodes,
    ErrorReport,
    report_error,
)


class Room:
    """Names an aggregate type in the errors below."""


class NotAMemberError(Exception):
    """An application's own error."""


class FormerMemberError(NotAMemberError):
    """A more specific one, mapped on its own."""


EXAMPLES: list[tuple[BaseException, ErrorCode]] = [
    (ValidationError("PostMessage", ["text is empty"]), INVALID_INPUT),
    (InvalidArgumentError("first", 0, "1 to 100"), INVALID_INPUT),
    (AggregateNotFoundError(Room, "lobby", "room-lobby"), NOT_FOUND),
    (ConcurrencyError("room-lobby", 2, 3), CONFLICT),
    (AggregateExistsError(Room, "lobby", "room-lobby", 1), CONFLICT),
    (SagaConcurrencyError("welcome-1", 1, 2), CONFLICT),
    (DuplicateEventError(uuid.uuid4(), "room-lobby"), CONFLICT),
    (StoreLockedError("chat.sqlite3", 5.0), UNAVAILABLE),
    (
        ConnectionLostError("127.0.0.1:5432", "server closed the connection", committed=False),
        UNAVAILABLE,
    ),
    (StoreClosedError("a store"), UNAVAILABLE),
    (DispatchTimeoutError("PostMessage", 2.0), TIMEOUT),
    (HandlerNotFoundError(Room, []), INTERNAL),
    (DuplicateHandlerError(Room, print, repr), INTERNAL),
    (SerializationError("row 3 is damaged"), INTERNAL),
    (BuswayError("anything else"), INTERNAL),
    (KeyError("a bug"), INTERNAL),
]


@pytest.mark.parametrize(("error", "expected"), EXAMPLES, ids=lambda x: type(x).__name__)
def test_each_busway_error_has_the_documented_code(
    error: BaseException, expected: ErrorCode
) -> None:
    """Not found is 404, a stale write 409, bad input 422, an unreachable store 503, and so on."""
    report = report_error(error)
    assert (report.code, report.status) == (expected.code, expected.status)


def test_a_client_sees_the_message_and_problems_of_invalid_input() -> None:
    """Invalid input tells the client what was wrong, problem by problem."""
    report = report_error(ValidationError("PostMessage", ["text is empty", "room is unknown"]))
    assert report == ErrorReport(
        "INVALID_INPUT",
        422,
        "str is invalid: text is empty; room is unknown",
        ("text is empty", "room is unknown"),
    )
    assert report.extensions() == {
        "code": "INVALID_INPUT",
        "problems": ["text is empty", "room is unknown"],
    }
    assert report.body() == {
        "error": {
            "code": "INVALID_INPUT",
            "message": "str is invalid: text is empty; room is unknown",
            "problems": ["text is empty", "room is unknown"],
        }
    }


def test_an_internal_error_hides_its_message() -> None:
    """What a server fault says stays on the server: the client reads only 'internal error'."""
    report = report_error(SerializationError("row 3 holds the secret 'hunter2'"))
    assert report == ErrorReport("INTERNAL", 500, "internal error")
    assert report.extensions() == {"code": "INTERNAL"}
    assert report.body() == {"error": {"code": "INTERNAL", "message": "internal error"}}


def test_an_application_maps_its_own_exceptions_and_the_most_specific_class_wins() -> None:
    """An app's errors get its codes; a subclass mapped on its own beats its base."""
    forbidden = ErrorCode("FORBIDDEN", 403)
    gone = ErrorCode("GONE", 410)
    codes = ErrorCodes({NotAMemberError: forbidden, FormerMemberError: gone})
    assert codes.report(NotAMemberError("ada is not in lobby")) == ErrorReport(
        "FORBIDDEN", 403, "ada is not in lobby"
    )
    assert codes.code_of(FormerMemberError("ada left")) == gone
    assert codes.code_of(AggregateNotFoundError(Room, "x", "room-x")) == NOT_FOUND
    assert report_error(NotAMemberError("x")).code == "INTERNAL"  # the defaults are untouched


def test_an_application_changes_what_a_busway_error_means() -> None:
    """Mapping a busway class changes it and its subclasses, and leaves the rest as they were."""
    codes = ErrorCodes({ConcurrencyError: ErrorCode("RETRY", 409)})
    assert codes.code_of(AggregateExistsError(Room, "x", "room-x", 1)).code == "RETRY"
    assert codes.code_of(ValidationError("m", ["bad"])) == INVALID_INPUT
    assert codes.codes[ConcurrencyError] == ErrorCode("RETRY", 409)
    assert len(codes.codes) == len(DEFAULT_CODES)
    assert repr(codes) == "ErrorCodes({<class 'busway.errors.ConcurrencyError'>: " + (
        "ErrorCode(code='RETRY', status=409)})"
    )


@pytest.mark.parametrize(
    ("codes", "says"),
    [
        ({"NotAMember": INTERNAL}, "an ErrorCodes key must be an exception class"),
        ({int: INTERNAL}, "an ErrorCodes key must be an exception class"),
        ({KeyError: ("GONE", 410)}, "the code for KeyError must be an ErrorCode"),
    ],
)
def test_a_table_that_is_not_exceptions_to_codes_is_refused(codes: object, says: str) -> None:
    """A key that is not an exception class, or a value that is not an ErrorCode, is named."""
    with pytest.raises(InvalidArgumentError, match=says):
        ErrorCodes(codes)  # type: ignore[arg-type]


@given(st.one_of(st.text(), st.integers(), st.none()), st.integers())
def test_an_error_code_needs_a_clean_code_and_an_error_status(code: object, status: int) -> None:
    """A code is non-empty ASCII text without surrounding spaces; a status is 400 to 599."""
    good_code = isinstance(code, str) and code != "" and code.isascii() and code == code.strip()
    good_status = 400 <= status <= 599
    if good_code and good_status:
        assert ErrorCode(code, status).status == status  # type: ignore[arg-type]
    else:
        with pytest.raises(InvalidArgumentError, match="ErrorCode"):
            ErrorCode(code, status)  # type: ignore[arg-type]


def test_a_status_must_be_an_int_not_a_bool_or_text() -> None:
    """``True`` or ``"404"`` is not an HTTP status."""
    for status in (True, "404", 404.0):
        with pytest.raises(InvalidArgumentError, match=r"ErrorCode\.status"):
            ErrorCode("NOT_FOUND", status)  # type: ignore[arg-type]
