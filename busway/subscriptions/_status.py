"""Where every stored subscription is, read from its stores alone, without running it."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Final

from ._engine import _MEMBERS, PartitionStatus
from ._leases import LeaseStore

if TYPE_CHECKING:
    from ..projections import CheckpointStore

__all__ = ["subscription_status"]

# A partition's checkpoint is named "name[p/n]" (see key_of); the workers' own leases
# live under "name[workers]/owner", beside the partitions'.
_PARTITION: Final = re.compile(r"(?P<name>.+)\[(?P<index>\d+)/(?P<count>\d+)\]")


def subscription_status(
    checkpoints: CheckpointStore, *, head: int, leases: LeaseStore | None = None
) -> list[PartitionStatus]:
    """Return where each checkpoint in *checkpoints* is, by subscription and partition.

    *head* is the event store's head position (``store.head_position()``), which lags are
    counted from; *leases*, if given, says who last held each partition. For a health
    check or a command line that knows no subscription's code, only its stores.
    """
    holders = {} if leases is None else {lease.name: lease for lease in leases.leases()}
    found = []
    for key in checkpoints.names():
        if _MEMBERS in key:
            continue
        match = _PARTITION.fullmatch(key)
        name, index, count = key, 0, 1
        if match is not None:
            name, index, count = match["name"], int(match["index"]), int(match["count"])
        position = checkpoints.load(key)
        found.append(
            PartitionStatus(
                subscription=name,
                key=key,
                partition=index,
                partitions=count,
                position=position,
                head=max(head, position),
                holder=holders.get(key),
                parked=tuple(checkpoints.parked(key)),
            )
        )
    return sorted(found, key=lambda s: (s.subscription, s.partition))
