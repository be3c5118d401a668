"""Test tools for busway users: scenarios, recording buses, strategies, contract suites.

Importing this package costs nearly nothing and needs neither hypothesis nor pytest: each
name is imported on first use, and only :class:`AggregateMachine` and the contract suites
need hypothesis and pytest. pytest loads the plugin (:mod:`busway.testing.plugin`) itself;
the hypothesis strategies live in :mod:`busway.testing.strategies`.
"""

# Only the names in __all__ are public here (tests check dir() against it), hence the
# underscored imports and no ``from __future__ import annotations``.
import importlib as _importlib
import typing as _typing

if _typing.TYPE_CHECKING:
    from ._checkpoint_contract import CheckpointStoreContract
    from ._diff import Like, ScenarioError
    from ._eventstore_async import AsyncEventStoreContract
    from ._eventstore_contract import EventStoreContract
    from ._lease_contract import LeaseStoreContract
    from ._machine import AggregateMachine
    from ._recording import BusRecorder, Recorder
    from ._saga_store_contract import SagaStoreContract
    from ._scenarios import AggregateScenario, CommandScenario, SagaScenario, Scheduled
    from ._snapshot_contract import SnapshotStoreContract

__all__ = [
    "AggregateMachine",
    "AggregateScenario",
    "AsyncEventStoreContract",
    "BusRecorder",
    "CheckpointStoreContract",
    "CommandScenario",
    "EventStoreContract",
    "LeaseStoreContract",
    "Like",
    "Recorder",
    "SagaScenario",
    "SagaStoreContract",
    "ScenarioError",
    "Scheduled",
    "SnapshotStoreContract",
]

# Every name is imported on first use: pytest imports this package in every run (the
# plugin lives in it), and the scenarios pull in sagas and aggregates, the rest hypothesis.
_LAZY = {
    "AggregateMachine": "._machine",
    "AggregateScenario": "._scenarios",
    "AsyncEventStoreContract": "._eventstore_async",
    "BusRecorder": "._recording",
    "CheckpointStoreContract": "._checkpoint_contract",
    "CommandScenario": "._scenarios",
    "EventStoreContract": "._eventstore_contract",
    "LeaseStoreContract": "._lease_contract",
    "Like": "._diff",
    "Recorder": "._recording",
    "SagaScenario": "._scenarios",
    "SagaStoreContract": "._saga_store_contract",
    "ScenarioError": "._diff",
    "Scheduled": "._scenarios",
    "SnapshotStoreContract": "._snapshot_contract",
}


if not _typing.TYPE_CHECKING:  # hidden from type checkers, so a misspelt name is an error

    def __getattr__(name: str) -> object:
        module = _LAZY.get(name)
        if module is None:
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = getattr(_importlib.import_module(module, __name__), name)
        globals()[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*globals(), *__all__})
