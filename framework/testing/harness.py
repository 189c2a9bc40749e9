"""The consumer test harness: one consumer class through the real engine, no broker needed."""

import asyncio
import itertools
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import attrs

from framework.core.consumer import BulkConsumer
from framework.core.engine import EngineConfig, build_engine
from framework.core.headers import STREAM_OFFSET_HEADER
from framework.core.message import Delivery, Message
from framework.core.outcome import Move
from framework.core.serialization import encode_body as encode
from framework.runtime.orchestrator import Orchestrator
from framework.testing.fakes import FakeChannel, FakeClock, RecordingLog
from framework.testing.outgoing import Outgoing
from framework.testing.overrides import Overrides
from framework.testing.publisher import PublishedMessage, RecordingPublisher
from framework.testing.real_broker import RealBroker
from framework.wiring.assembly import build_handlers, plan
from framework.wiring.container import Container, resolve


@attrs.frozen
class DeadLetter:
    """A message the consumer dead-lettered (or rejected to the broker), and why."""

    body: Any
    reason: str | None
    error: str | None
    queue: str
    destination: str | None


class ConsumerHarness:
    """Runs one consumer class through the real engine and settlement, with no broker.

    Messages go in with :meth:`publish`; time moves only with :meth:`advance`
    (the harness's clock) or :meth:`flush`; every outcome is recorded::

        async with ConsumerHarness(ItemsConsumer, overrides={"store": FakeStore()}) as h:
            await h.publish({"id": 1, "name": "lamp", "price": 30})
            await h.flush()
            assert [{"id": 1, "name": "lamp", "price": 30}] == h.acked

    Retries come back by themselves (after ``retry_delay`` on the harness clock),
    as the broker would send them. In memory, the container's ``publisher`` is a
    :class:`RecordingPublisher` (what handlers publish is in :attr:`published`)
    and its ``connection`` an :class:`OfflineConnection`: nothing connects.
    ``orchestrator=`` runs that orchestrator's startup hooks on entry and its
    shutdown hooks on exit, with its container. Pass ``broker=True`` (or an AMQP
    URL) to run the same test against a real RabbitMQ: the consumer then reads
    queues of its own, named after its queues, that are deleted afterwards.
    """

    def __init__(
        self,
        consumer: type[BulkConsumer],
        *,
        container: Any = None,
        overrides: Mapping[str, Any] | None = None,
        broker: bool | str = False,
        redeliver_retries: bool = True,
        orchestrator: Orchestrator | None = None,
    ) -> None:
        self.consumer_class = consumer
        self.orchestrator = orchestrator
        default_container = container is None and orchestrator is None
        if container is None:
            container = orchestrator.container if orchestrator is not None else Container()
        self.container = container
        self._overrides = Overrides(
            container,
            overrides or {},
            harness="ConsumerHarness",
            default_container=default_container,
        )
        self.broker_url = broker if isinstance(broker, str) else None
        self.real = bool(broker)
        self.redeliver_retries = redeliver_retries
        self.clock = FakeClock()
        self.log = RecordingLog()
        self.bulks: list[list[Any]] = []
        self.outcomes: list[Any] = []
        self._engines: list[Any] = []
        self.publisher = RecordingPublisher()
        self._mode: _FakeBroker | RealBroker | None = None

    def __repr__(self) -> str:
        mode = "real broker" if self.real else "in memory"
        return (
            f"<ConsumerHarness {self.consumer_class.__name__} {mode} outcomes={len(self.outcomes)}>"
        )

    async def __aenter__(self) -> "ConsumerHarness":
        self._overrides.apply()
        try:
            if not self.real:
                self._overrides.go_offline(self.publisher)
            self._mode = RealBroker(self) if self.real else _FakeBroker(self)
            await self._mode.start()
        except BaseException:
            self._overrides.restore()
            raise
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        try:
            if self._mode is not None:
                await self._mode.stop()
            if self.orchestrator is not None:
                await self.orchestrator.run_shutdown_hooks()
        finally:
            self._overrides.restore()

    @property
    def overrides(self) -> dict[str, Any]:
        """The providers this harness replaces, by name, as given."""
        return dict(self._overrides.values)

    async def run_startup_hooks(self) -> None:
        if self.orchestrator is not None:
            await self.orchestrator.run_startup_hooks()

    def watch(self, engine: Any) -> None:
        """Record what ``engine`` hands to ``handle`` and what becomes of each message."""
        self._engines.append(engine)
        engine.observe(self.outcomes.append)
        engine.observe_bulks(lambda bulk: self.bulks.append([m.body for m in bulk]))

    @property
    def published(self) -> list[PublishedMessage]:
        """What handlers published through the container's publisher (in memory)."""
        if self.real:
            raise RuntimeError("with a broker, handlers publish to RabbitMQ: read the queues")
        return self.publisher.messages

    @property
    def mode(self) -> "_FakeBroker | RealBroker":
        if self._mode is None:
            raise RuntimeError("use the harness as `async with ConsumerHarness(...) as h:`")
        return self._mode

    @property
    def queue(self) -> str:
        """The queue :meth:`publish` sends to by default: the consumer's first."""
        return self.mode.queues[0]

    async def publish(
        self,
        body: Any,
        *,
        queue: str | None = None,
        headers: Mapping[str, Any] | None = None,
        content_type: str | None = None,
        message_id: str | None = None,
    ) -> None:
        """Deliver one message (JSON unless bytes or text), then let due bulks run."""
        raw, detected = encode(body)
        outgoing = Outgoing(
            raw=raw,
            queue=queue or self.queue,
            headers=dict(headers or {}),
            content_type=content_type or detected,
            message_id=message_id,
            body=body,
        )
        await self.mode.publish(outgoing)

    async def publish_many(self, bodies: Iterable[Any], **options: Any) -> None:
        for body in bodies:
            await self.publish(body, **options)

    async def flush(self) -> None:
        """Hand the partial bulk to ``handle`` now and wait until everything is settled."""
        await self.mode.flush()

    async def drain(self) -> None:
        """Run until nothing is buffered, handled, retrying or waiting.

        In memory, the clock jumps to each retry as it comes due, so a message
        retried with ``retry_delay`` runs out its attempts without any sleeping.
        A consumer whose sink became unavailable is paused (:attr:`paused`):
        drain returns then, and :meth:`advance` moves on to its probes.
        """
        await self.mode.drain()

    @property
    def paused(self) -> bool:
        """The consumer's breaker is open: its sink was unavailable, it holds its bulk."""
        return any(engine.paused for engine in self._engines)

    async def advance(self, seconds: float) -> None:
        """Move the harness clock (flush intervals, retry delays), then let due work run."""
        if self.real:
            raise RuntimeError("advance() moves the in-memory clock; with a broker, use flush()")
        self.clock.advance(seconds)
        await self.mode.settle()

    def _kind(self, *kinds: str) -> list[Any]:
        return [outcome.message.body for outcome in self.outcomes if outcome.kind in kinds]

    @property
    def acked(self) -> list[Any]:
        """Bodies acked as processed, in settlement order."""
        return self._kind("ack")

    @property
    def requeued(self) -> list[Any]:
        """Bodies sent back for another attempt (retries and broker requeues)."""
        return self._kind("retry", "requeue")

    @property
    def dead_lettered(self) -> list[DeadLetter]:
        """Messages moved to a dead-letter queue, or rejected to the broker, with reasons."""
        return [
            DeadLetter(
                outcome.message.body,
                outcome.reason,
                outcome.error,
                outcome.message.queue,
                outcome.destination,
            )
            for outcome in self.outcomes
            if outcome.kind in ("dead-letter", "reject")
        ]


class _FakeBroker:
    """The harness's in-memory broker: one fake channel, retries redelivered."""

    def __init__(self, harness: ConsumerHarness) -> None:
        self.harness = harness
        self.channel = FakeChannel("harness")
        self.tags = itertools.count(1)
        self.engine: Any = None
        self.worker: asyncio.Task[None] | None = None
        self.queues: list[str] = []
        self.pending: set[asyncio.Task[None]] = set()
        self.offsets: dict[str, Iterator[int]] = {}  # a stream queue's next offsets

    async def start(self) -> None:
        harness = self.harness
        consumers = plan([harness.consumer_class], harness.container, check_connections=False)
        settings = self.settings = consumers.settings[0]
        self.queues = list(settings.queues)
        for declaration in settings.declarations():
            harness.publisher.allow(declaration.name)
        await harness.run_startup_hooks()
        [handler] = await build_handlers(consumers.classes, harness.container)
        config = EngineConfig(clock=harness.clock, log=harness.log, publisher=self)
        self.engine = build_engine(settings, handler, config)
        harness.watch(self.engine)
        await self._start_streams()
        self.worker = asyncio.create_task(self.engine.run())

    async def _start_streams(self) -> None:
        """Number a stream's messages as the broker would, from where the consumer starts."""
        if self.engine.stream is None:
            return
        for queue in self.queues:
            start = await self.engine.stream.start_of(queue)  # calls stored_offset, as at start
            self.offsets[queue] = itertools.count(start if isinstance(start, int) else 0)

    async def publish(self, outgoing: Outgoing) -> None:
        await self.deliver(outgoing)
        await self.settle()

    async def deliver(self, outgoing: Outgoing) -> None:
        queue, headers = outgoing.queue, outgoing.headers
        offsets = self.offsets.get(queue)
        offset = None if offsets is None else next(offsets)
        if offset is not None:
            headers = {**headers, STREAM_OFFSET_HEADER: offset}
        message = Message(
            body=outgoing.raw,
            raw=outgoing.raw,
            queue=queue,
            routing_key=queue,
            delivery=Delivery(self.channel, next(self.tags)),
            headers=headers,
            content_type=outgoing.content_type,
            message_id=outgoing.message_id,
            stream_offset=offset,
        )
        refusal = self.engine.receive(message)
        if refusal is not None:
            await refusal

    async def publish_move(self, move: Move) -> None:
        """Where the engine's retries and dead letters arrive."""
        if not self.harness.redeliver_retries:
            return
        for queue in self.queues:
            if move.routing_key == queue:
                self._redeliver(move, queue, 0.0)
            elif move.routing_key == self.settings.retry_queue_for(queue):
                # The copy's expiration is its wait: retry_delay, doubled per attempt.
                self._redeliver(move, queue, int(move.expiration or 0) / 1000.0)

    def _redeliver(self, move: Move, queue: str, delay: float) -> None:
        original = move.message
        copy = Outgoing(
            raw=original.raw,
            queue=queue,
            headers=move.headers,
            content_type=original.content_type,
            message_id=original.message_id,
        )

        def deliver() -> None:
            task = asyncio.create_task(self.deliver(copy))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)

        if delay > 0:
            self.harness.clock.call_later(delay, deliver)
        else:
            asyncio.get_running_loop().call_soon(deliver)

    async def settle(self) -> None:
        """Let everything that is due run to its end; no time passes on the clock."""
        deadline = asyncio.get_running_loop().time() + 30
        quiet = 0
        while quiet < 3:
            await asyncio.sleep(0)
            busy = not self.engine.idle or bool(self.pending)
            quiet = 0 if busy else quiet + 1
            if busy and asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("the consumer did not settle within 30 s")
            if busy:
                await asyncio.sleep(0.001)

    async def flush(self) -> None:
        self.engine.flush_now()
        await self.settle()

    async def drain(self) -> None:
        clock = self.harness.clock
        for _ in range(10_000):
            await self.flush()
            if self.engine.paused:
                return  # it waits for its sink: advance() runs the probes
            due = clock.next_due()
            if due is None:
                return
            clock.advance(due - clock.now())
        raise TimeoutError("the consumer kept retrying through 10,000 rounds of drain()")

    async def stop(self) -> None:
        if self.worker is None:
            return
        self.engine.close()
        await asyncio.wait_for(self.worker, 30)
        for task in list(self.pending):
            task.cancel()
        await asyncio.gather(*self.pending, return_exceptions=True)
        if self.harness.orchestrator is not None:
            # The orchestrator's whole life, as its stop would end it: resources closed.
            await resolve(self.harness.container.shutdown_resources())
