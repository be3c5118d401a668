"""busway.web.follow: a client's live stream, resumed, filtered, and ended by the client leaving."""

from __future__ import annotations

import asyncio
import gc
import json
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import attrs
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from busway import InvalidArgumentError, UnknownEventTypeError
from busway.eventstore import (
    AsyncSQLiteEventStore,
    EventTypes,
    RawEvent,
    RecordedEvent,
    SQLiteEventStore,
)
from busway.web import event_json, follow
from busway.web._follow import AHEAD

T = TypeVar("T")
AT_ONCE = 2.0  # seconds: far above any scheduling delay, far below a hung test


@attrs.frozen
class Posted:
    room_id: str
    text: str


@attrs.frozen
class Priced:
    room_id: str
    amount: Decimal
    at: datetime


TYPES = EventTypes(Posted, Priced)


def run(main: Callable[[AsyncSQLiteEventStore], Coroutine[Any, Any, T]], path: Path) -> T:
    """Run *main* with an async store on the SQLite file at *path*, in a loop of its own."""

    async def go() -> T:
        async with AsyncSQLiteEventStore(path, types=TYPES) as store:
            return await asyncio.wait_for(main(store), 20)

    return asyncio.run(go())


async def post(store: AsyncSQLiteEventStore, room: str, *texts: str) -> None:
    """Append one event per text to the room's stream."""
    await store.append(f"room-{room}", [Posted(room, text) for text in texts])


async def take(stream: AsyncIterator[RecordedEvent], n: int) -> list[str]:
    """The texts of the next *n* events of *stream*."""
    texts = []
    for _ in range(n):
        recorded = await asyncio.wait_for(anext(stream), AT_ONCE)
        assert isinstance(recorded.event, Posted)
        texts.append(recorded.event.text)
    return texts


def test_a_client_gets_everything_after_its_position_then_each_new_event(tmp_path: Path) -> None:
    """From position 0 a client reads the room's past, then what is posted while it listens."""

    async def main(store: AsyncSQLiteEventStore) -> None:
        await post(store, "lobby", "hello", "hi")
        async with follow(store, after=0) as stream:
            assert stream.position == 0
            assert await take(stream, 2) == ["hello", "hi"]
            assert stream.position == 2
            await post(store, "lobby", "anyone?")
            assert await take(stream, 1) == ["anyone?"]
            assert stream.position == 3

    run(main, tmp_path / "chat.sqlite3")


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 12), st.data())
def test_a_client_that_resumes_from_its_position_sees_each_event_once(
    tmp_path_factory: pytest.TempPathFactory, count: int, data: st.DataObject
) -> None:
    """Leave after any event, come back with that position: nothing missed, nothing twice."""
    seen_first = data.draw(st.integers(0, count), label="events seen before leaving")
    texts = [f"m{n}" for n in range(count)]

    async def main(store: AsyncSQLiteEventStore) -> list[str]:
        await post(store, "lobby", *texts[: count // 2])
        async with follow(store, after=0) as first:
            got = await take(first, min(seen_first, count // 2))
            if seen_first > count // 2:
                await post(store, "lobby", *texts[count // 2 :])
                got += await take(first, seen_first - count // 2)
            left_at = first.position
        await post(store, "lobby", *texts[len(await store_texts(store)) :])
        async with follow(store, after=left_at) as again:
            got += await take(again, count - seen_first)
        return got

    path = tmp_path_factory.mktemp("resume") / "chat.sqlite3"
    assert run(main, path) == texts


async def store_texts(store: AsyncSQLiteEventStore) -> list[str]:
    """Every text the store holds, in order."""
    return [r.event.text async for r in store.read_all() if isinstance(r.event, Posted)]


def test_where_keeps_one_rooms_events_and_the_position_is_the_last_one_sent(
    tmp_path: Path,
) -> None:
    """A room's client sees only its room; the position it resumes from is the last it got."""

    async def main(store: AsyncSQLiteEventStore) -> None:
        await post(store, "lobby", "a")
        await post(store, "kitchen", "b")
        await post(store, "lobby", "c")
        await post(store, "kitchen", "d")
        in_lobby = follow(store, after=0, where=lambda r: r.stream_id == "room-lobby")
        async with in_lobby:
            assert await take(in_lobby, 2) == ["a", "c"]
            assert in_lobby.position == 3

    run(main, tmp_path / "chat.sqlite3")


def test_types_keeps_events_of_those_classes(tmp_path: Path) -> None:
    """A client asking for some types gets only events of them."""

    async def main(store: AsyncSQLiteEventStore) -> None:
        await store.append("room-lobby", [Priced("lobby", Decimal(1), datetime(2026, 1, 1))])
        await post(store, "lobby", "a")
        async with follow(store, after=0, types=(t for t in [Posted])) as stream:
            assert await take(stream, 1) == ["a"]

    run(main, tmp_path / "chat.sqlite3")


def test_without_a_position_a_client_gets_only_what_is_committed_from_then_on(
    tmp_path: Path,
) -> None:
    """``after=None``: the past is skipped, and the position is the head when it first reads."""

    async def main(store: AsyncSQLiteEventStore) -> None:
        await post(store, "lobby", "old", "older")
        stream = follow(store)
        positions = [stream.position]
        reading = asyncio.ensure_future(take(stream, 1))
        await asyncio.sleep(0.05)
        positions.append(stream.position)
        assert positions == [None, 2]
        await post(store, "lobby", "new")
        assert await reading == ["new"]
        assert stream.position == 3
        await stream.aclose()

    run(main, tmp_path / "chat.sqlite3")


def test_the_stream_ends_as_soon_as_the_client_leaves_a_quiet_room(tmp_path: Path) -> None:
    """A disconnect ends the iteration at once, while nothing new was being waited for."""

    async def main(store: AsyncSQLiteEventStore) -> None:
        gone = asyncio.get_running_loop().create_future()
        got = []

        async def client() -> None:
            async for recorded in follow(store, after=0, until=gone):
                got.append(recorded.position)

        task = asyncio.ensure_future(client())
        await post(store, "lobby", "a")
        await asyncio.sleep(0.05)
        gone.set_result(None)
        await asyncio.wait_for(task, AT_ONCE)
        assert got == [1]

    run(main, tmp_path / "chat.sqlite3")


def test_a_disconnect_that_raises_also_ends_the_stream(tmp_path: Path) -> None:
    """A framework whose receive() raises once the socket is gone still ends the stream cleanly."""

    async def main(store: AsyncSQLiteEventStore) -> list[int]:
        async def receive() -> None:
            await asyncio.sleep(0.05)
            raise RuntimeError("the socket is closed")

        await post(store, "lobby", "a")
        return [r.position async for r in follow(store, after=0, until=receive())]

    assert run(main, tmp_path / "chat.sqlite3") == [1]


def test_a_client_already_gone_gets_nothing(tmp_path: Path) -> None:
    """When the disconnect came first, the stream ends before reading anything."""

    async def main(store: AsyncSQLiteEventStore) -> list[int]:
        await post(store, "lobby", "a")
        gone = asyncio.get_running_loop().create_future()
        gone.set_result(None)
        stream = follow(store, after=0, until=gone)
        got = [r.position async for r in stream]
        assert [r async for r in stream] == []  # and stays ended
        return got

    assert run(main, tmp_path / "chat.sqlite3") == []


def test_closing_the_stream_cancels_the_disconnect_watch_it_was_given(tmp_path: Path) -> None:
    """A coroutine given as *until* runs with the stream and is cancelled when it closes."""

    async def main(store: AsyncSQLiteEventStore) -> None:
        cancelled = asyncio.Event()

        async def receive() -> None:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        await post(store, "lobby", "a")
        stream = follow(store, after=0, until=receive())
        assert await take(stream, 1) == ["a"]
        await stream.aclose()
        await asyncio.wait_for(cancelled.wait(), AT_ONCE)
        await stream.aclose()  # twice is harmless

    run(main, tmp_path / "chat.sqlite3")


def test_a_future_given_as_until_is_left_alone_when_the_stream_closes(tmp_path: Path) -> None:
    """A future the caller owns is not cancelled by the stream: the caller may await it too."""

    async def main(store: AsyncSQLiteEventStore) -> None:
        gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        await post(store, "lobby", "a")
        async with follow(store, after=0, until=gone) as stream:
            assert await take(stream, 1) == ["a"]
        assert not gone.cancelled()

    run(main, tmp_path / "chat.sqlite3")


def test_cancelling_the_reader_cancels_the_wait_and_leaves_the_stream_usable(
    tmp_path: Path,
) -> None:
    """A server cancelling the task that reads (a subscription torn down) gets CancelledError."""

    async def main(store: AsyncSQLiteEventStore) -> None:
        gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        async with follow(store, after=0, until=gone) as stream:
            reading = asyncio.ensure_future(take(stream, 1))
            await asyncio.sleep(0.05)
            reading.cancel()
            with pytest.raises(asyncio.CancelledError):
                await reading
            await post(store, "lobby", "later")
            assert await take(stream, 1) == ["later"]

    run(main, tmp_path / "chat.sqlite3")


def test_appends_from_another_process_reach_a_waiting_client(tmp_path: Path) -> None:
    """An event committed by another writer of the file is found within the poll interval."""
    path = tmp_path / "chat.sqlite3"

    async def main(store: AsyncSQLiteEventStore) -> list[str]:
        stream = follow(store, after=0, poll_interval=0.05)
        reading = asyncio.ensure_future(take(stream, 1))
        await asyncio.sleep(0.05)
        with SQLiteEventStore(path, types=TYPES) as other:
            other.append("room-lobby", [Posted("lobby", "from elsewhere")])
        try:
            return await reading
        finally:
            await stream.aclose()

    assert run(main, path) == ["from elsewhere"]


def test_what_the_store_raises_reaches_the_client(tmp_path: Path) -> None:
    """A store closed under a stream raises its error out of the iteration, not a hang."""

    async def main(store: AsyncSQLiteEventStore) -> None:
        gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        stream = follow(store, after=0, until=gone)
        await store.aclose()
        with pytest.raises(Exception, match="closed"):
            await take(stream, 1)

    run(main, tmp_path / "chat.sqlite3")


@pytest.mark.parametrize(
    ("arguments", "says"),
    [
        ({"after": -1}, "after must be None or a position"),
        ({"after": True}, "after must be None or a position"),
        ({"after": "3"}, "after must be None or a position"),
        ({"where": "room-lobby"}, "where must be None or a callable"),
        ({"until": 5.0}, "until must be None or an awaitable"),
        ({"poll_interval": -1}, "poll_interval"),
    ],
)
def test_bad_arguments_are_refused_before_anything_is_read(
    tmp_path: Path, arguments: dict[str, Any], says: str
) -> None:
    """A wrong position, filter, disconnect or interval is named when follow() is called."""

    async def main(store: AsyncSQLiteEventStore) -> None:
        with pytest.raises(InvalidArgumentError, match=says):
            follow(store, **arguments)

    run(main, tmp_path / "chat.sqlite3")


def test_an_unregistered_class_in_types_is_refused_at_once(tmp_path: Path) -> None:
    """Asking for a class the store does not know fails when follow() is called."""

    class Unknown:
        pass

    async def main(store: AsyncSQLiteEventStore) -> None:
        with pytest.raises(UnknownEventTypeError):
            follow(store, types=[Unknown])

    run(main, tmp_path / "chat.sqlite3")


def test_event_json_is_what_the_store_holds_as_json(tmp_path: Path) -> None:
    """An event goes to a client as JSON: place, stored type, data as stored, metadata, time."""

    async def main(store: AsyncSQLiteEventStore) -> dict[str, Any]:
        event = Priced("lobby", Decimal("9.50"), datetime(2026, 12, 1, 12, 30))
        await store.append("room-lobby", [event], metadata={"correlation_id": "c1"})
        recorded = await anext(aiter(store.read_all()))
        return event_json(recorded, store.types)

    got = run(main, tmp_path / "chat.sqlite3")
    assert json.loads(json.dumps(got)) == got
    uuid.UUID(got.pop("event_id"))
    assert datetime.fromisoformat(got.pop("recorded_at")).tzinfo is not None
    assert got == {
        "position": 1,
        "stream_id": "room-lobby",
        "version": 1,
        "type": "Priced",
        "data": {"room_id": "lobby", "amount": "9.50", "at": "2026-12-01T12:30:00"},
        "metadata": {"correlation_id": "c1"},
    }


def test_event_json_of_an_event_read_raw_is_its_stored_data(tmp_path: Path) -> None:
    """A store read without the application's classes sends each event's stored JSON."""
    path = tmp_path / "chat.sqlite3"
    with SQLiteEventStore(path, types=TYPES) as store:
        store.append("room-lobby", [Posted("lobby", "hi")])
    raw_types = EventTypes(raw_unknown=True)
    with SQLiteEventStore(path, types=raw_types) as store:
        recorded = next(iter(store.read_all()))
    assert isinstance(recorded.event, RawEvent)
    assert event_json(recorded, raw_types)["data"] == {"room_id": "lobby", "text": "hi"}


def test_a_stream_says_where_it_is(tmp_path: Path) -> None:
    """Its repr names the store and the position a client would resume from, for logs."""

    async def main(store: AsyncSQLiteEventStore) -> str:
        async with follow(store, after=7) as stream:
            return repr(stream)

    assert run(main, tmp_path / "chat.sqlite3").endswith("after position 7>")


def test_a_client_leaving_as_an_event_arrives_ends_the_stream(tmp_path: Path) -> None:
    """A disconnect and an event in the same instant: the stream ends, with no error left over."""

    async def main(store: AsyncSQLiteEventStore) -> list[str]:
        await post(store, "lobby", "a", "b")
        gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        stream = follow(store, after=0, until=gone)
        got = await take(stream, 1)  # "b" is read too, and held
        asyncio.get_running_loop().call_soon(gone.set_result, None)
        return got + [r.event.text async for r in stream if isinstance(r.event, Posted)]

    assert run(main, tmp_path / "chat.sqlite3") == ["a"]


def test_a_disconnect_future_cancelled_by_its_owner_ends_the_stream(tmp_path: Path) -> None:
    """The server cancelling the disconnect it gave ends the client's stream too."""

    async def main(store: AsyncSQLiteEventStore) -> list[int]:
        gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        asyncio.get_running_loop().call_later(0.05, gone.cancel)
        return [r.position async for r in follow(store, after=0, until=gone)]

    assert run(main, tmp_path / "chat.sqlite3") == []


def test_a_stream_closed_before_it_was_read_is_ended(tmp_path: Path) -> None:
    """Closing a stream that never read ends it; reading it then gives nothing."""

    async def main(store: AsyncSQLiteEventStore) -> list[int]:
        await post(store, "lobby", "a")
        stream = follow(store)
        await stream.aclose()
        return [r.position async for r in stream]

    assert run(main, tmp_path / "chat.sqlite3") == []


@settings(max_examples=10, deadline=None)
@given(st.integers(0, 2 * AHEAD + 10), st.integers(1, 3))
@example(2 * AHEAD + 10, 1)  # more than is read ahead, twice over
def test_a_backlog_longer_than_what_is_read_ahead_arrives_whole_and_in_order(
    tmp_path_factory: pytest.TempPathFactory, count: int, every: int
) -> None:
    """A client watched for leaving gets every kept event of a long past, each once, in order."""
    texts = [f"m{n}" for n in range(count)]

    async def main(store: AsyncSQLiteEventStore) -> tuple[list[str], int | None]:
        await post(store, "lobby", *texts)
        gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        kept = follow(store, after=0, until=gone, where=lambda r: r.position % every == 0)
        async with kept:
            got = await take(kept, count // every)
            return got, kept.position

    path = tmp_path_factory.mktemp("backlog") / "chat.sqlite3"
    got, position = run(main, path)
    assert got == texts[every - 1 :: every]
    assert position == (count // every * every or 0)


def test_a_store_failing_while_events_are_held_sends_them_then_its_error(tmp_path: Path) -> None:
    """Events read before the store failed still reach the client; then the error does."""

    async def main(store: AsyncSQLiteEventStore) -> None:
        await post(store, "lobby", "a", "b", "c")
        gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        stream = follow(store, after=0, until=gone, poll_interval=0.05)
        assert await take(stream, 1) == ["a"]
        await store.aclose()
        await asyncio.sleep(0.2)  # the stream has looked at the closed store meanwhile
        assert await take(stream, 2) == ["b", "c"]
        with pytest.raises(Exception, match="closed"):
            await take(stream, 1)
        assert stream.position == 3

    run(main, tmp_path / "chat.sqlite3")


def test_a_client_leaving_after_the_store_failed_leaves_no_error_behind(tmp_path: Path) -> None:
    """Closing a stream whose store failed before its error was read reports nothing later."""

    async def main(store: AsyncSQLiteEventStore) -> list[object]:
        unhandled: list[object] = []
        asyncio.get_running_loop().set_exception_handler(
            lambda _, context: unhandled.append(context)
        )
        await post(store, "lobby", "a", "b")
        gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        stream = follow(store, after=0, until=gone, poll_interval=0.05)
        assert await take(stream, 1) == ["a"]
        await store.aclose()
        await asyncio.sleep(0.2)  # the stream has looked at the closed store meanwhile
        await stream.aclose()
        del stream
        gc.collect()
        return unhandled

    assert run(main, tmp_path / "chat.sqlite3") == []


def test_closing_the_stream_ends_a_client_waiting_on_a_quiet_store(tmp_path: Path) -> None:
    """A stream closed by another task ends the client's wait at once and leaves no task running."""

    async def main(store: AsyncSQLiteEventStore) -> None:
        before = asyncio.all_tasks()
        gone: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        stream = follow(store, after=0, until=gone)
        waiting = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.05)
        await stream.aclose()
        with pytest.raises(StopAsyncIteration):
            await asyncio.wait_for(waiting, AT_ONCE)
        assert asyncio.all_tasks() == before
        assert not gone.done()

    run(main, tmp_path / "chat.sqlite3")
