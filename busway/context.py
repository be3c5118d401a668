"""The context of the message being handled: its id, and the ids that tie it to others.

The :func:`busway.middleware.correlation` middleware sets it around each dispatch, so a
handler (and anything it calls: nested dispatches, event-store appends, log records) can
tell which message it serves, which conversation that message belongs to (correlation id)
and which message caused it (causation id). It lives on a :mod:`contextvars` variable, so
threads and asyncio tasks each see their own.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator
from contextvars import ContextVar, Token

import attrs

__all__ = ["MessageContext", "current", "scope"]


@attrs.frozen
class MessageContext:
    """Ids of the message being handled.

    The first message of a conversation is its own correlation and has no cause; every
    message dispatched while handling another keeps the correlation id and takes the
    other's message id as its causation id.
    """

    message_id: uuid.UUID
    correlation_id: uuid.UUID
    causation_id: uuid.UUID | None = None

    def child(self, message_id: uuid.UUID | None = None) -> MessageContext:
        """Return the context of a message dispatched while handling this one."""
        return MessageContext(
            message_id=message_id or uuid.uuid4(),
            correlation_id=self.correlation_id,
            causation_id=self.message_id,
        )

    @classmethod
    def root(cls, message_id: uuid.UUID | None = None) -> MessageContext:
        """Return the context of a message that starts a conversation."""
        mid = message_id or uuid.uuid4()
        return cls(message_id=mid, correlation_id=mid, causation_id=None)


_current: ContextVar[MessageContext | None] = ContextVar("busway_message_context", default=None)


def current() -> MessageContext | None:
    """Return the context of the message being handled, or ``None`` outside a dispatch."""
    return _current.get()


@contextlib.contextmanager
def scope(context: MessageContext) -> Iterator[MessageContext]:
    """Make *context* current inside the block.

    Use it to carry ids in from outside, e.g. a correlation id that came with an HTTP
    request: dispatches in the block (under the correlation middleware) become its children.
    """
    token = _current.set(context)
    try:
        yield context
    finally:
        _current.reset(token)


def _enter() -> Token[MessageContext | None]:
    """Set the context of a new message: a child of the current one, or a new root."""
    parent = _current.get()
    return _current.set(parent.child() if parent is not None else MessageContext.root())


def _exit(token: Token[MessageContext | None]) -> None:
    _current.reset(token)
