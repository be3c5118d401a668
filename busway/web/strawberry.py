"""busway's error codes on a Strawberry GraphQL schema (``pip install 'busway[graphql]'``).

Add :class:`BuswayErrors` to the schema's extensions and every error a resolver raises
reaches the client with ``extensions.code`` (and ``problems`` for invalid input), in the
results of queries and mutations and in each result of a subscription; an ``INTERNAL``
error's message is replaced, its exception kept for the server's logs. Errors GraphQL
itself finds in a request (a field that does not exist) are left as GraphQL reports them.
Build the schema as a :class:`BuswaySchema` and the server's log keeps only the errors the
server must fix, not every client's unknown id or stale write.
"""

from __future__ import annotations


def _require_strawberry() -> None:
    """Say which extra to install when Strawberry is missing."""
    try:
        import strawberry  # noqa: F401 - imported only to see that it is there
    except ImportError as error:  # pragma: no cover - run by a test in a process without it
        raise ImportError(
            "busway.web.strawberry needs Strawberry: install it with pip install 'busway[graphql]'",
            name=error.name,
        ) from error


_require_strawberry()

from collections.abc import Iterator  # noqa: E402 - after the check, which names the extra
from typing import ClassVar  # noqa: E402

import strawberry  # noqa: E402
from graphql import ExecutionResult as GraphQLExecutionResult  # noqa: E402
from graphql import GraphQLError  # noqa: E402
from strawberry.extensions import SchemaExtension  # noqa: E402
from strawberry.types import ExecutionContext, ExecutionResult  # noqa: E402

from ._errors import ErrorCodes  # noqa: E402

__all__ = ["BuswayErrors", "BuswaySchema"]


class BuswayErrors(SchemaExtension):
    """A schema extension giving each resolver error its busway code.

    ``strawberry.Schema(query=Query, extensions=[BuswayErrors])``. To add an application's
    exceptions, subclass it with other :attr:`codes`::

        class ChatErrors(BuswayErrors):
            codes = ErrorCodes({NotAMemberError: ErrorCode("FORBIDDEN", 403)})
    """

    codes: ClassVar[ErrorCodes] = ErrorCodes()
    """The table errors are looked up in."""

    def on_operation(self) -> Iterator[None]:
        yield
        self._apply(self.execution_context.result)

    def on_stream_result(self, result: object) -> Iterator[None]:
        """Each result of a subscription, before it is sent."""
        self._apply(result)
        yield

    def _apply(self, result: object) -> None:
        if isinstance(result, (ExecutionResult, GraphQLExecutionResult)) and result.errors:
            result.errors = [self._coded(error) for error in result.errors]

    def _coded(self, error: GraphQLError) -> GraphQLError:
        original = _raised(error)
        extensions = error.extensions or {}
        if original is None or "code" in extensions:
            return error  # GraphQL's own, or one a resolver gave a code itself
        report = self.codes.report(original)
        return GraphQLError(
            report.message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            original_error=original,
            extensions={**extensions, **report.extensions()},
        )


class BuswaySchema(strawberry.Schema):
    """A Strawberry schema whose log holds only the errors the server must fix.

    Strawberry logs every resolver error with its traceback. An error whose code has a 4xx
    status (not found, conflict, invalid input) is the client's and is answered, not
    logged; the rest are logged as Strawberry logs them, errors a resolver raised as
    GraphQL errors included. Codes are looked up in the :class:`BuswayErrors` class (or
    subclass) the schema is given as an extension, busway's defaults without one.
    """

    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        codes = next(
            (
                extension.codes
                for extension in self.extensions
                if isinstance(extension, type) and issubclass(extension, BuswayErrors)
            ),
            BuswayErrors.codes,
        )
        faults = [error for error in errors if not _refused(error, codes)]
        super().process_errors(faults, execution_context)


def _raised(error: GraphQLError) -> Exception | None:
    """The exception a resolver raised, which busway codes; None for GraphQL's own errors."""
    original = error.original_error
    return None if original is None or isinstance(original, GraphQLError) else original


def _refused(error: GraphQLError, codes: ErrorCodes) -> bool:
    original = _raised(error)
    return original is not None and codes.code_of(original).status < 500
