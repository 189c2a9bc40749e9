"""A CONSUMER span per handle call, linked to each message's producer, on the real broker."""

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from framework import Actions, BulkConsumer, Message, Orchestrator
from framework.amqp.connection import connect
from framework.amqp.publisher import Publisher
from framework.observe.tracing import MAX_LINKS, producer_links
from framework.testing import RecordingLog, make_message
from tests.broker import AMQP_URL, Broker, wait_until
from tests.conftest import recorded

EXPORTER = InMemorySpanExporter()
PROVIDER = TracerProvider()
PROVIDER.add_span_processor(SimpleSpanProcessor(EXPORTER))
trace.set_tracer_provider(PROVIDER)


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    EXPORTER.clear()
    yield EXPORTER
    EXPORTER.clear()


async def test_a_bulk_is_one_consumer_span_linked_to_its_producers(
    broker: Broker, spans: InMemorySpanExporter
) -> None:
    """Published inside a producer span: the handle span links to it; handle's spans nest."""
    queue = broker.queue_name("traced")
    await broker.declare(queue)
    tracer = trace.get_tracer("test")
    inner: list[Any] = []

    class Traced(BulkConsumer):
        queues = [queue]
        bulk_size = 3

        async def handle(self, messages: list[Message[Any]]) -> None:
            with tracer.start_as_current_span("store") as span:
                inner.append(span)

    connection = await connect(AMQP_URL, RecordingLog(), purpose="test")
    publisher = Publisher(connection)
    await publisher.open()
    producers = []
    for n in range(3):
        with tracer.start_as_current_span(f"produce {n}") as producer:
            producers.append(producer.get_span_context())
            await publisher.publish({"n": n}, routing_key=queue)
    await publisher.close()
    await connection.close()
    container, _ = recorded()
    async with Orchestrator([Traced], container):
        await wait_until(lambda: inner)
    [process] = [span for span in spans.get_finished_spans() if span.name == f"process {queue}"]
    assert SpanKind.CONSUMER == process.kind
    assert {
        "messaging.system": "rabbitmq",
        "messaging.operation.type": "process",
        "messaging.batch.message_count": 3,
        "messaging.destination.name": queue,
        "bulkworker.flush_reason": "size",
        "bulkworker.outcome": "success",
    }.items() <= dict(process.attributes or {}).items()
    assert [p.span_id for p in producers] == [link.context.span_id for link in process.links]
    [store] = [span for span in spans.get_finished_spans() if span.name == "store"]
    assert store.parent is not None
    assert process.context.span_id == store.parent.span_id


async def test_a_failing_call_records_its_exception(
    broker: Broker, spans: InMemorySpanExporter
) -> None:
    """handle raising: the span has error status and the exception event."""
    queue = broker.queue_name("traced-error")
    await broker.declare(queue)

    class Failing(BulkConsumer):
        queues = [queue]
        bulk_size = 1
        on_exception = Actions.REJECT

        async def handle(self, messages: list[Message[Any]]) -> None:
            raise LookupError("no such row")

    container, _ = recorded()
    await broker.publish(queue, {"n": 1})
    async with Orchestrator([Failing], container):
        await wait_until(
            lambda: any(s.name.startswith("process") for s in spans.get_finished_spans())
        )
    [process] = [s for s in spans.get_finished_spans() if s.name == f"process {queue}"]
    assert StatusCode.ERROR == process.status.status_code
    assert ["exception"] == [event.name for event in process.events]
    assert "error" == (process.attributes or {})["bulkworker.outcome"]


def test_links_are_capped(channel: Any) -> None:
    """At most MAX_LINKS links per span, however large the bulk."""
    header = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    messages = [
        make_message(n, channel=channel, tag=n + 1, headers={"traceparent": header})
        for n in range(MAX_LINKS + 50)
    ]
    assert MAX_LINKS == len(producer_links(messages))
