"""Events that reach a busy manager from another thread or task wait for its worker."""

from __future__ import annotations

import asyncio
import threading

import attrs
import pytest

from busway import AsyncCommandBus, AsyncEventBus, Command, CommandBus, Event, EventBus
from busway.sagas import AsyncSagaManager, InMemorySagaStore, Saga, SagaManager, handles, starts

#: How long a test waits for another thread or task before calling it stuck.
PATIENCE = 5.0


@attrs.frozen
class Ping(Event):
    key: str


@attrs.frozen
class Pong(Event):
    key: str
    fail: bool = False


@attrs.frozen
class Ask(Command[None]):
    key: str
    fail: bool = False


@attrs.define
class Echo(Saga):
    """Asks once started, and records the answer."""

    key: str = ""
    answered: bool = False

    @starts(Ping, key="key")
    def pinged(self, event: Ping) -> None:
        self.key = event.key
        self.send(Ask(event.key, fail=event.key.startswith("fail")))

    @handles(Pong, key="key")
    def ponged(self, event: Pong) -> None:
        if event.fail:
            raise LookupError(f"no answer for {event.key}")
        self.answered = True


def answered(manager: SagaManager, key: str) -> list[bool]:
    return [echo.answered for echo in manager.find(Echo, "key", key)]


def test_a_handler_may_join_a_thread_that_publishes_the_reply() -> None:
    """The reply published from another thread is queued, not blocked, and handled in turn."""
    events, commands = EventBus(), CommandBus()
    finished: list[bool] = []

    @commands.handler
    def ask(command: Ask) -> None:
        reply = Pong(command.key, fail=command.fail)
        publisher = threading.Thread(target=events.publish, args=(reply,), daemon=True)
        publisher.start()
        publisher.join(PATIENCE)
        finished.append(not publisher.is_alive())

    manager = SagaManager(Echo, store=InMemorySagaStore(), commands=commands)
    manager.attach(events)
    events.publish(Ping("a"))
    assert [True] == finished
    assert [True] == answered(manager, "a")  # handled before publish(Ping) returned


def test_handle_says_whether_it_handled_the_event_or_queued_it() -> None:
    """handle() returns True when done, False when the busy worker will handle the event."""
    commands = CommandBus()
    queued: list[bool] = []

    @commands.handler
    def ask(command: Ask) -> None:
        publisher = threading.Thread(
            target=lambda: queued.append(manager.handle(Pong(command.key))), daemon=True
        )
        publisher.start()
        publisher.join(PATIENCE)
        assert [False] == answered(manager, command.key)  # not yet: the worker is sending Ask

    manager = SagaManager(Echo, store=InMemorySagaStore(), commands=commands)
    assert manager.handle(Ping("a")) is True
    assert [False] == queued
    assert [True] == answered(manager, "a")
    assert manager.handle(Pong("a")) is True


def test_a_queued_event_fails_in_the_worker_that_handles_it() -> None:
    """The failure of an event queued by another thread is raised by the busy worker."""
    events, commands = EventBus(), CommandBus()
    publisher_errors: list[BaseException] = []

    def publish(event: Pong) -> None:
        try:
            events.publish(event)
        except BaseException as exc:
            publisher_errors.append(exc)

    @commands.handler
    def ask(command: Ask) -> None:
        publisher = threading.Thread(
            target=publish, args=(Pong(command.key, fail=True),), daemon=True
        )
        publisher.start()
        publisher.join(PATIENCE)

    manager = SagaManager(Echo, store=InMemorySagaStore(), commands=commands)
    manager.attach(events)
    with pytest.raises(LookupError, match="no answer for fail-1"):
        events.publish(Ping("fail-1"))
    assert [] == publisher_errors


def test_other_threads_queue_their_events_while_one_works() -> None:
    """Events published from many threads while the manager works are each handled once."""
    commands = CommandBus()
    release = threading.Event()
    keys = [f"k{n}" for n in range(8)]

    @commands.handler
    def ask(command: Ask) -> None:
        if command.key == "first":
            release.wait(PATIENCE)

    manager = SagaManager(Echo, store=InMemorySagaStore(), commands=commands)
    worker = threading.Thread(target=manager.handle, args=(Ping("first"),), daemon=True)
    worker.start()
    publishers = [
        threading.Thread(target=manager.handle, args=(Ping(key),), daemon=True) for key in keys
    ]
    for publisher in publishers:
        publisher.start()
    for publisher in publishers:
        publisher.join(PATIENCE)
    release.set()
    worker.join(PATIENCE)
    assert not worker.is_alive()
    assert all(1 == len(manager.find(Echo, "key", key)) for key in keys)


def test_an_async_handler_may_await_a_task_that_publishes_the_reply() -> None:
    """On an async bus, a reply published by another task while the manager works is queued."""

    async def main() -> list[bool]:
        events, commands = AsyncEventBus(), AsyncCommandBus()
        requests: asyncio.Queue[tuple[Ask, asyncio.Future[None]]] = asyncio.Queue()

        async def service() -> None:  # a long-lived task with a context of its own
            while True:
                command, done = await requests.get()
                await events.publish(Pong(command.key))
                done.set_result(None)

        @commands.handler
        async def ask(command: Ask) -> None:
            done = asyncio.get_running_loop().create_future()
            await requests.put((command, done))
            await done

        manager = AsyncSagaManager(Echo, store=InMemorySagaStore(), commands=commands)
        manager.attach(events)
        server = asyncio.create_task(service())
        try:
            await asyncio.wait_for(events.publish(Ping("a")), PATIENCE)
        finally:
            server.cancel()
        return [echo.answered for echo in await manager.find(Echo, "key", "a")]

    assert [True] == asyncio.run(main())
