"""Turning one queue's deliveries into messages for an engine."""

from collections.abc import Callable

from aiormq.abc import DeliveredMessage

from framework.core.engine import BulkEngine
from framework.core.message import Delivery, Message
from framework.core.stream import offset_of


class QueueFeed:
    """Turns one queue's deliveries into messages for an engine."""

    __slots__ = ("accepting", "engine", "queue")

    def __init__(
        self, queue: str, engine: BulkEngine, accepting: Callable[[], bool] | None = None
    ) -> None:
        self.queue = queue
        self.engine = engine
        # False: leave the delivery unacked and untracked; closing the channel requeues it.
        self.accepting = accepting

    async def deliver(self, delivered: DeliveredMessage) -> None:
        # Runs once per message in aiormq's delivery task: keep it short.
        if self.accepting is not None and not self.accepting():
            return
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
