"""The synchronous buses: thin drivers over the shared dispatch core."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar, final, overload

from ._chain import ErrorHook, deliver_rest
from ._dispatch import EventCore, SingleHandlerCore
from ._messages import Command, Query
from ._registry import Kind, Middleware, Registry

__all__ = ["CommandBus", "EventBus", "QueryBus"]

R = TypeVar("R")


@final
class CommandBus(SingleHandlerCore[Middleware]):
    """Executes each command by its one handler and returns the handler's result."""

    _kind = Kind.COMMAND

    @overload
    def execute(self, command: Command[R], /) -> R: ...
    @overload
    def execute(self, command: object, /) -> Any: ...
    def execute(self, command: object, /) -> Any:
        """Run *command* through its middleware and handler; return what the handler returns."""
        try:
            chain = self._chains[type(command)]
        except KeyError:
            chain = self._chain_for(type(command))
        return chain(command)


@final
class QueryBus(SingleHandlerCore[Middleware]):
    """Answers each query by its one handler."""

    _kind = Kind.QUERY

    @overload
    def execute(self, query: Query[R], /) -> R: ...
    @overload
    def execute(self, query: object, /) -> Any: ...
    def execute(self, query: object, /) -> Any:
        """Run *query* through its middleware and handler; return the answer."""
        try:
            chain = self._chains[type(query)]
        except KeyError:
            chain = self._chain_for(type(query))
        return chain(query)


@final
class EventBus(EventCore[Middleware]):
    """Delivers each event to every handler subscribed to its class or a base class.

    Handlers run in subscription order, each once. If some fail, the others still run;
    then the failure is raised (an ``ExceptionGroup`` if several failed), unless
    ``on_error(error, event, handler)`` was given, which then gets each failure instead.
    """

    def __init__(
        self,
        *registries: Registry,
        on_error: ErrorHook | None = None,
        commands: CommandBus | None = None,
    ) -> None:
        super().__init__(*registries, on_error=on_error, commands=commands)

    def publish(self, event: object, /) -> None:
        """Deliver *event* to its handlers; return when all have run."""
        try:
            deliver, chains = self._chains[type(event)]
        except KeyError:
            deliver, chains = self._chain_for(type(event))
        if chains is None:
            deliver(event)
            return
        # Several handlers and nothing around them: deliver's own loop, run here, without
        # the call frame in between.
        try:
            for chain in chains:
                chain(event)
            return
        except Exception as exc:
            error = exc
        try:
            raise deliver_rest(chains, chain, error, event)
        finally:
            del error  # the traceback holds this frame: break the cycle

    def publish_all(self, events: Iterable[object], /) -> None:
        """Publish each event in order; a failure stops the events after it."""
        for event in events:
            self.publish(event)
