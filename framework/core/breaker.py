"""A consumer's circuit breaker: the sink is down, so stop, wait, probe, resume.

An outage is not a poison message. While the breaker is open the consumer
takes no deliveries; after each backoff step it tries one bulk again, the
probe, and a probe that gets through closes the breaker. The waits double from
``outage_backoff`` up to ``outage_backoff_max``, each stretched by up to a
quarter at random (so workers that failed together do not probe together, and
no probe ever comes sooner than its step).
"""

import enum
import random
from collections.abc import Callable

import attrs

from framework.core.abc import Clock

# Each wait is its step times 1 to 1 + JITTER.
JITTER = 0.25
# 2 ** 64 seconds is long enough: the exponent stops growing there.
MAX_DOUBLINGS = 64


class BreakerState(enum.StrEnum):
    """Whether a consumer takes deliveries."""

    CLOSED = "closed"  # consuming
    OPEN = "open"  # paused: the sink is unavailable, a probe comes after the backoff


@attrs.define
class Backoff:
    """Capped exponential waits with upward jitter: ``initial``, twice that, … ``maximum``."""

    initial: float
    maximum: float
    jitter: float = JITTER
    random: Callable[[], float] = random.random
    steps: int = 0

    def step(self) -> float:
        """The next step without jitter, and count it."""
        seconds = min(self.maximum, self.initial * 2.0 ** min(self.steps, MAX_DOUBLINGS))
        self.steps += 1
        return seconds

    def next_wait(self) -> float:
        """The next wait: the step, stretched by up to ``jitter`` of itself."""
        return self.step() * (1.0 + self.jitter * self.random())

    def reset(self) -> None:
        self.steps = 0


@attrs.define
class Breaker:
    """Open or closed, since when, and the counts the metrics and logs show."""

    clock: Clock
    backoff: Backoff
    state: BreakerState = BreakerState.CLOSED
    opened_at: float | None = None
    next_probe_at: float | None = None
    outages: int = 0
    probes: int = 0
    error: str | None = None
    _paused_before: float = 0.0  # seconds paused in outages that ended

    @property
    def is_open(self) -> bool:
        return self.state is BreakerState.OPEN

    @property
    def paused_seconds(self) -> float:
        """Seconds paused in every outage so far, the current one included."""
        current = 0.0 if self.opened_at is None else self.clock.now() - self.opened_at
        return self._paused_before + current

    def trip(self, error: str) -> float:
        """The sink failed (again): stay or become open; seconds until the next probe."""
        if not self.is_open:
            self.state = BreakerState.OPEN
            self.opened_at = self.clock.now()
            self.outages += 1
            self.backoff.reset()
        self.error = error
        wait = self.backoff.next_wait()
        self.next_probe_at = self.clock.now() + wait
        return wait

    def probe_due(self) -> bool:
        return (
            self.is_open
            and self.next_probe_at is not None
            and self.clock.now() >= self.next_probe_at
        )

    def close(self) -> float:
        """A probe got through: closed again; how long this outage lasted."""
        if self.opened_at is None:
            return 0.0
        lasted = self.clock.now() - self.opened_at
        self._paused_before += lasted
        self.state = BreakerState.CLOSED
        self.opened_at = self.next_probe_at = None
        self.error = None
        return lasted
