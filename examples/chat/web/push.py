"""A room's events pushed over a plain WebSocket, as JSON, resuming after a position.

``/rooms/{room_id}/events?after=N`` sends every event of the room recorded after store
position ``N`` (without ``after``: from now on), one JSON text frame each, as
:func:`busway.web.event_json` shapes it. A client that reconnects with the last
``position`` it received misses nothing and sees nothing twice. The stream ends when the
client goes away. A request the chat refuses (an unknown room, a bad ``after``) is closed
with code 4000 plus the HTTP status of its error (4404, 4422) and its message as reason.
"""

from __future__ import annotations

from starlette.websockets import WebSocket, WebSocketDisconnect

from busway import BuswayError, InvalidArgumentError
from busway.web import event_json, report_error
from examples.chat.messages import GetRoom
from examples.chat.web.context import context_of, in_room

__all__ = ["room_events"]

_MAX_REASON = 123  # bytes a close frame's reason may hold


def position(after: str | None) -> int | None:
    """Read the ``after`` parameter: a store position, 0 or more, or none."""
    if after is None:
        return None
    if not after.isdigit():
        raise InvalidArgumentError("after", after, "a store position, a whole number from 0")
    return int(after)


async def disconnected(websocket: WebSocket) -> None:
    """Return when the client goes away; what it sends meanwhile is ignored."""
    while (await websocket.receive())["type"] != "websocket.disconnect":
        pass


async def room_events(websocket: WebSocket) -> None:
    """Push the room's events to the client until it disconnects."""
    context = context_of(websocket)
    room_id = websocket.path_params["room_id"]
    await websocket.accept()
    try:
        after = position(websocket.query_params.get("after"))
        await context.chat.queries.execute(GetRoom(room_id))
    except BuswayError as exc:
        report = report_error(exc)
        reason = report.message.encode()[:_MAX_REASON].decode(errors="ignore")
        await websocket.close(code=4000 + report.status, reason=reason)
        return
    types = context.chat.store.types
    try:
        async with context.live.follow(
            after=after, where=in_room(room_id), until=disconnected(websocket)
        ) as following:
            async for recorded in following:
                await websocket.send_json(event_json(recorded, types))
    except WebSocketDisconnect:
        pass  # gone between two events: nobody is left to tell
