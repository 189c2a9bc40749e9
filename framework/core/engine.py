"""The bulk engine: buffers one consumer's messages and hands them over in bulks.

Pure asyncio, no I/O of its own: the transport feeds it messages, a clock
decides when a partial bulk is due, a settler sends the outcomes, and a
publisher carries out retries and dead letters. One worker task hands bulks
to ``handle``: one at a time while the next fills, or up to
``max_concurrent_bulks`` at once, each in a task of its own. Buffers are kept
per ``group_by`` key (see :mod:`framework.core.buffer`); watchers learn every
event (see :mod:`framework.core.watch`).
"""

import asyncio
import datetime
import functools
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import attrs

from framework.core.abc import Clock, EventLog, Handler, MovePublisher, QueueDeclarer
from framework.core.actions import Actions
from framework.core.buffer import NO_KEY, Buffers, key_function
from framework.core.consumer import ConsumerSettings
from framework.core.decoding import body_decoder, undecodable
from framework.core.handler_call import is_exit_request, start_call, stop_call
from framework.core.message import Message
from framework.core.moves import Mover
from framework.core.outage import DEFAULT_CONSUMER_TIMEOUT, OutageGuard
from framework.core.outcome import Move, OutcomeKind, Router, Verdict, describe_error
from framework.core.settlement import SettlementReport, Settler
from framework.core.sizing import AdaptiveSize
from framework.core.stream import StreamPosition
from framework.core.turns import KeyTurns
from framework.core.watch import (
    Bulk,
    BulkDone,
    CallOutcome,
    FlushReason,
    HandleCall,
    HandleEnd,
    Outcome,
    Pause,
    Resume,
    Watcher,
    Watchers,
)
from framework.errors import DecodeError, HandlerTimeoutError

ExitRequestCallback = Callable[[BaseException], None]
# How long a cancelled handle call may take to end before it is abandoned.
CANCEL_GRACE = 1.0


Observer = Callable[[Outcome], None]


class OutcomeObserver(Watcher):
    """A watcher that only cares for settlements."""

    def __init__(self, observer: Observer) -> None:
        self._observer = observer

    def settled(self, outcome: Outcome) -> None:
        self._observer(outcome)


class BulkObserver(Watcher):
    """A watcher that only cares for the lists handed to ``handle``."""

    def __init__(self, observer: Callable[[list[Message[Any]]], None]) -> None:
        self._observer = observer

    def call_started(self, call: HandleCall) -> None:
        self._observer(list(call.messages))


BROKER_KINDS = {
    Actions.ACK: OutcomeKind.ACK,
    Actions.REQUEUE: OutcomeKind.REQUEUE,
    Actions.REJECT: OutcomeKind.REJECT,
}


@attrs.define
class BulkResult:
    """What a bulk's ``handle`` calls came to: the failed messages, and those the outage holds."""

    failures: dict[int, BaseException] = attrs.Factory(dict)
    held: dict[int, Message[Any]] = attrs.Factory(dict)
    outage: str = ""

    def hold(self, messages: Sequence[Message[Any]], why: str, *, undecided: bool) -> None:
        """Hold ``messages`` (only those without a decision of their own when ``undecided``)."""
        for message in messages:
            if not undecided or message.decision is None:
                self.held[id(message)] = message
        self.outage = self.outage or why

    def note_unavailable(self, messages: Sequence[Message[Any]]) -> None:
        """Hold the messages ``handle`` marked with ``unavailable()``."""
        for message in messages:
            if message.sink_unavailable:
                self.held[id(message)] = message
                self.outage = self.outage or (message.decision_reason or "marked unavailable")


class BulkEngine:
    """Collects messages into bulks, calls the handler, settles the results.

    Args:
        settings: the consumer's settings.
        handler: ``handle``; it gets a list of its own for each call.
        clock: when partial bulks are due.
        log: where the engine's events go.
        publisher: publishes retry and dead-letter copies.
        settler: sends settlements (one is made when not given).
        on_exit_request: called once with each ``SystemExit`` / ``KeyboardInterrupt``
            that ``handle`` raised, after its bulk is settled: the caller starts a
            graceful stop. The engine itself keeps running.
        cancel_grace: seconds a cancelled ``handle`` call (timed out, or the worker
            cancelled) may take to end before it is abandoned.
        consumer_timeout: the broker's delivery timeout in seconds: messages held
            while the sink is unavailable are given back after half of it.
        watcher: told of arrivals, bulks, ``handle`` calls and settlements
            (more can be added with :meth:`watch`).
    """

    def __init__(
        self,
        settings: ConsumerSettings,
        handler: Handler,
        *,
        clock: Clock,
        log: EventLog,
        publisher: MovePublisher,
        settler: Settler | None = None,
        reconnect_max_delay: float = 30.0,
        declarer: QueueDeclarer | None = None,
        on_exit_request: ExitRequestCallback | None = None,
        cancel_grace: float = CANCEL_GRACE,
        watcher: Watcher | None = None,
        consumer_timeout: float = DEFAULT_CONSUMER_TIMEOUT,
    ) -> None:
        self.settings = settings
        self._handler = handler
        self._clock = clock
        self._log = log
        self._router = Router(settings)
        self.decode = body_decoder(settings.decoder, settings.model, settings.model_converter())
        self.settler = settler or Settler()
        self._mover = Mover(
            settings,
            publisher=publisher,
            settler=self.settler,
            clock=clock,
            log=log,
            observe=self._moved,
            reconnect_max_delay=reconnect_max_delay,
            declarer=declarer,
        )
        self._on_exit_request = on_exit_request
        self._cancel_grace = cancel_grace
        self.watchers = Watchers([] if watcher is None else [watcher])
        self._consumer_timeout = consumer_timeout
        self.adaptive_size = self._adaptive_size()
        self._start_empty()

    def _start_empty(self) -> None:
        # The worker: woken when a bulk may be due; closing once asked to stop.
        self._wake = asyncio.Event()
        self._buffers = Buffers(
            self.settings,
            self._clock,
            self._wake.set,
            key_function(self.settings.group_by),
            target=None if self.adaptive_size is None else self._adaptive_target,
        )
        self._refusals: set[asyncio.Task[None]] = set()
        self._turns = KeyTurns(self.settings)
        self._closing = False
        self._busy = False
        # With max_concurrent_bulks > 1: the bulks being handled, each in a task of its own.
        self._running: set[asyncio.Task[SettlementReport]] = set()
        self._bulk_failure: BaseException | None = None
        self._exit_requests: list[BaseException] = []
        self._abandoned: set[asyncio.Task[BaseException | None]] = set()
        self._drops_to_report = 0
        self.outage = OutageGuard(
            self.settings, self._clock, self._wake.set, consumer_timeout=self._consumer_timeout
        )
        # A stream is read by offset: where it resumes after a reconnect or a pause.
        self.stream = StreamPosition.of(self.settings, self._handler)
        self.bulks_handled = 0
        self.handle_calls = 0
        self.dropped_closed = 0

    def _adaptive_size(self) -> AdaptiveSize | None:
        if not self.settings.adaptive_bulk_size:
            return None
        # The outage guard is made later; it is looked up when a call ends.
        sizer = AdaptiveSize.of(
            self.settings,
            is_outage=lambda error: self.outage.is_outage(error),
            on_change=lambda: self._buffers.recut(),
        )
        self.watchers.add(sizer)
        return sizer

    def _adaptive_target(self) -> int:
        assert self.adaptive_size is not None
        return self.adaptive_size.target

    @property
    def bulk_size_target(self) -> int:
        """The size bulks are cut at now: ``bulk_size``, or the adaptive target."""
        sizer = self.adaptive_size
        return self.settings.bulk_size if sizer is None else sizer.target

    def __repr__(self) -> str:
        return (
            f"<BulkEngine {self.settings.name} buffered={self._buffers.total} "
            f"bulks_handled={self.bulks_handled}>"
        )

    @property
    def buffered(self) -> int:
        return self._buffers.total

    @property
    def paused(self) -> bool:
        """The sink is unavailable: no deliveries are taken until a probe gets through."""
        return self.outage.breaker.is_open

    @property
    def abandoned_handlers(self) -> int:
        """``handle`` calls that ignored cancellation and are still running, abandoned."""
        return len(self._abandoned)

    @property
    def idle(self) -> bool:
        """Nothing due, nothing being handled, no copy waiting for its confirm."""
        return (
            not self._busy and not self._running and not self.moves_pending and not self._due_now()
        )

    def _due_now(self) -> bool:
        return self._buffers.due(self._closing) is not None

    def watch(self, watcher: Watcher) -> None:
        """Tell ``watcher`` of every event from now on."""
        self.watchers.add(watcher)

    def observe(self, observer: Observer) -> None:
        """Call ``observer`` with the outcome of every message settled from now on."""
        self.watch(OutcomeObserver(observer))

    def observe_bulks(self, observer: Callable[[list[Message[Any]]], None]) -> None:
        """Call ``observer`` with every list of messages handed to ``handle`` from now on."""
        self.watch(BulkObserver(observer))

    @property
    def oldest_buffered_seconds(self) -> float:
        """How long the oldest buffered message has waited; 0 when nothing is buffered."""
        oldest = self._buffers.oldest_arrival()
        return 0.0 if oldest is None else self._clock.now() - oldest

    def flush_now(self) -> None:
        """Hand over the partial bulks without waiting for their flush interval."""
        self._buffers.force_all(FlushReason.FORCED)

    def receive(self, message: Message[Any]) -> Awaitable[None] | None:
        """Record a delivery, decode it and take it in, or return the refusal to await.

        ``message.body`` arrives as the raw bytes. The delivery enters the
        ledger before anything else runs, so no multiple-ack can cover it
        before it is decided; whatever decoding raises dead-letters this
        message alone. The accepting path never awaits, so the transport
        keeps the arrival order.
        """
        self.settler.ledger.track(message.delivery)
        if self.stream is not None and not self.stream.delivered(message):
            return self._credit([message])
        self.watchers.received(message)
        if not self.outage.taking_deliveries:
            return self._give_back([message])  # sent before the pause took effect
        try:
            message.body = self.decode(message.raw, message.content_type)
        except BaseException as error:  # any type: RecursionError, even a decoder's SystemExit
            if is_exit_request(error):
                self._exit_requests.append(error)
            return self.refuse(message, undecodable(error))
        return self._take_in(message)

    def accept(self, message: Message[Any]) -> None:
        """Record a decoded message and take it into the next bulk."""
        self.settler.ledger.track(message.delivery)
        self.watchers.received(message)
        if self.outage.taking_deliveries:
            refusal = self._take_in(message)
        else:
            refusal = self._give_back([message])
        if refusal is not None:
            task = asyncio.ensure_future(refusal)
            self._refusals.add(task)
            task.add_done_callback(self._refusals.discard)

    def _take_in(self, message: Message[Any]) -> Awaitable[None] | None:
        key_of = self._buffers.key_of
        if key_of is None:
            self._buffers.add(message)
            self._seeking_probe_arrival()
            return None
        try:
            key = key_of(message)
            hash(key)
        except Exception as error:  # the user's group_by: this message alone is refused
            reason = f"group_by raised {type(error).__name__}: {error}"
            return self.refuse(message, DecodeError(reason, reason="ungroupable"))
        self._buffers.add(message, key)
        if self._buffers.total + self.moves_pending >= self.settings.prefetch:
            self._wake.set()  # every prefetch slot is taken: a bulk must go
        self._seeking_probe_arrival()
        return None

    def _seeking_probe_arrival(self) -> None:
        if self.outage.seeking_probe:
            self._wake.set()

    async def refuse(self, message: Message[Any], error: DecodeError) -> None:
        """Dead-letter a message that cannot be decoded: it never reaches ``handle``."""
        self.settler.ledger.track(message.delivery)
        if self.settings.dead_letter_queue_for(message.queue) is None:
            # No dead letter will say it: the broker gets the reject, the log says why.
            await self._log.error(
                "message cannot be decoded: rejected to the broker, never handled",
                extra={
                    "consumer": self.settings.name,
                    "queue": message.queue,
                    "message_id": message.message_id,
                    "reason": error.reason,
                    "error": str(error),
                },
            )
        await self._settle([Verdict(message, Actions.REJECT, error.reason, str(error))])
        if self._exit_requests:
            self._pass_exit_requests()

    def drop_closed(self) -> int:
        """Forget buffered messages whose channel closed: the broker redelivers them."""
        dropped = self._buffers.drop_closed()
        self.outage.held = [m for m in self.outage.held if not m.delivery.channel.is_closed]
        self.settler.ledger.forget_closed()
        self.dropped_closed += dropped
        if self._due_now():
            self._wake.set()
        return dropped

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
                if self.outage.breaker.is_open:
                    await self._while_paused()
                else:
                    await self._hand_over_due_bulks()
                if self._bulk_failure is not None:
                    raise self._bulk_failure  # as it would have from an awaited bulk
                if self._drops_to_report:
                    await self._report_drops()
                if self._closing and not self._buffers.total and not self._running:
                    self._buffers.cancel_timers()
                    await self.finish_moves()
                    return
        except asyncio.CancelledError:
            await self._cancel_running()
            raise

    async def _hand_over_due_bulks(self) -> None:
        concurrent = self.settings.max_concurrent_bulks
        while (
            len(self._running) < concurrent
            and not self.outage.breaker.is_open
            and (bulk := self._take_due_bulk()) is not None
        ):
            if concurrent == 1:
                self._busy = True
                try:
                    await self.process(bulk)
                finally:
                    self._busy = False
            else:
                self._turns.start(bulk)
                task = asyncio.create_task(self.process(bulk), name=worker_name())
                self._running.add(task)
                task.add_done_callback(functools.partial(self._turns.finish, bulk))
                task.add_done_callback(self._bulk_finished)

    def _bulk_finished(self, task: "asyncio.Task[SettlementReport]") -> None:
        self._running.discard(task)
        if not task.cancelled() and task.exception() is not None:
            self._bulk_failure = task.exception()
        self._wake.set()  # a slot is free: the next due bulk may go

    async def _cancel_running(self) -> None:
        """The worker is cancelled: so is each bulk it runs; each stops its own handle call."""
        running = list(self._running)
        for task in running:
            task.cancel()
        if running:
            await asyncio.wait(running, timeout=self._cancel_grace + 1.0)

    def _take_due_bulk(self) -> Bulk | None:
        waiting = self._turns.busy
        buffer = self._buffers.due(self._closing, waiting)
        if buffer is None:
            self._buffers.relieve(self._buffers.total + self.moves_pending, waiting)
            buffer = self._buffers.due(self._closing, waiting)
            if buffer is None:
                return None
        if buffer.holds_closed():
            # Its channel died before the transport noticed: the broker redelivers them.
            self._drops_to_report += self.drop_closed()
            return self._take_due_bulk()
        messages, reason, waited = self._buffers.take(buffer)
        if self.stream is not None:
            messages = self._skip_settled(messages)
            if not messages:
                return self._take_due_bulk()
        key = None if buffer.key is NO_KEY else buffer.key
        bulk = Bulk(self.settings.name, messages, reason, waited, key)
        self.watchers.bulk_taken(bulk)
        return bulk

    async def _report_drops(self) -> None:
        dropped, self._drops_to_report = self._drops_to_report, 0
        await self._log.warning(
            "buffered messages of a closed channel dropped: the broker redelivers them",
            extra={"consumer": self.settings.name, "dropped": dropped},
        )

    async def process(self, bulk: Bulk, *, probe: bool = False) -> SettlementReport:
        """Call the handler on one bulk and settle every message of it.

        ``handle`` gets a copy of the bulk's messages: whatever it does to its
        list, settlement goes by ``bulk``, each message exactly once. A
        ``probe`` tries the sink while the breaker is open: unless it meets
        the outage again, the consumer resumes.
        """
        started = self._clock.now()
        result = await self._run(bulk)
        self.bulks_handled += 1
        failures, held = result.failures, result.held
        verdicts = [
            self._verdict(m, failures.get(id(m))) for m in bulk.messages if id(m) not in held
        ]
        report, kinds = await self._settle(verdicts)
        seconds = self._clock.now() - started
        self.watchers.bulk_done(BulkDone(bulk, seconds, kinds, bool(failures or held)))
        if held:
            kept = [m for m in bulk.messages if id(m) in held]
            await self._on_outage(kept, result.outage, started - bulk.waited, probe=probe)
        elif probe:
            await self._recovered()
        if self._exit_requests:
            self._pass_exit_requests()
        return report

    async def _while_paused(self) -> None:
        """The breaker is open: give back in time, probe when due, stop when asked."""
        outage = self.outage
        if self._closing:
            await self._give_back(outage.stop() + self._buffers.take_everything())
            return
        if outage.hold_expired():
            await self._log.info(
                "held messages given back before the broker's consumer timeout",
                extra={"consumer": self.settings.name, "messages": len(outage.held)},
            )
            await self._give_back(outage.release())
        if self._running or not outage.breaker.probe_due():
            return
        if outage.seeking_probe:
            if self._buffers.total:
                self._buffers.force_all(FlushReason.PROBE)
                bulk = self._take_due_bulk()
                if bulk is not None:
                    await self._probe(bulk)
            return
        held = [m for m in outage.release() if not m.delivery.channel.is_closed]
        if held:
            waited = self._clock.now() - outage.delivered_at
            await self._probe(Bulk(self.settings.name, held, FlushReason.PROBE, waited))
            return
        outage.seeking_probe = True  # nothing held: the next delivery is the probe
        await outage.intake.resume()

    async def _probe(self, bulk: Bulk) -> None:
        self.outage.breaker.probes += 1
        for message in bulk.messages:
            message.forget_decision()
        self._busy = True
        try:
            await self.process(bulk, probe=True)
        finally:
            self._busy = False

    async def _on_outage(
        self, held: list[Message[Any]], error: str, delivered_at: float, *, probe: bool
    ) -> None:
        """The sink is unavailable: pause, hold ``held`` for the probe, give back the rest."""
        outage = self.outage
        if outage.breaker.is_open and not probe:
            await self._give_back(held)  # a bulk that ran beside the one that tripped it
            return
        first = not outage.breaker.is_open
        consuming = first or outage.seeking_probe
        wait = outage.trip(error)
        if self._closing:
            await self._give_back(held)
        else:
            outage.hold(held, delivered_at)
        if consuming:
            await outage.intake.pause()
        await self._give_back(self._buffers.take_everything())
        extra = {
            "consumer": self.settings.name,
            "error": error,
            "held": len(outage.held),
            "next_probe_in": round(wait, 3),
            "next_probe_at": wall_time_in(wait),
        }
        if first:
            await self._log.warning("sink unavailable: consumer paused", extra=extra)
            self.watchers.paused(Pause(self.settings.name, error, wait, len(outage.held)))
        else:
            await self._log.info("probe failed: sink still unavailable", extra=extra)

    async def _recovered(self) -> None:
        probes = self.outage.breaker.probes
        lasted = self.outage.close()
        await self.outage.intake.resume()
        await self._log.warning(
            "sink available again: consumer resumed",
            extra={"consumer": self.settings.name, "paused_seconds": round(lasted, 3)},
        )
        self.watchers.resumed(Resume(self.settings.name, lasted, probes))
        self._wake.set()

    async def _give_back(self, messages: Sequence[Message[Any]]) -> None:
        """Requeue ``messages`` to the broker: not handled, not counted as an attempt.

        A stream takes nothing back: they are acked for credit only, and read
        again from the stream position, which stays before them.
        """
        if not messages:
            return
        action = Actions.ACK if self.stream is not None else Actions.REQUEUE
        report = await self.settler.settle([(m.delivery, action) for m in messages])
        if self.watchers.members:
            name = self.settings.name
            for message in messages:
                self._tell(
                    Outcome(message, OutcomeKind.REQUEUE, "sink-unavailable", None, None, name)
                )
        await self._warn_stale(report)

    def _skip_settled(self, messages: list[Message[Any]]) -> list[Message[Any]]:
        """Leave out stream messages settled since they arrived (re-read after a reconnect
        while the bulk before them was still being handled): they are acked for credit."""
        assert self.stream is not None
        fresh, settled = self.stream.split(messages)
        if settled:
            task = asyncio.ensure_future(self._credit(settled))
            self._refusals.add(task)
            task.add_done_callback(self._refusals.discard)
        return fresh

    async def _credit(self, messages: Sequence[Message[Any]]) -> None:
        """Ack stream deliveries settled before (read again after a reconnect): credit only."""
        await self.settler.settle([(m.delivery, Actions.ACK) for m in messages])

    def _pass_exit_requests(self) -> None:
        requests, self._exit_requests = self._exit_requests, []
        if self._on_exit_request is not None:
            for request in requests:
                self._on_exit_request(request)

    def _verdict(self, message: Message[Any], error: BaseException | None) -> Verdict:
        default = self.settings.on_exception if error is not None else self.settings.on_success
        action = message.decision or default
        given = message.decision_reason
        if error is None:
            reason = "requeued" if action is Actions.REQUEUE else "rejected"
            return Verdict(message, action, reason, given)
        return Verdict(message, action, "exception", given or describe_error(error))

    async def _run(self, bulk: Bulk) -> BulkResult:
        """Handle ``bulk``: the messages that failed, with their errors, and those held."""
        result = BulkResult()
        error = await self._attempt(bulk, bulk.messages)
        result.note_unavailable(bulk.messages)
        if error is None:
            return result
        if self.outage.is_outage(error):
            # The sink, not the messages: those without a decision wait for it.
            result.hold(bulk.messages, describe_error(error), undecided=True)
            return result
        await self._log_failure(bulk, error)
        if not self.settings.isolate_failures or bulk.size == 1:
            result.failures = {id(m): error for m in bulk.messages if id(m) not in result.held}
            return result
        result = BulkResult()  # every message is handed over again, its decision forgotten
        await self._bisect(bulk, bulk.messages, result)
        failures = result.failures
        await self._log.warning(
            "failures isolated",
            extra={
                "consumer": self.settings.name,
                "bulk_size": bulk.size,
                "failed": len(failures),
                "failed_message_ids": [m.message_id for m in bulk.messages if id(m) in failures][
                    :50
                ],
            },
        )
        return result

    async def _log_failure(self, bulk: Bulk, error: BaseException) -> None:
        await self._log.error(
            "handle raised",
            extra={
                "consumer": self.settings.name,
                "bulk_size": bulk.size,
                "exception": type(error).__name__,
                "exit_requested": is_exit_request(error),
                "on_exception": self.settings.on_exception.name,
                "isolating": self.settings.isolate_failures and bulk.size > 1,
            },
            exc_info=error,
        )

    async def _bisect(self, bulk: Bulk, part: Sequence[Message[Any]], result: BulkResult) -> bool:
        """Run each half again alone; only what still fails alone is a failure.

        False when the sink became unavailable on the way: the half that met
        it and every half not tried yet are held.
        """
        middle = len(part) // 2
        halves = (part[:middle], part[middle:])
        for index, half in enumerate(halves):
            for message in half:
                message.forget_decision()
            error = await self._attempt(bulk, half)
            result.note_unavailable(half)
            if self.outage.is_outage(error):
                assert error is not None
                result.hold(half, describe_error(error), undecided=True)
            elif error is None:
                continue
            elif len(half) == 1:
                if id(half[0]) not in result.held:
                    result.failures[id(half[0])] = error
                continue
            elif await self._bisect(bulk, half, result):
                continue
            for untried in halves[index + 1 :]:
                result.hold(untried, result.outage, undecided=False)
            return False
        return True

    async def _attempt(self, bulk: Bulk, part: Sequence[Message[Any]]) -> BaseException | None:
        """One ``handle`` call on a list of its own; what it raised, or None."""
        self.handle_calls += 1
        call = HandleCall(bulk, part)
        self.watchers.call_started(call)
        started = self._clock.now()
        try:
            error = await self._call(part)
        except asyncio.CancelledError as cancelled:
            # The worker itself is cancelled: the call ends here too, for every watcher.
            seconds = self._clock.now() - started
            self.watchers.call_ended(HandleEnd(call, CallOutcome.ERROR, seconds, cancelled))
            raise
        outcome = CallOutcome.SUCCESS if error is None else CallOutcome.ERROR
        if isinstance(error, HandlerTimeoutError):
            outcome = CallOutcome.TIMEOUT
        self.watchers.call_ended(HandleEnd(call, outcome, self._clock.now() - started, error))
        return error

    async def _call(self, part: Sequence[Message[Any]]) -> BaseException | None:
        timeout = self.settings.handler_timeout
        call = start_call(self._handler, list(part))
        try:
            await asyncio.wait((call,), timeout=timeout)
        except asyncio.CancelledError:
            # The worker itself is cancelled (abort): never wait unboundedly for handle.
            await self._stop_call(call, self._cancel_grace, len(part))
            raise
        if call.done():
            error = call.result()
            if is_exit_request(error):
                assert error is not None
                self._exit_requests.append(error)
            return error
        assert timeout is not None
        await self._stop_call(call, min(self._cancel_grace, timeout), len(part))
        return HandlerTimeoutError(f"handle took longer than handler_timeout={timeout:g}s")

    async def _stop_call(
        self, call: "asyncio.Task[BaseException | None]", grace: float, bulk_size: int
    ) -> None:
        if await stop_call(call, grace):
            return
        # It swallowed the cancellation: keep a reference, stop waiting for it.
        self._abandoned.add(call)
        call.add_done_callback(self._abandoned.discard)
        await self._log.error(
            "handle ignored cancellation: its call is abandoned and still running",
            extra={
                "consumer": self.settings.name,
                "bulk_size": bulk_size,
                "seconds": grace,
                "abandoned_handlers": len(self._abandoned),
            },
        )

    async def _settle(
        self, verdicts: list[Verdict]
    ) -> tuple[SettlementReport, dict[OutcomeKind, int]]:
        """Settle what can be settled now, start the moves; what each verdict became."""
        now, moves = self._router.route(verdicts)
        if self.stream is not None:
            self.stream.settled(verdict.message for verdict in verdicts)
        report = await self.settler.settle(now)
        if self.watchers.members:
            by_delivery = {verdict.message.delivery: verdict for verdict in verdicts}
            name = self.settings.name
            for delivery, action in now:
                verdict = by_delivery[delivery]
                kind = BROKER_KINDS[action]
                self._tell(
                    Outcome(verdict.message, kind, verdict.reason, verdict.error, None, name)
                )
        await self._warn_stale(report)
        if moves:
            self._mover.start(moves)
        kinds = Counter(BROKER_KINDS[action] for _, action in now)
        kinds.update(move.kind for move in moves)
        return report, dict(kinds)

    def _tell(self, outcome: Outcome) -> None:
        self.watchers.settled(outcome)

    def _moved(self, move: Move, kind: OutcomeKind) -> None:
        destination = move.routing_key if kind == move.kind else None
        name = self.settings.name
        self._tell(Outcome(move.message, kind, move.reason, move.error, destination, name))

    async def _warn_stale(self, report: SettlementReport) -> None:
        if report.stale:
            await self._log.warning(
                "channel closed before settlement: messages will be redelivered",
                extra={"consumer": self.settings.name, "messages": report.stale},
            )

    async def finish_moves(self) -> None:
        """Wait for retries and dead letters: confirms, and held moves until they succeed."""
        await self._mover.finish()

    async def abandon_moves(self) -> None:
        """Stop moving: held and unconfirmed originals stay unacked; the broker requeues them."""
        await self._mover.abandon()

    @property
    def moves_pending(self) -> int:
        """Retry and dead-letter copies not yet carried out (unconfirmed or held)."""
        return self._mover.pending


def wall_time_in(seconds: float) -> str:
    """The wall-clock time ``seconds`` from now, for log lines people read."""
    moment = datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)
    return moment.isoformat(timespec="seconds")


def worker_name() -> str | None:
    """The current task's name, for the tasks it starts (logs and tracebacks show whose)."""
    task = asyncio.current_task()
    return None if task is None else task.get_name()
