"""Where every stored subscription is, read from its stores alone, without running it."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Final

from ._engine import _MEMBERS, PartitionStatus
from ._leases import LeaseStore
from ._records import ParkedEvent

if TYPE_CHECKING:
    from ..projections import CheckpointStore
    from ..sagas import SagaStore

__all__ = ["subscription_status"]

# A partition's checkpoint is named "name[p/n]" (see key_of); the workers' own leases
# live under "name[workers]/owner", beside the partitions'.
_PARTITION: Final = re.compile(r"(?P<name>.+)\[(?P<index>\d+)/(?P<count>\d+)\]")


def subscription_status(
    checkpoints: CheckpointStore | SagaStore, *, head: int, leases: LeaseStore | None = None
) -> list[PartitionStatus]:
    """Return where each checkpoint in *checkpoints* is, by subscription and partition.

    *checkpoints* is a projection's checkpoint store or a saga store, which keeps the
    checkpoints of the saga managers' subscriptions. *head* is the event store's head
    position (``store.head_position()``), which lags are counted from; *leases*, if given,
    says who last held each partition. For a health check or a command line that knows no
    subscription's code, only its stores.
    """
    from ..projections import CheckpointStore

    positions: Mapping[str, int]
    parked: Callable[[str], list[ParkedEvent]]
    if isinstance(checkpoints, CheckpointStore):
        positions = {key: checkpoints.load(key) for key in checkpoints.names()}
        parked = checkpoints.parked
    else:
        positions, parked = checkpoints.checkpoints(), checkpoints.parked
    holders = {} if leases is None else {lease.name: lease for lease in leases.leases()}
    found = []
    for key, position in positions.items():
        if _MEMBERS in key:
            continue
        match = _PARTITION.fullmatch(key)
        name, index, count = key, 0, 1
        if match is not None:
            name, index, count = match["name"], int(match["index"]), int(match["count"])
        found.append(
            PartitionStatus(
                subscription=name,
                key=key,
                partition=index,
                partitions=count,
                position=position,
                head=max(head, position),
                holder=holders.get(key),
                parked=tuple(parked(key)),
            )
        )
    return sorted(found, key=lambda s: (s.subscription, s.partition))
