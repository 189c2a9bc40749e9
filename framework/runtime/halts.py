"""Why an orchestrator stops on its own: a consumer's worker that ended, or an exit request."""

import asyncio

import attrs

from framework.core.abc import EventLog
from framework.errors import BulkworkerError, ExitRequestedError, WorkerCrashedError


@attrs.frozen
class Halt:
    """Why the orchestrator stops on its own: a worker that ended, or an exit request."""

    consumer: str
    cause: str
    error: BaseException | None = None
    exit_code: int | None = None

    def failure(self) -> BulkworkerError:
        if self.exit_code is not None:
            return ExitRequestedError(
                f"{self.consumer}.handle asked to exit ({self.cause})", self.exit_code
            )
        return WorkerCrashedError(
            f"the worker of consumer {self.consumer} ended on its own ({self.cause}); "
            "every consumer was stopped, the log has the details"
        )


class Halts:
    """The reasons to stop, in order; ``halted`` is set by the first that asks for a stop."""

    def __init__(self) -> None:
        self.reasons: list[Halt] = []
        self.halted = asyncio.Event()
        self._reported = 0

    def __repr__(self) -> str:
        return f"<Halts reasons={len(self.reasons)} reported={self._reported}>"

    def __bool__(self) -> bool:
        return bool(self.reasons)

    def halt(self, reason: Halt) -> None:
        """Stop on the orchestrator's own account."""
        self.reasons.append(reason)
        self.halted.set()

    def failure(self) -> BulkworkerError:
        """The error for the first reason: what ``serve()`` and ``async with`` raise."""
        return self.reasons[0].failure()

    def worker_done(self, consumer: str, worker: "asyncio.Task[None]", stopping: bool) -> None:
        """A consumer's worker ended: a stop ends the workers; anything else is a dead consumer."""
        if worker.cancelled():
            cause, error = "cancelled", None
        else:
            error = worker.exception()
            cause = describe(error) if error is not None else "returned"
        if not stopping:
            self.halt(Halt(consumer, cause, error))
        elif error is not None:
            # Ending with an error while draining is a defect, not a stop.
            self.reasons.append(Halt(consumer, cause, error))

    def exit_requested(self, consumer: str, request: BaseException) -> None:
        """``handle`` raised SystemExit or KeyboardInterrupt: stop, keeping its exit status."""
        self.halt(Halt(consumer, describe(request), None, exit_status(request)))

    async def report(self, log: EventLog | None) -> None:
        """Log each reason once, the first before the stop begins, any later one after it."""
        while log is not None and self._reported < len(self.reasons):
            reason = self.reasons[self._reported]
            self._reported += 1
            extra = {"consumer": reason.consumer, "cause": reason.cause}
            if reason.exit_code is not None:
                await log.warning(
                    "handle asked to exit: stopping",
                    extra={**extra, "exit_code": reason.exit_code},
                )
            else:
                await log.error(
                    "consumer worker ended: stopping", extra=extra, exc_info=reason.error
                )


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__


def exit_status(request: BaseException) -> int:
    """The process exit status ``SystemExit`` or ``KeyboardInterrupt`` asks for."""
    if isinstance(request, KeyboardInterrupt):
        return 130
    if not isinstance(request, SystemExit):
        return 1
    if request.code is None:
        return 0
    return request.code if isinstance(request.code, int) else 1
