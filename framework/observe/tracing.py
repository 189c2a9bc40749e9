"""A span per ``handle`` call, linked to the producers of its messages (OpenTelemetry).

Active when ``opentelemetry-api`` is installed (the ``otel`` extra); spans go
wherever the application's tracer provider sends them, and nowhere without
one. Each call gets a CONSUMER span named ``process {queue}`` (``process
{consumer}`` when its messages came from several queues), current while
``handle`` runs, so the handler's own spans are its children. A message
published with a ``traceparent`` header contributes a link to its producer's
span; at most :data:`MAX_LINKS` per span, the first messages of the call.
"""

from typing import Any

from framework.core.message import Message
from framework.core.watch import HandleCall, HandleEnd, Watcher

try:
    from opentelemetry import context, propagate, trace
    from opentelemetry.trace import Link, SpanKind, Status, StatusCode
except ImportError:  # the otel extra is not installed
    trace = None  # type: ignore[assignment]

MAX_LINKS = 128


def tracing_available() -> bool:
    return trace is not None


class BulkTracing(Watcher):
    """Opens a span as each ``handle`` call starts and ends it with the call."""

    def __init__(self, tracer: Any = None) -> None:
        self._tracer = tracer or trace.get_tracer("bulkworker")
        self._open: dict[int, tuple[Any, Any]] = {}

    def call_started(self, call: HandleCall) -> None:
        queues = sorted({message.queue for message in call.messages})
        target = queues[0] if len(queues) == 1 else call.bulk.consumer
        span = self._tracer.start_span(
            f"process {target}",
            kind=SpanKind.CONSUMER,
            links=producer_links(call.messages),
            attributes={
                "messaging.system": "rabbitmq",
                "messaging.operation.type": "process",
                "messaging.operation.name": "process",
                "messaging.batch.message_count": len(call.messages),
                "messaging.destination.name": ",".join(queues),
                "messaging.consumer.group.name": call.bulk.consumer,
                "bulkworker.flush_reason": str(call.bulk.reason),
            },
        )
        token = context.attach(trace.set_span_in_context(span))
        self._open[id(call)] = (span, token)

    def call_ended(self, end: HandleEnd) -> None:
        opened = self._open.pop(id(end.call), None)
        if opened is None:
            return
        span, token = opened
        span.set_attribute("bulkworker.outcome", str(end.outcome))
        if end.error is not None:
            span.record_exception(end.error)
            span.set_status(Status(StatusCode.ERROR, type(end.error).__name__))
        context.detach(token)
        span.end()


def producer_links(messages: Any) -> list[Any]:
    """Links to the spans that published ``messages``, from their ``traceparent`` headers."""
    links = []
    for message in messages[:MAX_LINKS]:
        producer = producer_context(message)
        if producer is not None:
            links.append(Link(producer))
    return links


def producer_context(message: Message[Any]) -> Any:
    if "traceparent" not in message.headers:
        return None
    carrier = {
        k: v.decode() if isinstance(v, bytes) else str(v)
        for k, v in message.headers.items()
        if k in ("traceparent", "tracestate")
    }
    span = trace.get_current_span(propagate.extract(carrier))
    found = span.get_span_context()
    return found if found.is_valid else None
