"""A consumer's link to RabbitMQ: its channel, queues, QoS and consumers.

Deliveries are consumed on the aiormq channel under aio-pika's robust channel:
that skips aio-pika's per-message objects, and each delivery is bound to the
exact channel object it arrived on. When the robust channel is reopened after
a reconnect, the subscription drops what the dead channel had buffered (the
broker redelivers it) and consumes again on the new one. A queue it cannot
consume now (deleted, not back after a reconnect, another worker's partition)
is handed to :class:`~framework.amqp.lost_queues.LostQueues`.
"""

import contextlib
from typing import Any

import aiormq
from aio_pika.abc import AbstractRobustChannel, AbstractRobustConnection
from aiormq.exceptions import AMQPError

from framework.amqp.closing import CHANNEL_GONE_ERRORS
from framework.amqp.connection import close_within
from framework.amqp.declarations import declare, declare_on_probe
from framework.amqp.feed import QueueFeed
from framework.amqp.lost_queues import LostQueues
from framework.amqp.partitions import bind_partitions, prepare_partitions
from framework.core.abc import EventLog
from framework.core.engine import BulkEngine
from framework.core.headers import STREAM_OFFSET_HEADER
from framework.core.partitions import PartitionShare
from framework.errors import QueueError


class Subscription:
    """Declares a consumer's queues and feeds their deliveries to its engine."""

    def __init__(
        self,
        connection: AbstractRobustConnection,
        engine: BulkEngine,
        log: EventLog,
        *,
        reconnect_max_delay: float = 30.0,
        share: PartitionShare | None = None,
    ) -> None:
        self._connection = connection
        self._share = share or PartitionShare()
        self._engine = engine
        self._log = log
        self._settings = engine.settings
        self._channel: AbstractRobustChannel | None = None
        self._underlay: aiormq.abc.AbstractChannel | None = None
        self._consumers: dict[str, str] = {}  # consumer tag -> queue
        self._cancelled = False
        self._paused = False  # the engine's breaker is open: no consumers until it resumes
        # A partitioned consumer stops taking deliveries but stays registered: see cancel().
        self._holding_back = False
        self._lost = LostQueues(
            consumer=engine.settings.name,
            log=log,
            try_consume=self._try_consume,
            has_consumer=self._has_consumer,
            active=lambda: not self._cancelled and not self._paused,
            max_delay=reconnect_max_delay,
        )

    def __repr__(self) -> str:
        return f"<Subscription {self._settings.name} consumers={len(self._consumers)}>"

    @property
    def consuming(self) -> list[str]:
        """The queues consumed right now."""
        return sorted(self._consumers.values())

    async def open(self) -> None:
        """Open the channel, check or declare the queues, set QoS, start consuming."""
        channel = await self._connection.channel()
        self._channel = channel
        await channel.set_qos(prefetch_count=self._settings.prefetch)
        underlay = await channel.get_underlay_channel()
        await prepare_partitions(underlay, self._settings)
        for queue, arguments, role in self._settings.declarations():
            await declare(underlay, queue, arguments, role, self._settings)
        await bind_partitions(underlay, self._settings)
        await self._consume_all(underlay)
        channel.reopen_callbacks.add(self._on_reopen)

    async def _consume_all(self, underlay: aiormq.abc.AbstractChannel) -> None:
        self._underlay = underlay
        underlay.on_consumer_cancel_callbacks.add(self._on_broker_cancel)
        self._consumers = {}
        own, others = self._share.split(self._settings.queues, self._settings.partitions)
        for queue in own:
            await self._consume(underlay, queue)
        for queue in others:
            self._lost.stand_by(queue)

    async def _consume(self, underlay: aiormq.abc.AbstractChannel, queue: str) -> None:
        stream = self._engine.stream
        # A stream starts where this consumer left off, not where it was configured to.
        arguments = None if stream is None else await stream.consume_arguments(queue)
        accepting = self._accepting if self._settings.exchanges else None
        feed = QueueFeed(queue, self._engine, accepting)
        consume_ok = await underlay.basic_consume(queue, feed.deliver, arguments=arguments)
        assert consume_ok.consumer_tag is not None
        self._consumers[consume_ok.consumer_tag] = queue
        if arguments is not None:
            await self._log.info(
                "reading a stream",
                extra={
                    "consumer": self._settings.name,
                    "queue": queue,
                    "offset": str(arguments[STREAM_OFFSET_HEADER]),
                },
            )

    async def _on_reopen(self, *_: Any) -> None:
        dropped = self._engine.drop_closed()
        assert self._channel is not None
        underlay = await self._channel.get_underlay_channel()
        self._underlay = underlay
        underlay.on_consumer_cancel_callbacks.add(self._on_broker_cancel)
        self._consumers = {}
        if self._paused:
            return  # resume() consumes once the sink is back
        await self._consume_again(underlay)
        await self._log.warning(
            "channel reopened: consuming again",
            extra={
                "consumer": self._settings.name,
                "queues": self.consuming,
                "dropped_from_buffer": dropped,
            },
        )

    async def _consume_again(self, underlay: aiormq.abc.AbstractChannel) -> None:
        for queue in self._settings.queues:
            if queue in self._lost:
                continue  # its own task consumes it once it is back
            try:
                await self._ensure(underlay, queue)
                await self._consume(underlay, queue)
            except QueueError as error:
                await self._lost.lost(queue, str(error))

    async def pause(self) -> None:
        """Stop the broker's deliveries until :meth:`resume`; what arrived stays unsettled.

        Each consumer is cancelled and its cancel-ok waited for, so nothing
        more arrives; a reconnect meanwhile does not consume again.
        """
        if self._paused or self._cancelled:
            return
        self._paused = True
        await self._lost.stop()
        if self._settings.exchanges:
            await self._hand_over()
        else:
            await self._cancel_consumers()

    def _accepting(self) -> bool:
        return not self._holding_back

    async def _hand_over(self) -> None:
        """Close the channel: the broker requeues what it holds and activates the next consumer.

        For a single-active partition queue, ``basic.cancel`` would activate
        the next consumer at once while this one still holds earlier messages
        of the same keys; a channel close requeues them first, in one step.
        The robust channel reopens, with no consumer until :meth:`resume`.
        """
        underlay = self._underlay
        self._consumers = {}
        if underlay is not None and not underlay.is_closed:
            with contextlib.suppress(*CHANNEL_GONE_ERRORS):
                await underlay.close()

    async def resume(self) -> None:
        """Consume every queue again (a queue that is gone is waited for, as after a cut)."""
        if not self._paused or self._cancelled:
            return
        self._paused = False
        underlay = self._underlay
        if underlay is None or underlay.is_closed:
            return  # the reopened channel consumes
        await self._consume_again(underlay)

    async def _ensure(self, underlay: aiormq.abc.AbstractChannel, queue: str) -> None:
        """Declare ``queue`` again, and what it needs beside it, before consuming it again.

        Only ``queue`` itself must succeed: a dead-letter or retry queue that
        cannot be declared now (in a cluster, its node may be down) does not
        stop consumption; a move to it is held and declares it again later.
        """
        for name, arguments, role in self._settings.declarations_for(queue):
            try:
                await declare(underlay, name, arguments, role, self._settings)
            except QueueError as error:
                if name == queue:
                    raise
                await self._log.warning(
                    f"{role} cannot be declared now: consuming {queue!r} all the same",
                    extra={"consumer": self._settings.name, "queue": name, "error": str(error)},
                )

    async def _on_broker_cancel(self, frame: Any) -> None:
        queue = self._consumers.pop(frame.consumer_tag, None)
        if queue is None or self._cancelled or self._paused:
            return
        if self._engine.stream is not None:
            self._engine.stream.restart(queue)
        await self._lost.lost(queue, "the broker cancelled the consumer (was the queue deleted?)")

    async def _has_consumer(self, queue: str) -> bool:
        underlay = self._underlay
        if underlay is None or underlay.is_closed:
            return False
        try:
            found = await declare_on_probe(underlay.connection, queue, passive=True)
        except (AMQPError, *CHANNEL_GONE_ERRORS):
            return False
        return bool(found.consumer_count)

    async def _try_consume(self, queue: str) -> bool:
        """Consume ``queue`` if it is back and the channel is up; False to try again later."""
        underlay = self._underlay
        if underlay is None or underlay.is_closed:
            return False
        try:
            await self._ensure(underlay, queue)
            await self._consume(underlay, queue)
        except (QueueError, *CHANNEL_GONE_ERRORS):
            return False
        return True

    async def cancel(self) -> None:
        """Stop deliveries and wait for the broker to confirm: then nothing more arrives.

        A partitioned consumer stays registered and leaves what still arrives
        unacked: were it cancelled, the next consumer of each partition would
        start while this one still handles earlier messages of the same keys.
        Its :meth:`close` then requeues the rest and hands the partitions over.
        """
        self._cancelled = True
        await self._lost.stop()
        if self._settings.exchanges:
            self._holding_back = True
        else:
            await self._cancel_consumers()
        self._underlay = None
        if self._channel is not None:
            self._channel.reopen_callbacks.discard(self._on_reopen)

    async def _cancel_consumers(self) -> None:
        underlay = self._underlay
        if underlay is None or underlay.is_closed:
            return
        for tag in list(self._consumers):
            try:
                await underlay.basic_cancel(tag)
            except CHANNEL_GONE_ERRORS:
                return
            self._consumers.pop(tag, None)

    async def close(self, within: float = 5.0) -> bool:
        """Close the channel; False if the broker did not answer ``within`` seconds."""
        channel, self._channel = self._channel, None
        return channel is None or await close_within(channel, within)
