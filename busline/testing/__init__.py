"""Test tools for busline users: contract suites that prove a backend keeps its promises.

This package imports pytest and hypothesis; ``import busline`` never imports it.
"""

from ._eventstore_async import AsyncEventStoreContract
from ._eventstore_contract import EventStoreContract

__all__ = ["AsyncEventStoreContract", "EventStoreContract"]
