"""subscription_status: where every stored subscription is, from its stores alone."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from busway.projections import InMemoryCheckpointStore
from busway.subscriptions import InMemoryLeaseStore, ParkedEvent, subscription_status


def test_status_by_subscription_and_partition() -> None:
    """Each checkpoint gives its subscription, partition, lag, last holder and parked events."""
    checkpoints = InMemoryCheckpointStore()
    checkpoints.save("b", 9)
    checkpoints.save("a[workers]/worker-1", 0)  # a worker's own mark, not a partition
    checkpoints.save("a[1/2]", 4)
    checkpoints.save("a[0/2]", 6)
    with checkpoints.transaction("a[1/2]") as tx:
        tx.park(
            ParkedEvent(
                "a[1/2]", 3, "s-1", 1, uuid.UUID(int=3), "A", "ValueError: no", 3, datetime.now(UTC)
            )
        )
    leases = InMemoryLeaseStore()
    held = leases.acquire("a[0/2]", "worker-1", ttl=60)
    leases.acquire("a[workers]/worker-1", "worker-1", ttl=60)
    found = subscription_status(checkpoints, head=8, leases=leases)
    assert [("a", 0, 2, 6, 2), ("a", 1, 2, 4, 4), ("b", 0, 1, 9, 0)] == [
        (s.subscription, s.partition, s.partitions, s.position, s.lag) for s in found
    ]
    assert [held, None, None] == [s.holder for s in found]
    assert [0, 1, 0] == [len(s.parked) for s in found]
    assert [8, 8, 9] == [s.head for s in found]  # never behind a checkpoint


def test_status_without_leases_has_no_holders() -> None:
    """Without a lease store every holder is None; no checkpoints, no status."""
    checkpoints = InMemoryCheckpointStore()
    assert [] == subscription_status(checkpoints, head=0)
    checkpoints.save("p", 1)
    [status] = subscription_status(checkpoints, head=1)
    assert (None, 0) == (status.holder, status.lag)
