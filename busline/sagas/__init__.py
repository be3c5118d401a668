"""Sagas: turning events into commands.

Reactive sagas are functions declared with ``@registry.saga`` and run by an event bus that
was given a command bus (``EventBus(registry, commands=command_bus)``).
"""

__all__: list[str] = []
