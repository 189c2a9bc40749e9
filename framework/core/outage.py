"""What a consumer holds while its sink is down, and when it must let go of it.

The engine's breaker (:mod:`framework.core.breaker`) decides when to probe;
this keeps the bulk that failed, to try it again as the probe, and the
consumer's intake, paused while the breaker is open. The broker closes a
channel whose delivery stays unacked past its ``consumer_timeout`` (30 min by
default): held messages are given back (requeued) after half of it, and the
next probe takes a fresh bulk from the queue instead.
"""

import random
from collections.abc import Callable, Sequence
from typing import Any

from framework.core.abc import Clock, Intake, NoIntake, Timer
from framework.core.breaker import Backoff, Breaker
from framework.core.consumer import ConsumerSettings
from framework.core.message import Message
from framework.errors import HandlerTimeoutError, SinkUnavailable

# RabbitMQ's own default consumer_timeout, in seconds.
DEFAULT_CONSUMER_TIMEOUT = 1800.0
# Held messages are given back after this share of the consumer timeout.
HOLD_SHARE = 0.5


class OutageGuard:
    """The breaker, the held probe bulk, and the consumer's intake while the sink is down."""

    def __init__(
        self,
        settings: ConsumerSettings,
        clock: Clock,
        wake: Callable[[], None],
        *,
        consumer_timeout: float = DEFAULT_CONSUMER_TIMEOUT,
        random_source: Callable[[], float] = random.random,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._wake = wake
        backoff = Backoff(
            settings.outage_backoff, settings.outage_backoff_max, random=random_source
        )
        self.breaker = Breaker(clock, backoff)
        self.intake: Intake = NoIntake()
        self.hold_limit = consumer_timeout_of(settings, consumer_timeout) * HOLD_SHARE
        self.held: list[Message[Any]] = []
        self.delivered_at = 0.0  # when the oldest held message was delivered
        self._held_until: float | None = None
        self._probe_timer: Timer | None = None
        self._hold_timer: Timer | None = None
        # Consuming again while still open, to find a fresh bulk to probe with.
        self.seeking_probe = False

    def __repr__(self) -> str:
        return f"<OutageGuard {self.breaker.state} held={len(self.held)}>"

    def is_outage(self, error: BaseException | None) -> bool:
        """Whether ``error`` from ``handle`` means the sink is unavailable."""
        if error is None:
            return False
        if isinstance(error, SinkUnavailable):
            return True
        if isinstance(error, HandlerTimeoutError):
            return HandlerTimeoutError in self._settings.outage_errors
        return isinstance(error, self._settings.outage_errors)

    @property
    def taking_deliveries(self) -> bool:
        """Deliveries may join the buffer: closed, or looking for a probe bulk."""
        return not self.breaker.is_open or self.seeking_probe

    def trip(self, error: str) -> float:
        """Open (or keep open) the breaker and schedule the next probe; its wait."""
        wait = self.breaker.trip(error)
        self.seeking_probe = False
        self._cancel(self._probe_timer)
        self._probe_timer = self._clock.call_later(wait, self._wake)
        return wait

    def hold(self, messages: Sequence[Message[Any]], delivered_at: float) -> None:
        """Keep ``messages`` for the next probe; give them back before the broker's timeout."""
        self.held = list(messages)
        self.delivered_at = delivered_at
        self._held_until = delivered_at + self.hold_limit
        self._cancel(self._hold_timer)
        delay = max(0.0, self._held_until - self._clock.now())
        self._hold_timer = self._clock.call_later(delay, self._wake)

    def hold_expired(self) -> bool:
        return (
            bool(self.held)
            and self._held_until is not None
            and self._clock.now() >= self._held_until
        )

    def release(self) -> list[Message[Any]]:
        """Stop holding: what was held, for the engine to give back or to probe with."""
        held, self.held = self.held, []
        self._held_until = None
        self._cancel(self._hold_timer)
        self._hold_timer = None
        return held

    def close(self) -> float:
        """A probe got through: how long the outage lasted."""
        self.seeking_probe = False
        self._cancel(self._probe_timer)
        self._probe_timer = None
        return self.breaker.close()

    def stop(self) -> list[Message[Any]]:
        """The consumer stops: no more probes; what was held, to give back."""
        self._cancel(self._probe_timer)
        self._probe_timer = None
        return self.release()

    @staticmethod
    def _cancel(timer: Timer | None) -> None:
        if timer is not None:
            timer.cancel()


def consumer_timeout_of(settings: ConsumerSettings, deployment: float) -> float:
    """The broker's delivery timeout for this consumer's queues, in seconds.

    A queue declared with ``x-consumer-timeout`` (RabbitMQ 3.12+, milliseconds)
    says it itself; otherwise the deployment's ``BULKWORKER_CONSUMER_TIMEOUT``.
    """
    declared = settings.queue_arguments.get("x-consumer-timeout")
    if isinstance(declared, int | float) and not isinstance(declared, bool) and declared > 0:
        return min(deployment, declared / 1000.0)
    return deployment
