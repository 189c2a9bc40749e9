"""Prometheus metrics: what each consumer receives, bulks, handles and settles, and its state.

Counters and histograms follow the engine's events (a :class:`ConsumerMetrics`
watcher per consumer, labelled children looked up once). Gauges are sampled
from the engines, subscriptions and connections by :class:`Sampler`, every
second and right before each scrape: no callback gauges, so everything also
works in prometheus-client's multiprocess mode, where ``bulkworker run
--workers N`` aggregates its workers. Labels stay bounded: consumer class
names, queue names, outcomes, flush reasons, exception class names — never
routing keys or message ids. Times are in seconds.
"""

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from framework.core.outcome import OutcomeKind
from framework.core.tasks import BackgroundTask
from framework.core.watch import Bulk, HandleEnd, Outcome, Pause, TaskRun, Watcher

SIZE_BUCKETS = (1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
# 1 KiB to 64 MiB by fours: Elasticsearch advises bulk requests of 5-15 MB.
BYTES_BUCKETS = tuple(1024 * 4**power for power in range(9))
SECONDS_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
LAG_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
SAMPLE_EVERY = 1.0

MESSAGES_RECEIVED = Counter(
    "bulkworker_messages_received",
    "Deliveries received, before decoding.",
    ["consumer", "queue"],
)
MESSAGES_SETTLED = Counter(
    "bulkworker_messages_settled",
    "Messages settled, by what became of them.",
    ["consumer", "queue", "outcome"],
)
BULKS = Counter(
    "bulkworker_bulks",
    "Bulks handed to handle, by why they were flushed.",
    ["consumer", "reason"],
)
BULK_SIZE = Histogram(
    "bulkworker_bulk_size", "Messages per bulk.", ["consumer"], buckets=SIZE_BUCKETS
)
BULK_BYTES = Histogram(
    "bulkworker_bulk_bytes",
    "Bytes per bulk: the message bodies as received, as max_bulk_bytes counts them.",
    ["consumer"],
    buckets=BYTES_BUCKETS,
)
BULK_WAIT = Histogram(
    "bulkworker_bulk_wait_seconds",
    "How long the first message of a bulk waited before the bulk was handed to handle.",
    ["consumer"],
    buckets=SECONDS_BUCKETS,
)
HANDLE_SECONDS = Histogram(
    "bulkworker_handle_seconds",
    "Duration of each handle call, by how it ended.",
    ["consumer", "outcome"],
    buckets=SECONDS_BUCKETS,
)
HANDLER_EXCEPTIONS = Counter(
    "bulkworker_handler_exceptions",
    "Exceptions raised by handle, by class name.",
    ["consumer", "exception"],
)
BUFFERED = Gauge(
    "bulkworker_buffered_messages",
    "Messages waiting in the buffer for their bulk.",
    ["consumer"],
    multiprocess_mode="livesum",
)
OLDEST_BUFFERED = Gauge(
    "bulkworker_oldest_buffered_seconds",
    "How long the oldest buffered message has waited.",
    ["consumer"],
    multiprocess_mode="livemax",
)
CONSUMERS_ACTIVE = Gauge(
    "bulkworker_consumers_active",
    "1 while the broker has this worker's consumer on the queue.",
    ["consumer", "queue"],
    multiprocess_mode="livesum",
)
CONNECTION_UP = Gauge(
    "bulkworker_connection_up",
    "1 while the connection is open.",
    ["connection", "purpose"],
    multiprocess_mode="livemin",
)
MOVES_PENDING = Gauge(
    "bulkworker_moves_pending",
    "Retry and dead-letter copies waiting for their confirm or for another try.",
    ["consumer"],
    multiprocess_mode="livesum",
)
CONSUMER_PAUSED = Gauge(
    "bulkworker_consumer_paused",
    "1 while the consumer's breaker is open: its sink is unavailable, it takes no deliveries.",
    ["consumer"],
    multiprocess_mode="livemax",
)
CONSUMER_OUTAGES = Counter(
    "bulkworker_consumer_outages",
    "Times the consumer paused because its sink was unavailable.",
    ["consumer"],
)
CONSUMER_PAUSED_SECONDS = Counter(
    "bulkworker_consumer_paused_seconds",
    "Seconds the consumer spent paused with its sink unavailable, the current pause included.",
    ["consumer"],
)
BULK_SIZE_SETTING = Gauge(
    "bulkworker_bulk_size_setting",
    "The consumer's bulk_size setting, to compute fill ratios.",
    ["consumer"],
    multiprocess_mode="livemax",
)
STREAM_OFFSET = Gauge(
    "bulkworker_stream_offset",
    "The first offset of a stream the consumer has not settled: where it reads on from.",
    ["consumer", "queue"],
    multiprocess_mode="livemax",
)
BULK_SIZE_TARGET = Gauge(
    "bulkworker_bulk_size_target",
    "The size bulks are cut at now: bulk_size, or the adaptive target (adaptive_bulk_size).",
    ["consumer"],
    multiprocess_mode="livemax",
)
EVENT_LOOP_LAG = Histogram(
    "bulkworker_event_loop_lag_seconds",
    "How late the event loop ran a callback that was due.",
    buckets=LAG_BUCKETS,
)
PERIODIC_RUNS = Counter(
    "bulkworker_periodic_runs", "Runs of periodic tasks, by outcome.", ["task", "outcome"]
)
PERIODIC_SKIPPED = Counter(
    "bulkworker_periodic_skipped",
    "Ticks of periodic tasks skipped because the previous run still ran.",
    ["task"],
)
OUTCOME_LABELS = {kind: str(kind).replace("-", "_") for kind in OutcomeKind}


class ConsumerMetrics(Watcher):
    """One consumer's counters and histograms, fed by its engine's events."""

    def __init__(self, consumer: str, bulk_size: int) -> None:
        self.consumer = consumer
        self._received: dict[str, Any] = {}
        self._settled: dict[tuple[str, OutcomeKind], Any] = {}
        self._bulk_size = BULK_SIZE.labels(consumer)
        self._bulk_bytes = BULK_BYTES.labels(consumer)
        self._bulk_wait = BULK_WAIT.labels(consumer)
        BULK_SIZE_SETTING.labels(consumer).set(bulk_size)

    def received(self, message: Any) -> None:
        child = self._received.get(message.queue)
        if child is None:
            child = self._received[message.queue] = MESSAGES_RECEIVED.labels(
                self.consumer, message.queue
            )
        child.inc()

    def bulk_taken(self, bulk: Bulk) -> None:
        BULKS.labels(self.consumer, str(bulk.reason)).inc()
        self._bulk_size.observe(bulk.size)
        self._bulk_bytes.observe(bulk.bytes)
        self._bulk_wait.observe(bulk.waited)

    def call_ended(self, end: HandleEnd) -> None:
        HANDLE_SECONDS.labels(self.consumer, str(end.outcome)).observe(end.seconds)
        if end.error is not None:
            HANDLER_EXCEPTIONS.labels(self.consumer, type(end.error).__name__).inc()

    def settled(self, outcome: Outcome) -> None:
        key = (outcome.message.queue, outcome.kind)
        child = self._settled.get(key)
        if child is None:
            child = self._settled[key] = MESSAGES_SETTLED.labels(
                self.consumer, outcome.message.queue, OUTCOME_LABELS[outcome.kind]
            )
        child.inc()

    def paused(self, pause: Pause) -> None:
        CONSUMER_OUTAGES.labels(self.consumer).inc()


class TaskMetrics(Watcher):
    """Runs and skipped ticks of periodic tasks."""

    def task_ran(self, run: TaskRun) -> None:
        PERIODIC_RUNS.labels(run.task, str(run.outcome)).inc()

    def task_skipped(self, task: str) -> None:
        PERIODIC_SKIPPED.labels(task).inc()


class Sampler:
    """Sets the gauges from what the orchestrator runs, every second and on demand.

    ``runners`` and ``connections`` are called for their current values, so
    consumers and connections started later are sampled too.
    """

    def __init__(
        self,
        runners: Callable[[], Iterable[Any]],
        connections: Callable[[], Iterable[tuple[str, str, Any]]],
    ) -> None:
        self._runners = runners
        self._connections = connections
        self._sampling = BackgroundTask("bulkworker:metrics", self._every_second)
        self._paused_seconds: dict[str, float] = {}  # what the counters hold, by consumer

    def refresh(self) -> None:
        """Sample every gauge now."""
        for runner in self._runners():
            name = runner.settings.name
            engine = runner.engine
            BUFFERED.labels(name).set(engine.buffered)
            OLDEST_BUFFERED.labels(name).set(engine.oldest_buffered_seconds)
            MOVES_PENDING.labels(name).set(engine.moves_pending)
            BULK_SIZE_TARGET.labels(name).set(engine.bulk_size_target)
            self._sample_breaker(name, engine)
            self._sample_stream(name, engine)
            consuming = set(runner.subscription.consuming)
            for queue in runner.settings.queues:
                CONSUMERS_ACTIVE.labels(name, queue).set(1 if queue in consuming else 0)
        for name, purpose, connection in self._connections():
            CONNECTION_UP.labels(name, purpose).set(1 if is_up(connection) else 0)

    def _sample_breaker(self, name: str, engine: Any) -> None:
        CONSUMER_PAUSED.labels(name).set(1 if engine.paused else 0)
        paused = engine.outage.breaker.paused_seconds
        counted = self._paused_seconds.get(name, 0.0)
        if paused > counted:
            CONSUMER_PAUSED_SECONDS.labels(name).inc(paused - counted)
            self._paused_seconds[name] = paused

    @staticmethod
    def _sample_stream(name: str, engine: Any) -> None:
        if engine.stream is None:
            return
        for queue in engine.settings.queues:
            offset = engine.stream.next_offset(queue)
            if offset is not None:
                STREAM_OFFSET.labels(name, queue).set(offset)

    def start(self) -> None:
        self._sampling.start()

    async def stop(self) -> None:
        await self._sampling.stop()
        for runner in self._runners():
            for queue in runner.settings.queues:
                CONSUMERS_ACTIVE.labels(runner.settings.name, queue).set(0)

    async def _every_second(self) -> None:
        while True:
            self.refresh()
            await asyncio.sleep(SAMPLE_EVERY)


def is_up(connection: Any) -> bool:
    """True while an aio-pika robust connection is connected (not reconnecting, not closed)."""
    if connection is None or getattr(connection, "is_closed", True):
        return False
    connected = getattr(connection, "connected", None)
    return bool(connected.is_set()) if connected is not None else True
