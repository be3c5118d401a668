"""A worker process of tests/subscriptions/test_leases.py: takes turns on one lease in a file.

Each worker asks for the lease in a loop; once it holds it, it renews it a few times, then
either releases it or stalls past its expiry and tries to renew it late. It records every
lease the store handed it, with the moment the store judged it by, so that the test can
check that no two takings ever overlapped.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier

from busway.subscriptions import Lease, SQLiteLeaseStore

NAME = "orders"
TTL = 0.05  # seconds

Taking = tuple[int, str, datetime, datetime]
"""A lease the store handed out or freed: (token, owner, the store's now, held until)."""


class RecordingClock:
    """The system clock, remembering the last time it told (the store's now of each call)."""

    def __init__(self) -> None:
        self.last = datetime.now(UTC)

    def now(self) -> datetime:
        self.last = datetime.now(UTC)
        return self.last


def take_turns(path: str, owner: str, start: Barrier, seconds: float, out: Queue[object]) -> None:
    """Compete for the lease on *path* for *seconds*; put what it held on *out*."""
    clock = RecordingClock()
    rng = random.Random(owner)
    held: list[Taking] = []

    def record(lease: Lease | None) -> Lease | None:
        if lease is not None:
            held.append((lease.token, lease.owner, clock.last, lease.expires_at))
        return lease

    with SQLiteLeaseStore(path, clock=clock) as store:
        start.wait(60)
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            lease = record(store.acquire(NAME, owner, ttl=TTL))
            if lease is None:
                time.sleep(rng.uniform(0.001, 0.005))
                continue
            for _ in range(rng.randint(0, 3)):
                time.sleep(TTL / 4)
                if record(store.acquire(NAME, owner, ttl=TTL)) is None:
                    break  # this process was too slow: another took the lease over
            if rng.random() < 0.5:
                if store.release(lease):
                    held.append((lease.token, owner, clock.last, clock.last))
            else:
                time.sleep(TTL * 1.5)  # a stall: others may take the lease meanwhile
                record(store.renew(lease, ttl=TTL))
            time.sleep(rng.uniform(0.001, 0.01))
    out.put(held)
