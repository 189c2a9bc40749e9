"""The trace context a published message carries: W3C ``traceparent`` when a span is current.

Only with ``opentelemetry-api`` installed (the ``otel`` extra); otherwise nothing.
"""

from typing import Any

try:
    from opentelemetry import propagate, trace
except ImportError:  # the otel extra is not installed
    trace = None  # type: ignore[assignment]


def inject_trace_context(headers: dict[str, Any]) -> None:
    """Add ``traceparent`` (and ``tracestate``) of the current span, if there is one."""
    if trace is None or "traceparent" in headers:
        return
    if not trace.get_current_span().get_span_context().is_valid:
        return
    propagate.inject(headers)
