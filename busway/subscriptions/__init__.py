"""Following the global log: checkpoints that many workers share, leases, parked events."""

from ._engine import PartitionStatus
from ._leases import InMemoryLeaseStore, Lease, LeaseStore, SQLiteLeaseStore
from ._observe import BatchObserver
from ._policy import OnError, Park, Retry, Stop
from ._records import Advance, ParkedEvent
from ._status import subscription_status

__all__ = [
    "Advance",
    "BatchObserver",
    "InMemoryLeaseStore",
    "Lease",
    "LeaseStore",
    "OnError",
    "Park",
    "ParkedEvent",
    "PartitionStatus",
    "Retry",
    "SQLiteLeaseStore",
    "Stop",
    "subscription_status",
]
