"""The context of the message being handled: its id, and the ids that tie it to others.

The :func:`busway.middleware.correlation` middleware sets it around each dispatch, so a
handler (and anything it calls: nested dispatches, event-store appends, log records) can
tell which message it serves, which conversation that message belongs to (correlation id)
and which message caused it (causation id). It lives on a :mod:`contextvars` variable, so
threads and asyncio tasks each see their own.
"""

from __future__ import annotations

import uuid
from contextlib import AbstractContextManager
from contextvars import ContextVar, Token
from typing import final

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


@final
class _Scope:
    """The block in which a message context is current (a class: it runs per dispatch)."""

    __slots__ = ("_context", "_token")
    _token: Token[MessageContext | None]

    def __init__(self, context: MessageContext | None) -> None:
        self._context = context

    def __enter__(self) -> MessageContext:
        context = self._context
        if context is None:
            parent = _current.get()
            context = MessageContext.root() if parent is None else parent.child()
        self._token = _current.set(context)
        return context

    def __exit__(self, *exc_info: object) -> None:
        _current.reset(self._token)


def scope(context: MessageContext | None = None) -> AbstractContextManager[MessageContext]:
    """Make *context* current inside the block; without one, a new message's context.

    Give it a context to carry ids in from outside, e.g. a correlation id that came with an
    HTTP request: dispatches in the block (under the correlation middleware) become its
    children. Without one, the block gets what :func:`busway.middleware.correlation` gives
    each dispatch: a child of the current context, or a new root outside any.
    """
    return _Scope(context)
