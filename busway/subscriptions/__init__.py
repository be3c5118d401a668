"""Following the global log: checkpoints that many workers share, leases, parked events."""

from ._leases import InMemoryLeaseStore, Lease, LeaseStore, SQLiteLeaseStore
from ._records import Advance, ParkedEvent

__all__ = [
    "Advance",
    "InMemoryLeaseStore",
    "Lease",
    "LeaseStore",
    "ParkedEvent",
    "SQLiteLeaseStore",
]
