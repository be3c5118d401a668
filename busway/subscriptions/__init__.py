"""Following the global log: checkpoints that many workers share, leases, parked events."""

from ._records import Advance, ParkedEvent

__all__ = ["Advance", "ParkedEvent"]
