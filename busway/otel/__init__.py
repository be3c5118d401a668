"""OpenTelemetry tracing: spans for dispatches, appends and projection batches.

Install ``busway[otel]`` (``opentelemetry-api`` alone; the application picks an SDK and
exporter). :func:`tracing` is a middleware for every bus; :func:`traced` wraps an event
store so that each append is a span whose trace context is stored in the events' metadata
(``traceparent``); :func:`batches` is a runner's observer that makes a span of each batch,
linked to the appends its events came from, in whichever process or thread it runs. Spans
follow OpenTelemetry's semantic conventions for messaging, with ``messaging.system`` set
to ``"busway"``. ``import busway`` never imports this module, nor OpenTelemetry.
"""

from ._tracing import AsyncTracedEventStore, TracedEventStore, batches, traced, tracing

__all__ = ["AsyncTracedEventStore", "TracedEventStore", "batches", "traced", "tracing"]
