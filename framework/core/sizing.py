"""The bulk size to aim for: fixed, or adapted to the sink (additive increase, halving).

With ``adaptive_bulk_size`` the target starts at ``bulk_size_min`` (the safe
end: a sink that chokes on big bulks never sees one before the small ones went
well) and moves after each bulk, judged by the first ``handle`` call on the
whole bulk:

- it raised (not an outage) or timed out: the target halves;
- it took longer than ``bulk_latency_target``: the target halves;
- it succeeded on a bulk the target filled (flushed for ``size``): the target
  moves one step (a sixteenth of the range, at least 1) on in the direction it
  last moved if the time per message did not rise against the previous such
  bulk, and turns round if it rose. It starts by growing, so it climbs while
  bigger bulks pay and settles around the size with the lowest time per message.

An outage (one of ``outage_errors``, ``SinkUnavailable``) says nothing about
the sink's latency: the breaker pauses the consumer, the target stays where it
was. A timeout halves even when ``HandlerTimeoutError`` is named an outage: it
is the plainest sign that the bulk was too big. Bulks that went for another
reason (interval, bytes, pressure, shutdown) never grow it: the target was not
what limited them. The target always stays between ``bulk_size_min`` and
``bulk_size``.
"""

from collections.abc import Callable

from framework.core.consumer import ConsumerSettings
from framework.core.watch import CallOutcome, FlushReason, HandleEnd, Watcher
from framework.errors import HandlerTimeoutError

# The range from bulk_size_min to bulk_size is climbed in this many steps.
STEPS = 16

IsOutage = Callable[[BaseException | None], bool]


class AdaptiveSize(Watcher):
    """Moves the bulk size between a floor and a ceiling as ``handle`` calls end.

    Args:
        minimum: the smallest target, and the first.
        maximum: the largest target.
        latency_target: seconds a whole-bulk call may take; None: no limit.
        is_outage: whether an error means the sink is unavailable.
        on_change: called after the target changed.
    """

    def __init__(
        self,
        minimum: int,
        maximum: int,
        *,
        latency_target: float | None = None,
        is_outage: IsOutage = lambda error: False,
        on_change: Callable[[], None] = lambda: None,
    ) -> None:
        self.minimum = minimum
        self.maximum = maximum
        self.step = max(1, (maximum - minimum) // STEPS)
        self.latency_target = latency_target
        self._is_outage = is_outage
        self._on_change = on_change
        self.target = minimum
        self._last_per_message: float | None = None
        self._direction = 1  # +1 growing, -1 shrinking, by the time per message
        self.grown = 0
        self.shrunk = 0

    def __repr__(self) -> str:
        return (
            f"<AdaptiveSize target={self.target} range={self.minimum}..{self.maximum} "
            f"grown={self.grown} shrunk={self.shrunk}>"
        )

    @classmethod
    def of(
        cls, settings: ConsumerSettings, is_outage: IsOutage, on_change: Callable[[], None]
    ) -> "AdaptiveSize":
        minimum = min(settings.bulk_size_min or 1, settings.bulk_size)
        return cls(
            minimum,
            settings.bulk_size,
            latency_target=settings.bulk_latency_target,
            is_outage=is_outage,
            on_change=on_change,
        )

    def call_ended(self, end: HandleEnd) -> None:
        if end.call.messages is not end.call.bulk.messages:
            return  # a part of a bulk being isolated: its first call was judged already
        self.target_after(end)

    def target_after(self, end: HandleEnd) -> int:
        """Judge one whole-bulk call; the target for the bulks after it."""
        if end.outcome is CallOutcome.TIMEOUT or isinstance(end.error, HandlerTimeoutError):
            self._halve()
        elif end.error is not None:
            if isinstance(end.error, Exception) and not self._is_outage(end.error):
                self._halve()  # an exit request or a cancellation is not the sink's answer
        elif self.latency_target is not None and end.seconds > self.latency_target:
            self._halve()
        elif end.call.bulk.reason is FlushReason.SIZE:
            self._follow_time_per_message(end.seconds / max(1, end.call.bulk.size))
        return self.target

    def _follow_time_per_message(self, per_message: float) -> None:
        last, self._last_per_message = self._last_per_message, per_message
        if last is not None and per_message > last:
            self._direction = -self._direction  # the last step made it worse: undo it
        self._move_to(self.target + self._direction * self.step)

    def _halve(self) -> None:
        # The next size is far from the last: compare afresh, growing again.
        self._last_per_message = None
        self._direction = 1
        self._move_to(self.target // 2)

    def _move_to(self, target: int) -> None:
        target = max(self.minimum, min(self.maximum, target))
        if target == self.target:
            return
        if target > self.target:
            self.grown += 1
        else:
            self.shrunk += 1
        self.target = target
        self._on_change()
