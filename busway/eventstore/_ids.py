"""Event ids: UUIDs of version 7 (RFC 9562), made in bulk."""

from __future__ import annotations

import os
import time
import uuid


def new_ids(count: int) -> list[bytes]:
    """Return *count* fresh event ids as 16 bytes each: UUIDs of version 7 (RFC 9562).

    They begin with the time in milliseconds, so new ids land at the end of the store's
    id index instead of all over it: appends touch a few pages, not one per event.
    """
    raw = bytearray(os.urandom(16 * count))
    head = (time.time_ns() // 1_000_000).to_bytes(6, "big")
    for i in range(0, 16 * count, 16):
        raw[i : i + 6] = head
    raw[6::16] = bytes(b & 0x0F | 0x70 for b in raw[6::16])  # version 7
    raw[8::16] = bytes(b & 0x3F | 0x80 for b in raw[8::16])  # RFC 9562 variant
    return [bytes(raw[i : i + 16]) for i in range(0, 16 * count, 16)]


def new_event_id() -> uuid.UUID:
    """Return a fresh event id: a time-ordered UUID of version 7."""
    return uuid.UUID(bytes=new_ids(1)[0])
