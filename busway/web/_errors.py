"""What a busway error means to a web client: a stable code and an HTTP status.

Every application behind HTTP or GraphQL maps the same errors the same way, so the table
lives here: a missing aggregate is ``NOT_FOUND``, a stale write ``CONFLICT``, a rejected
message ``INVALID_INPUT``. Applications add their own exception classes, or change a
mapping, with :class:`ErrorCodes`; the most specific class in an exception's MRO decides.
Anything unmapped is ``INTERNAL``, and its message is not shown: it may hold what a client
must not see.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, final

import attrs

from ..errors import (
    AggregateNotFoundError,
    BuswayError,
    ConcurrencyError,
    DispatchTimeoutError,
    DuplicateEventError,
    InvalidArgumentError,
    ProjectionTimeoutError,
    RegistrationError,
    StoreClosedError,
    StoreUnavailableError,
    ValidationError,
)

__all__ = [
    "CONFLICT",
    "DEFAULT_CODES",
    "INTERNAL",
    "INVALID_INPUT",
    "NOT_FOUND",
    "TIMEOUT",
    "UNAVAILABLE",
    "ErrorCode",
    "ErrorCodes",
    "ErrorReport",
    "report_error",
]


def _check_code(instance: object, attribute: object, value: Any) -> None:
    if not isinstance(value, str) or not value or not value.isascii() or value != value.strip():
        raise InvalidArgumentError(
            "ErrorCode.code", value, "a non-empty ASCII string without surrounding spaces"
        )


def _check_status(instance: object, attribute: object, value: Any) -> None:
    if type(value) is not int or not 400 <= value <= 599:
        raise InvalidArgumentError("ErrorCode.status", value, "an HTTP error status, 400 to 599")


@final
@attrs.frozen
class ErrorCode:
    """A code clients can rely on (``"NOT_FOUND"``) and the HTTP status that goes with it."""

    code: str = attrs.field(validator=_check_code)
    status: int = attrs.field(validator=_check_status)


NOT_FOUND: Final = ErrorCode("NOT_FOUND", 404)
"""What was asked for does not exist."""
CONFLICT: Final = ErrorCode("CONFLICT", 409)
"""Someone else wrote first, or the thing already exists: reload and try again."""
INVALID_INPUT: Final = ErrorCode("INVALID_INPUT", 422)
"""The request itself is wrong: the same request will always fail."""
UNAVAILABLE: Final = ErrorCode("UNAVAILABLE", 503)
"""The store cannot be reached or is shutting down: try again later."""
TIMEOUT: Final = ErrorCode("TIMEOUT", 504)
"""The work did not finish in time; it may still finish."""
INTERNAL: Final = ErrorCode("INTERNAL", 500)
"""A fault on the server; its message is hidden from the client."""

DEFAULT_CODES: Final[Mapping[type[BaseException], ErrorCode]] = MappingProxyType(
    {
        ValidationError: INVALID_INPUT,
        InvalidArgumentError: INVALID_INPUT,
        AggregateNotFoundError: NOT_FOUND,
        ConcurrencyError: CONFLICT,
        DuplicateEventError: CONFLICT,
        StoreUnavailableError: UNAVAILABLE,
        StoreClosedError: UNAVAILABLE,
        DispatchTimeoutError: TIMEOUT,
        ProjectionTimeoutError: TIMEOUT,
        # A handler or type that cannot be registered is the server's bug, not the client's
        # input, although it is a TypeError.
        RegistrationError: INTERNAL,
        BuswayError: INTERNAL,
    }
)
"""The mapping :func:`report_error` uses, by exception class."""

_HIDDEN: Final = "internal error"


@final
@attrs.frozen
class ErrorReport:
    """An error as a client may see it: code, HTTP status, message and the problems found."""

    code: str
    status: int
    message: str
    problems: tuple[str, ...] = ()

    def extensions(self) -> dict[str, Any]:
        """The GraphQL error's ``extensions``: the code, and the problems when there are any."""
        if self.problems:
            return {"code": self.code, "problems": list(self.problems)}
        return {"code": self.code}

    def body(self) -> dict[str, Any]:
        """A JSON body for an HTTP error response: ``{"error": {"code", "message", ...}}``."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.problems:
            error["problems"] = list(self.problems)
        return {"error": error}


@final
class ErrorCodes:
    """Busway's table of error codes, with *codes* added to it or replacing its entries.

    ``ErrorCodes({NotAMemberError: ErrorCode("FORBIDDEN", 403)})`` maps an application's
    exception; mapping a busway class changes what it and its subclasses mean. An
    exception's most specific class that has an entry decides.
    """

    __slots__ = ("_by_type", "_codes")

    def __init__(self, codes: Mapping[type[BaseException], ErrorCode] | None = None) -> None:
        table = dict(DEFAULT_CODES)
        for cls, code in (codes or {}).items():
            if not (isinstance(cls, type) and issubclass(cls, BaseException)):
                raise InvalidArgumentError("an ErrorCodes key", cls, "an exception class")
            if not isinstance(code, ErrorCode):
                raise InvalidArgumentError(
                    f"the code for {cls.__qualname__}", code, 'an ErrorCode("CODE", status)'
                )
            table[cls] = code
        self._codes: Mapping[type[BaseException], ErrorCode] = MappingProxyType(table)
        self._by_type: dict[type[BaseException], ErrorCode] = {}

    @property
    def codes(self) -> Mapping[type[BaseException], ErrorCode]:
        """Every entry, busway's defaults included."""
        return self._codes

    def code_of(self, error: BaseException) -> ErrorCode:
        """The code for *error*: its most specific mapped class's, else ``INTERNAL``."""
        cls = type(error)
        try:
            return self._by_type[cls]
        except KeyError:
            pass
        codes = self._codes
        code = next((codes[base] for base in cls.__mro__ if base in codes), INTERNAL)
        self._by_type[cls] = code
        return code

    def report(self, error: BaseException) -> ErrorReport:
        """What a client should see of *error*; an ``INTERNAL`` error's message is hidden."""
        code = self.code_of(error)
        if code == INTERNAL:
            return ErrorReport(code.code, code.status, _HIDDEN)
        problems = error.problems if isinstance(error, ValidationError) else ()
        return ErrorReport(code.code, code.status, str(error), problems)

    def __repr__(self) -> str:
        added = {cls: code for cls, code in self._codes.items() if DEFAULT_CODES.get(cls) != code}
        return f"ErrorCodes({added!r})"


_DEFAULT: Final = ErrorCodes()


def report_error(error: BaseException) -> ErrorReport:
    """What a client should see of *error*, by busway's default codes."""
    return _DEFAULT.report(error)
