"""Calling ``handle`` on a bulk: each call bounded, a failed bulk bisected, outages held.

Each call runs in a task of its own on a list of its own, within
``handler_timeout``; a call that ignores its cancellation is abandoned (and
counted), never waited for. With ``isolate_failures``, a failed bulk is
handed over again in halves until only the messages that fail alone are
failures. An error the consumer names an outage (``outage_errors``) holds
the messages without a decision of their own for the breaker's probe.
"""

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import attrs

from framework.core.abc import Clock, EventLog, Handler
from framework.core.consumer import ConsumerSettings
from framework.core.handler_call import is_exit_request, start_call, stop_call
from framework.core.message import Message
from framework.core.outage import OutageGuard
from framework.core.outcome import describe_error
from framework.core.watch import Bulk, CallOutcome, HandleCall, HandleEnd, Watchers
from framework.errors import HandlerTimeoutError

# How long a cancelled handle call may take to end before it is abandoned.
CANCEL_GRACE = 1.0

ExitRequestCallback = Callable[[BaseException], None]


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


@attrs.define(kw_only=True, eq=False, repr=False)
class Handling:
    """Calls one consumer's ``handle``, and keeps what its calls leave behind.

    ``exit_requests`` collects each ``SystemExit`` / ``KeyboardInterrupt``
    ``handle`` (or a decoder) raised, passed on to ``on_exit_request`` once its
    bulk is settled; ``abandoned`` holds the calls that ignored their cancellation.
    """

    _settings: ConsumerSettings
    _handler: Handler
    _clock: Clock
    _log: EventLog
    watchers: Watchers
    _outage: OutageGuard
    cancel_grace: float = CANCEL_GRACE
    _on_exit_request: ExitRequestCallback | None = None
    handle_calls: int = attrs.field(default=0, init=False)
    exit_requests: list[BaseException] = attrs.field(factory=list, init=False)
    abandoned: set["asyncio.Task[BaseException | None]"] = attrs.field(factory=set, init=False)

    def __repr__(self) -> str:
        return f"<Handling calls={self.handle_calls} abandoned={len(self.abandoned)}>"

    def pass_exit_requests(self) -> None:
        """Pass on the exit requests collected so far, each once: what raised them is settled."""
        if not self.exit_requests:
            return
        requests = list(self.exit_requests)
        self.exit_requests.clear()
        if self._on_exit_request is not None:
            for request in requests:
                self._on_exit_request(request)

    async def run(self, bulk: Bulk) -> BulkResult:
        """Handle ``bulk``: the messages that failed, with their errors, and those held."""
        result = BulkResult()
        error = await self.attempt(bulk, bulk.messages)
        result.note_unavailable(bulk.messages)
        if error is None:
            return result
        if self._outage.is_outage(error):
            # The sink, not the messages: those without a decision wait for it.
            result.hold(bulk.messages, describe_error(error), undecided=True)
            return result
        await self._log_failure(bulk, error)
        if not self._settings.isolate_failures or bulk.size == 1:
            result.failures = {id(m): error for m in bulk.messages if id(m) not in result.held}
            return result
        result = BulkResult()  # every message is handed over again, its decision forgotten
        await self._bisect(bulk, bulk.messages, result)
        failures = result.failures
        await self._log.warning(
            "failures isolated",
            extra={
                "consumer": self._settings.name,
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
                "consumer": self._settings.name,
                "bulk_size": bulk.size,
                "exception": type(error).__name__,
                "exit_requested": is_exit_request(error),
                "on_exception": self._settings.on_exception.name,
                "isolating": self._settings.isolate_failures and bulk.size > 1,
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
            error = await self.attempt(bulk, half)
            result.note_unavailable(half)
            if self._outage.is_outage(error):
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

    async def attempt(self, bulk: Bulk, part: Sequence[Message[Any]]) -> BaseException | None:
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
        timeout = self._settings.handler_timeout
        call = start_call(self._handler, list(part))
        try:
            await asyncio.wait((call,), timeout=timeout)
        except asyncio.CancelledError:
            # The worker itself is cancelled (abort): never wait unboundedly for handle.
            await self._stop_call(call, self.cancel_grace, len(part))
            raise
        if call.done():
            error = call.result()
            if is_exit_request(error):
                assert error is not None
                self.exit_requests.append(error)
            return error
        assert timeout is not None
        await self._stop_call(call, min(self.cancel_grace, timeout), len(part))
        return HandlerTimeoutError(f"handle took longer than handler_timeout={timeout:g}s")

    async def _stop_call(
        self, call: "asyncio.Task[BaseException | None]", grace: float, bulk_size: int
    ) -> None:
        if await stop_call(call, grace):
            return
        # It swallowed the cancellation: keep a reference, stop waiting for it.
        self.abandoned.add(call)
        call.add_done_callback(self.abandoned.discard)
        await self._log.error(
            "handle ignored cancellation: its call is abandoned and still running",
            extra={
                "consumer": self._settings.name,
                "bulk_size": bulk_size,
                "seconds": grace,
                "abandoned_handlers": len(self.abandoned),
            },
        )
