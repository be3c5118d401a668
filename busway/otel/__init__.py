"""OpenTelemetry tracing: spans for dispatches, appends, and projection and saga batches.

Install ``busway[otel]`` (``opentelemetry-api`` alone; the application picks an SDK and
exporter). :func:`tracing` is a middleware for every bus; :func:`traced` wraps an event
store so that each append is a span whose trace context is stored in the events' metadata
(``traceparent``); :func:`batches` is an observer of projection runners and saga managers
that makes a span of each batch, linked to the appends its events came from, in whichever
process or thread it runs. Spans follow OpenTelemetry's semantic conventions for
messaging, with ``messaging.system`` set to ``"busway"``. ``import busway`` never imports
this module, nor OpenTelemetry.
"""


def _require_the_api() -> None:
    """Say which extra to install when OpenTelemetry's API is missing."""
    try:
        import opentelemetry.trace  # noqa: F401 - imported only to see that it is there
    except ImportError as error:  # pragma: no cover - run by a test in a process without it
        raise ImportError(
            "busway.otel needs OpenTelemetry's API: install it with pip install 'busway[otel]'",
            name=error.name,
        ) from error


_require_the_api()

from ._tracing import (  # noqa: E402 - after the check, which names the extra to install
    AsyncTracedEventStore,
    TracedEventStore,
    batches,
    traced,
    tracing,
)

__all__ = ["AsyncTracedEventStore", "TracedEventStore", "batches", "traced", "tracing"]
