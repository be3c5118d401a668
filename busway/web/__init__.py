"""What every web application on busway writes otherwise: error codes and live streams.

:class:`ErrorCodes` turns a busway error (or one of the application's) into a stable code
and an HTTP status, for a JSON error body or a GraphQL error's ``extensions``;
:func:`follow` streams a store's events to one client, resuming after the position the
client last saw and ending when the client goes away; :func:`event_json` is an event as
JSON. None of it needs a web framework; :mod:`busway.web.strawberry` applies the codes to
a Strawberry GraphQL schema (``busway[graphql]``).
"""

from ._errors import (
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
from ._follow import Following, event_json, follow

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
    "Following",
    "event_json",
    "follow",
    "report_error",
]
