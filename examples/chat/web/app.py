"""The chat's web app: GraphQL, the push WebSocket and the page, on one SQLite file."""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import HTTPConnection, Request
from starlette.responses import FileResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from examples.chat.service import Chat
from examples.chat.web.context import Context, Live, context_of
from examples.chat.web.push import room_events
from examples.chat.web.schema import schema

__all__ = ["create_app", "listen", "server"]

PAGE = Path(__file__).resolve().parent.parent / "static" / "index.html"


class ChatGraphQL(GraphQL[Context, None]):
    """Strawberry's ASGI app, speaking graphql-transport-ws, with the chat as context."""

    async def get_context(
        self, request: Request | WebSocket, response: Response | WebSocket
    ) -> Context:
        return context_of(request)


async def page(request: HTTPConnection) -> FileResponse:
    return FileResponse(PAGE, media_type="text/html")


def create_app(path: str | os.PathLike[str]) -> Starlette:
    """Make the app; it opens the chat in the SQLite file at *path* when it starts."""

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Context]]:
        async with Chat.open(path) as chat:
            yield {"context": Context(chat, Live(chat.store))}

    graphql = ChatGraphQL(schema, subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL])
    return Starlette(
        routes=[
            Route("/", page),
            Route("/graphql", graphql, methods=["GET", "POST"]),
            WebSocketRoute("/graphql", graphql),
            WebSocketRoute("/rooms/{room_id}/events", room_events),
        ],
        lifespan=lifespan,
    )


def listen(port: int = 0) -> socket.socket:
    """Listen on 127.0.0.1 at *port* (0: any free one), for :func:`server` to serve.

    Listening before the server starts lets a client connect as soon as the address is
    known: its connection waits in the queue until the server accepts it.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(socket.SOMAXCONN)
    return sock


def server(app: Starlette, *, log_level: str = "warning") -> uvicorn.Server:
    """A uvicorn server for *app*; ``server.run(sockets=[listen(port)])`` serves it."""
    config = uvicorn.Config(app, lifespan="on", ws="websockets-sansio", log_level=log_level)
    return uvicorn.Server(config)
