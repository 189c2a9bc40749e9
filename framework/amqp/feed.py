"""Turning one queue's deliveries into messages for an engine."""

from aiormq.abc import DeliveredMessage

from framework.core.engine import BulkEngine
from framework.core.message import Delivery, Message
from framework.core.stream import offset_of


class QueueFeed:
    """Turns one queue's deliveries into messages for an engine."""

    __slots__ = ("engine", "queue")

    def __init__(self, queue: str, engine: BulkEngine) -> None:
        self.queue = queue
        self.engine = engine

    async def deliver(self, delivered: DeliveredMessage) -> None:
        # Runs once per message in aiormq's delivery task: keep it short.
        frame = delivered.delivery
        properties = delivered.header.properties
        headers = properties.headers or {}
        refusal = self.engine.receive(
            Message(
                body=delivered.body,  # decoded by the engine, once the delivery is tracked
                raw=delivered.body,
                queue=self.queue,
                routing_key=frame.routing_key,  # type: ignore[union-attr,arg-type]
                delivery=Delivery(delivered.channel, frame.delivery_tag),  # type: ignore[union-attr,arg-type]
                headers=headers,
                content_type=properties.content_type,
                message_id=properties.message_id,
                redelivered=frame.redelivered,  # type: ignore[union-attr]
                properties=properties,
                stream_offset=offset_of(headers) if self.engine.stream is not None else None,
            )
        )
        if refusal is not None:
            await refusal
