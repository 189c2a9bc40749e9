"""The bulk engine: buffers one consumer's messages and hands them over in bulks.

Pure asyncio, no I/O of its own: the transport feeds it messages, a clock
decides when a partial bulk is due, a settler sends the outcomes, and a
publisher carries out retries and dead letters. One worker task hands bulks
to ``handle``: one at a time while the next fills, or up to
``max_concurrent_bulks`` at once, each in a task of its own. Buffers are kept
per ``group_by`` key (see :mod:`framework.core.buffer`); watchers learn every
event (see :mod:`framework.core.watch`).

The engine is made of collaborators with one job each, built once by
:func:`build_engine`: :class:`~framework.core.reception.Reception` takes
deliveries in, :class:`~framework.core.due.DueBulks` takes the due bulks out,
:class:`~framework.core.handling.Handling` calls ``handle``,
:class:`~framework.core.verdicts.Judge` settles what it decided and
:class:`~framework.core.pausing.Pausing` pauses and probes a sink that is down.
"""

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import attrs

from framework.core.abc import Clock, EventLog, Handler, MovePublisher, QueueDeclarer
from framework.core.buffer import Buffers, key_function
from framework.core.consumer import ConsumerSettings
from framework.core.due import DueBulks
from framework.core.handling import CANCEL_GRACE, ExitRequestCallback, Handling
from framework.core.message import Message
from framework.core.moves import Mover
from framework.core.outage import DEFAULT_CONSUMER_TIMEOUT, OutageGuard
from framework.core.pausing import Pausing
from framework.core.reception import Reception
from framework.core.settlement import SettlementReport, Settler
from framework.core.sizing import AdaptiveSize
from framework.core.stream import StreamPosition
from framework.core.turns import BulkTasks, KeyTurns
from framework.core.verdicts import Judge
from framework.core.watch import (
    Bulk,
    BulkDone,
    BulkObserver,
    FlushReason,
    Observer,
    OutcomeObserver,
    Watcher,
    Watchers,
)
from framework.errors import DecodeError


@attrs.define(kw_only=True, eq=False, repr=False)
class BulkEngine:
    """Collects messages into bulks, calls the handler, settles the results.

    Made by :func:`build_engine`; the fields are its collaborators, each
    built once and shared with those that need it.
    """

    settings: ConsumerSettings
    _clock: Clock
    # The worker's alarm: set when a bulk may be due, or the engine closes.
    _wake: asyncio.Event
    _buffers: Buffers
    outage: OutageGuard
    judge: Judge
    handling: Handling
    reception: Reception
    _due: DueBulks
    _bulks: BulkTasks
    pausing: Pausing
    adaptive_size: AdaptiveSize | None
    bulks_handled: int = attrs.field(default=0, init=False)
    _closing: bool = attrs.field(default=False, init=False)

    def __repr__(self) -> str:
        name, handled = self.settings.name, self.bulks_handled
        return f"<BulkEngine {name} buffered={self.buffered} bulks_handled={handled}>"

    @property
    def buffered(self) -> int:
        return self._buffers.total

    @property
    def settler(self) -> Settler:
        """Sends the settlements, and keeps the ledger of what is still unsettled."""
        return self.judge.settler

    @property
    def stream(self) -> StreamPosition | None:
        """Where a stream consumer resumes after a reconnect or a pause; None for queues."""
        return self.judge.stream

    @property
    def bulk_size_target(self) -> int:
        """The size bulks are cut at now: ``bulk_size``, or the adaptive target."""
        sizer = self.adaptive_size
        return self.settings.bulk_size if sizer is None else sizer.target

    @property
    def paused(self) -> bool:
        """The sink is unavailable: no deliveries are taken until a probe gets through."""
        return self.outage.breaker.is_open

    @property
    def abandoned_handlers(self) -> int:
        """``handle`` calls that ignored cancellation and are still running, abandoned."""
        return len(self.handling.abandoned)

    @property
    def handle_calls(self) -> int:
        """``handle`` calls made, every half of a bisected bulk counting as one."""
        return self.handling.handle_calls

    @property
    def idle(self) -> bool:
        """Nothing due, nothing being handled, no copy waiting for its confirm."""
        return not self._bulks.busy and not self.moves_pending and not self._due_now()

    def _due_now(self) -> bool:
        return self._due.due_now(self._closing)

    @property
    def oldest_buffered_seconds(self) -> float:
        """How long the oldest buffered message has waited; 0 when nothing is buffered."""
        oldest = self._buffers.oldest_arrival()
        return 0.0 if oldest is None else self._clock.now() - oldest

    @property
    def moves_pending(self) -> int:
        """Retry and dead-letter copies not yet carried out (unconfirmed or held)."""
        return self.judge.mover.pending

    def watch(self, watcher: Watcher) -> None:
        """Tell ``watcher`` of every event from now on."""
        self.judge.watchers.add(watcher)

    def observe(self, observer: Observer) -> None:
        """Call ``observer`` with the outcome of every message settled from now on."""
        self.watch(OutcomeObserver(observer))

    def observe_bulks(self, observer: Callable[[list[Message[Any]]], None]) -> None:
        """Call ``observer`` with every list of messages handed to ``handle`` from now on."""
        self.watch(BulkObserver(observer))

    def receive(self, message: Message[Any]) -> Awaitable[None] | None:
        """Record a delivery, decode it and take it in, or return the refusal to await.

        ``message.body`` arrives as the raw bytes; the bulk gets a new message
        with the decoded body. See :class:`~framework.core.reception.Reception`.
        """
        return self.reception.receive(message)

    async def refuse(self, message: Message[Any], error: DecodeError) -> None:
        """Dead-letter a message that cannot be decoded: it never reaches ``handle``."""
        await self.reception.refuse(message, error)

    def flush_now(self) -> None:
        """Hand over the partial bulks without waiting for their flush interval."""
        self._buffers.force_all(FlushReason.FORCED)

    def drop_closed(self) -> int:
        """Forget buffered messages whose channel closed: the broker redelivers them."""
        return self._due.drop_closed(self._closing)

    @property
    def dropped_closed(self) -> int:
        """Buffered messages dropped so far because their channel closed."""
        return self._due.dropped

    def close(self) -> None:
        """Ask the worker to hand over what is buffered and stop."""
        self._closing = True
        self._wake.set()

    async def run(self) -> None:
        """The worker: hands due bulks to ``handle`` until closed and drained.

        One at a time, awaited here, unless ``max_concurrent_bulks`` allows
        more: then each bulk is handled in a task of its own, at most that many
        at once, and settlement still never acks a message before its bulk ends.
        """
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                if self.paused:
                    await self._while_paused()
                else:
                    await self._hand_over_due_bulks()
                if self._bulks.failure is not None:
                    raise self._bulks.failure  # as it would have from an awaited bulk
                await self._due.report_drops()
                if self._closing and not self._buffers.total and not self._bulks.running:
                    self._buffers.cancel_timers()
                    await self.finish_moves()
                    return
        except asyncio.CancelledError:
            await self._bulks.cancel(within=self.handling.cancel_grace + 1.0)
            raise

    async def _hand_over_due_bulks(self) -> None:
        bulks = self._bulks
        while (
            bulks.has_room
            and not self.paused
            and (bulk := self._due.take(self._closing)) is not None
        ):
            if self.settings.max_concurrent_bulks == 1:
                await bulks.awaited(self.process(bulk))
            else:
                bulks.start(bulk, self.process(bulk))

    async def _while_paused(self) -> None:
        """The breaker is open: give back in time, probe when due, stop when asked."""
        running = self._bulks.running
        probe = await self.pausing.next_probe(closing=self._closing, running=running)
        if probe is not None:
            await self._bulks.awaited(self.process(probe, probe=True))

    async def process(self, bulk: Bulk, *, probe: bool = False) -> SettlementReport:
        """Call the handler on one bulk and settle every message of it.

        ``handle`` gets a copy of the bulk's messages: whatever it does to its
        list, settlement goes by ``bulk``, each message exactly once. A
        ``probe`` tries the sink while the breaker is open: unless it meets
        the outage again, the consumer resumes.
        """
        started = self._clock.now()
        result = await self.handling.run(bulk)
        self.bulks_handled += 1
        failures, held = result.failures, result.held
        verdicts = [
            self.judge.verdict(m, failures.get(id(m))) for m in bulk.messages if id(m) not in held
        ]
        report, kinds = await self.judge.settle(verdicts)
        seconds = self._clock.now() - started
        self.judge.watchers.bulk_done(BulkDone(bulk, seconds, kinds, bool(failures or held)))
        if held:
            kept = [m for m in bulk.messages if id(m) in held]
            await self.pausing.tripped(
                kept, result.outage, started - bulk.waited, probe=probe, closing=self._closing
            )
        elif probe:
            await self.pausing.recovered()
        self.handling.pass_exit_requests()
        return report

    async def finish_moves(self) -> None:
        """Wait for retries and dead letters: confirms, and held moves until they succeed."""
        await self.judge.mover.finish()

    async def abandon_moves(self) -> None:
        """Stop moving: held and unconfirmed originals stay unacked; the broker requeues them."""
        await self.judge.mover.abandon()


@attrs.frozen(kw_only=True)
class EngineConfig:
    """What an engine is given besides its consumer: what it talks to, and its timings.

    Attributes:
        clock: when partial bulks are due.
        log: where the engine's events go.
        publisher: publishes retry and dead-letter copies.
        settler: sends settlements (one is made when not given).
        declarer: declares a queue of the framework's own again before a held move's next try.
        watcher: told of arrivals, bulks, ``handle`` calls and settlements
            (more can be added with :meth:`BulkEngine.watch`).
        on_exit_request: called once with each ``SystemExit`` / ``KeyboardInterrupt``
            that ``handle`` raised, after its bulk is settled: the caller starts a
            graceful stop. The engine itself keeps running.
        reconnect_max_delay: the longest pause between tries of a held move, in seconds.
        cancel_grace: seconds a cancelled ``handle`` call (timed out, or the worker
            cancelled) may take to end before it is abandoned.
        consumer_timeout: the broker's delivery timeout in seconds: messages held
            while the sink is unavailable are given back after half of it.
    """

    clock: Clock
    log: EventLog
    publisher: MovePublisher
    settler: Settler | None = None
    declarer: QueueDeclarer | None = None
    watcher: Watcher | None = None
    on_exit_request: ExitRequestCallback | None = None
    reconnect_max_delay: float = 30.0
    cancel_grace: float = CANCEL_GRACE
    consumer_timeout: float = DEFAULT_CONSUMER_TIMEOUT


def build_engine(settings: ConsumerSettings, handler: Handler, config: EngineConfig) -> BulkEngine:
    """The engine of one consumer, each collaborator built once, before those that use it."""
    wake = asyncio.Event()
    watchers = Watchers([] if config.watcher is None else [config.watcher])
    outage = OutageGuard(settings, config.clock, wake.set, consumer_timeout=config.consumer_timeout)
    buffers, sizer = sized_buffers(settings, config.clock, wake.set, outage, watchers)
    judge = build_judge(settings, handler, config, watchers)
    handling = build_handling(settings, handler, config, watchers, outage)
    bulks = BulkTasks(settings, KeyTurns(settings), wake.set)
    due = DueBulks(buffers=buffers, turns=bulks.turns, judge=judge, outage=outage, wake=wake.set)
    return BulkEngine(
        settings=settings,
        clock=config.clock,
        wake=wake,
        buffers=buffers,
        outage=outage,
        judge=judge,
        handling=handling,
        reception=Reception(
            judge=judge, outage=outage, handling=handling, buffers=buffers, wake=wake.set
        ),
        due=due,
        bulks=bulks,
        pausing=Pausing(
            outage=outage, judge=judge, buffers=buffers, due=due, clock=config.clock, wake=wake.set
        ),
        adaptive_size=sizer,
    )


def sized_buffers(
    settings: ConsumerSettings,
    clock: Clock,
    wake: Callable[[], None],
    outage: OutageGuard,
    watchers: Watchers,
) -> tuple[Buffers, AdaptiveSize | None]:
    """The buffers by key, cut at ``bulk_size``, or at the target of a sizer watching calls."""
    key_of = key_function(settings.group_by)
    if not settings.adaptive_bulk_size:
        return Buffers(settings, clock, wake, key_of), None
    # The buffers are made next; the sizer calls them only when a call has ended.
    sizer = AdaptiveSize.of(settings, is_outage=outage.is_outage, on_change=lambda: buffers.recut())
    buffers = Buffers(settings, clock, wake, key_of, target=lambda: sizer.target)
    watchers.add(sizer)
    return buffers, sizer


def build_handling(
    settings: ConsumerSettings,
    handler: Handler,
    config: EngineConfig,
    watchers: Watchers,
    outage: OutageGuard,
) -> Handling:
    """What calls ``handle``, bounded, and passes on the exit requests it raised."""
    return Handling(
        settings=settings,
        handler=handler,
        clock=config.clock,
        log=config.log,
        watchers=watchers,
        outage=outage,
        cancel_grace=config.cancel_grace,
        on_exit_request=config.on_exit_request,
    )


def build_judge(
    settings: ConsumerSettings, handler: Handler, config: EngineConfig, watchers: Watchers
) -> Judge:
    """What settles the verdicts, with the mover that carries out retries and dead letters."""
    settler = config.settler or Settler()
    mover = Mover(
        settings,
        publisher=config.publisher,
        settler=settler,
        clock=config.clock,
        log=config.log,
        # A move ends long after the judge below exists: it is looked up then.
        observe=lambda move, kind: judge.moved(move, kind),
        reconnect_max_delay=config.reconnect_max_delay,
        declarer=config.declarer,
    )
    judge = Judge(
        settings=settings,
        settler=settler,
        mover=mover,
        watchers=watchers,
        log=config.log,
        stream=StreamPosition.of(settings, handler),
    )
    return judge
