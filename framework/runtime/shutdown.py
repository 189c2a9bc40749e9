"""How a stop shares ``BULKWORKER_SHUTDOWN_TIMEOUT`` between its steps.

Every step of a stop has a limit of its own, and the limits add up to the
shutdown timeout plus :data:`ABANDON_GRACE`: a stop is bounded even when every
step hits its limit (a handler that ignores cancellation, a broker that never
answers a close).
"""

import attrs

from framework.amqp.connection import close_timeout

# How long a cancelled task (a worker, the start) gets to end before it is
# abandoned: user code that swallows cancellation never ends on its own.
ABANDON_GRACE = 1.0


@attrs.frozen
class ShutdownBudget:
    """The limit of each step of a stop, in seconds.

    The steps run one after the other: ``drain`` (the running bulk and the
    buffered partial bulk are handled and settled), ``abandon`` (workers still
    running are cancelled, and abandoned if they ignore it), ``hooks``
    (shutdown hooks), ``channels`` (channel closes), ``connections``
    (connection closes). Their sum is ``timeout + ABANDON_GRACE``.
    """

    timeout: float

    @property
    def reserve(self) -> float:
        """One closing step: shutdown hooks, channel closes or connection closes."""
        return close_timeout(self.timeout)

    @property
    def drain(self) -> float:
        return max(0.0, self.timeout - 3 * self.reserve)

    @property
    def abandon(self) -> float:
        return ABANDON_GRACE

    @property
    def hooks(self) -> float:
        return self.reserve

    @property
    def channels(self) -> float:
        return self.reserve

    @property
    def connections(self) -> float:
        return self.reserve

    @property
    def total(self) -> float:
        """The longest a stop can take."""
        return self.drain + self.abandon + self.hooks + self.channels + self.connections
