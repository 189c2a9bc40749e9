"""The confirmed publisher, on the real RabbitMQ."""

import datetime
import decimal
import json
from typing import Any

import aio_pika
import attrs
import pytest

from framework import PublishError, SerializationError, UnroutableError
from framework.amqp.connection import connect
from framework.amqp.publisher import Publisher
from framework.core.decoding import body_decoder
from framework.core.serialization import encode_body as encode
from framework.testing import RecordingLog
from tests.broker import AMQP_URL, Broker


@attrs.frozen
class Item:
    sku: str
    price: float


@pytest.mark.parametrize(
    ("body", "raw", "content_type"),
    [
        ({}, b"{}", "application/json"),
        ({"a": [1, 2]}, b'{"a":[1,2]}', "application/json"),
        (Item("lamp", 30.0), b'{"sku":"lamp","price":30.0}', "application/json"),
        (b"\x00raw", b"\x00raw", None),
        ("text", b"text", "text/plain; charset=utf-8"),
        (None, b"null", "application/json"),
    ],
)
def test_bodies_are_encoded_by_kind(body: Any, raw: bytes, content_type: str | None) -> None:
    """JSON by default, attrs instances as JSON objects, bytes as they are, text as UTF-8."""
    assert (raw, content_type) == encode(body)


@pytest.fixture
async def publisher() -> Any:
    connection = await connect(AMQP_URL, RecordingLog(), purpose="test")
    publisher = Publisher(connection)
    await publisher.open()
    yield publisher
    await publisher.close()
    await connection.close()


async def test_publish_and_publish_many_arrive_confirmed(
    broker: Broker, publisher: Publisher
) -> None:
    """Every message arrives, persistent, with its content type, headers and id."""
    queue = broker.queue_name("publisher")
    await broker.declare(queue)
    await publisher.publish({}, routing_key=queue, headers={"h": 1}, message_id="first")
    assert 2500 == await publisher.publish_many(({"n": n} for n in range(2500)), routing_key=queue)
    messages = await broker.drain(queue)
    assert 2501 == len(messages)
    first = messages[0]
    assert (b"{}", "first", {"h": 1}) == (first.body, first.message_id, first.headers)
    assert aio_pika.DeliveryMode.PERSISTENT == first.delivery_mode
    assert list(range(2500)) == [json.loads(m.body)["n"] for m in messages[1:]]


async def test_unroutable_mandatory_message_is_an_error(publisher: Publisher) -> None:
    """With mandatory=True, a message no queue takes raises PublishError instead of vanishing."""
    with pytest.raises(PublishError, match="returned unroutable"):
        await publisher.publish(
            {"a": 1}, routing_key="bulkworker.test.no-such-queue", mandatory=True
        )


async def test_unroutable_message_is_an_error_by_default(publisher: Publisher) -> None:
    """Without saying mandatory, publish and publish_many raise UnroutableError, never drop."""
    with pytest.raises(UnroutableError, match="returned unroutable"):
        await publisher.publish({"a": 1}, routing_key="bulkworker.test.no-such-queue")
    with pytest.raises(UnroutableError, match="returned unroutable"):
        await publisher.publish_many([{"a": 1}], routing_key="bulkworker.test.no-such-queue")


async def test_mandatory_false_lets_an_unroutable_message_go(publisher: Publisher) -> None:
    """mandatory=False is the explicit opt-out: the broker drops it, publish returns."""
    await publisher.publish({"a": 1}, routing_key="bulkworker.test.no-such-queue", mandatory=False)
    assert 1 == publisher.published


async def test_closed_publisher_is_an_error(publisher: Publisher) -> None:
    """Publishing after close says so."""
    await publisher.close()
    with pytest.raises(PublishError, match="not open"):
        await publisher.publish({"a": 1}, routing_key="anything")


async def test_container_publisher_is_injectable(broker: Broker) -> None:
    """Container.publisher is a resource on its own connection, apart from consuming."""
    from tests.conftest import make_container

    container = make_container()
    await container.init_resources()
    try:
        publisher = await container.publisher()
        consuming = await container.connection()
        assert isinstance(publisher, Publisher)
        assert publisher._connection is not consuming
    finally:
        await container.shutdown_resources()


@attrs.frozen
class Shipped:
    order: str
    at: datetime.datetime
    amount: decimal.Decimal


async def test_an_attrs_event_with_a_datetime_is_published_and_reads_back(
    broker: Broker, publisher: Publisher
) -> None:
    """A model with datetime and Decimal fields arrives as JSON a consumer's model reads back."""
    queue = broker.queue_name("publisher-models")
    await broker.declare(queue)
    event = Shipped(
        "o-1", datetime.datetime(2026, 11, 28, 8, 0, tzinfo=datetime.UTC), decimal.Decimal("9.90")
    )
    await publisher.publish(event, routing_key=queue)
    [message] = await broker.drain(queue)
    assert "application/json" == message.content_type
    assert event == body_decoder(None, Shipped)(message.body, message.content_type)


async def test_a_body_json_cannot_hold_sends_nothing(broker: Broker, publisher: Publisher) -> None:
    """SerializationError comes before any publish: no message of the batch reaches the queue."""
    queue = broker.queue_name("publisher-unserializable")
    await broker.declare(queue)
    bodies = [{"n": 1}, {"n": 2}, {"n": object()}]
    with pytest.raises(SerializationError, match=r"\$\.n is of type object"):
        await publisher.publish_many(bodies, routing_key=queue)
    assert [] == await broker.drain(queue)
