"""A real chat server on a free loopback port, one per test, on a fresh SQLite file."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import httpx
import pytest

from busway.eventstore import SQLiteEventStore
from examples.chat.messages import EVENT_TYPES
from examples.chat.web import create_app, listen, server
from tests.chat.web.clients import GraphQL


@attrs.frozen
class Served:
    """Where a running server listens, and the file it keeps the chat in."""

    url: str
    path: Path

    @property
    def ws_url(self) -> str:
        return "ws" + self.url.removeprefix("http")

    def head(self) -> int:
        """The store's head position, read from the file by a store of the test's own."""
        with SQLiteEventStore(self.path, types=EVENT_TYPES) as store:
            return store.head_position()


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """Run uvicorn with the chat app on a thread until the test ends."""
    path = tmp_path / "chat.sqlite3"
    uvicorn = server(create_app(path))
    sock = listen()
    thread = threading.Thread(target=uvicorn.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uvicorn.started:
        assert thread.is_alive(), "the server stopped while starting"
        assert time.monotonic() < deadline, "the server did not start in 10 s"
        time.sleep(0.01)
    host, port = sock.getsockname()
    yield Served(f"http://{host}:{port}", path)
    uvicorn.should_exit = True
    thread.join(10)
    sock.close()
    assert not thread.is_alive(), "the server did not stop"


@pytest.fixture
def graphql(served: Served) -> Iterator[GraphQL]:
    """An HTTP client of the server's GraphQL endpoint."""
    with httpx.Client(base_url=served.url, timeout=10) as http:
        yield GraphQL(http)
