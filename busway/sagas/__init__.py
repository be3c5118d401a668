"""Sagas: turning events into commands, statelessly or with state kept between events.

Reactive sagas are functions declared with ``@registry.saga`` and run by an event bus that
was given a command bus (``EventBus(registry, commands=command_bus)``).

Stateful sagas (process managers) are :class:`Saga` subclasses whose methods are routed
by :func:`starts`, :func:`handles`, :func:`on_deadline` and :func:`compensates`. A
:class:`SagaManager` (or :class:`AsyncSagaManager`) runs them: it keeps them in a saga
store (:class:`InMemorySagaStore`, :class:`SQLiteSagaStore`), sends the commands they issue
at least once, and fires their deadlines by an injectable clock.
"""

from ..errors import SagaConcurrencyError, SagaDefinitionError, SagaError, SagaRecordError
from ._manager import (
    AsyncBackgroundRunner,
    AsyncSagaManager,
    Attachment,
    BackgroundRunner,
    SagaManager,
)
from ._memory import InMemorySagaStore
from ._saga import Saga, compensates, handles, on_deadline, starts
from ._sqlite import SQLiteSagaStore
from ._store import Deadline, SagaRecord, SagaStore, StoredMessage, Write

__all__ = [
    "AsyncBackgroundRunner",
    "AsyncSagaManager",
    "Attachment",
    "BackgroundRunner",
    "Deadline",
    "InMemorySagaStore",
    "SQLiteSagaStore",
    "Saga",
    "SagaConcurrencyError",
    "SagaDefinitionError",
    "SagaError",
    "SagaManager",
    "SagaRecord",
    "SagaRecordError",
    "SagaStore",
    "StoredMessage",
    "Write",
    "compensates",
    "handles",
    "on_deadline",
    "starts",
]
