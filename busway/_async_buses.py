"""The asynchronous buses: the same core, awaited."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar, TypeVar, final, overload

from ._chain import ErrorHook
from ._dispatch import EventCore, SingleHandlerCore
from ._messages import Command, Query
from ._registry import AsyncMiddleware, Kind, Middleware, Registry

__all__ = ["AsyncCommandBus", "AsyncEventBus", "AsyncQueryBus"]

R = TypeVar("R")


@final
class AsyncCommandBus(SingleHandlerCore[Middleware | AsyncMiddleware]):
    """Executes each command by its one handler, sync or async, and returns its result."""

    _kind = Kind.COMMAND
    _is_async: ClassVar[bool] = True

    @overload
    async def execute(self, command: Command[R], /) -> R: ...
    @overload
    async def execute(self, command: object, /) -> Any: ...
    async def execute(self, command: object, /) -> Any:
        """Run *command* through its middleware and handler; return what the handler returns."""
        try:
            chain = self._chains[type(command)]
        except KeyError:
            chain = self._chain_for(type(command))
        return await chain(command)


@final
class AsyncQueryBus(SingleHandlerCore[Middleware | AsyncMiddleware]):
    """Answers each query by its one handler, sync or async."""

    _kind = Kind.QUERY
    _is_async: ClassVar[bool] = True

    @overload
    async def execute(self, query: Query[R], /) -> R: ...
    @overload
    async def execute(self, query: object, /) -> Any: ...
    async def execute(self, query: object, /) -> Any:
        """Run *query* through its middleware and handler; return the answer."""
        try:
            chain = self._chains[type(query)]
        except KeyError:
            chain = self._chain_for(type(query))
        return await chain(query)


@final
class AsyncEventBus(EventCore[Middleware | AsyncMiddleware]):
    """Delivers each event to every handler subscribed to its class or a base class.

    By default handlers run one after another in subscription order; with
    ``concurrent=True`` one event's handlers run side by side in a task group. Either way
    a failure cancels no other handler: all finish, then the failure is raised (an
    ``ExceptionGroup`` if several failed), unless ``on_error`` (sync or async) takes them.
    """

    _is_async: ClassVar[bool] = True

    def __init__(
        self,
        *registries: Registry,
        on_error: ErrorHook | None = None,
        concurrent: bool = False,
        commands: AsyncCommandBus | None = None,
    ) -> None:
        self._concurrent_delivery = concurrent
        super().__init__(*registries, on_error=on_error, commands=commands)

    def _concurrent(self) -> bool:
        return self._concurrent_delivery

    async def publish(self, event: object, /) -> None:
        """Deliver *event* to its handlers; return when all have finished."""
        try:
            chain = self._chains[type(event)]
        except KeyError:
            chain = self._chain_for(type(event))
        await chain(event)

    async def publish_all(self, events: Iterable[object], /) -> None:
        """Publish each event in order; a failure stops the events after it."""
        for event in events:
            await self.publish(event)
