"""The interfaces the engine talks to, in one place: clock, log, channel, copy publisher.

The core implements none of them with I/O. ``framework.amqp`` and
``framework.runtime`` provide the real ones (aiormq channels, the publisher,
aiologger), ``framework.testing`` the fakes.
"""

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from framework.core.message import Message
    from framework.core.outcome import Move

Handler = Callable[[list["Message[Any]"]], Awaitable[None]]


class Timer(Protocol):
    """A scheduled callback that can be called off."""

    def cancel(self) -> None: ...


class Clock(Protocol):
    """Monotonic seconds and callbacks scheduled on them."""

    def now(self) -> float: ...

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer: ...


class EventLog(Protocol):
    """What bulkworker needs of a logger; aiologger's loggers have it."""

    def debug(self, msg: Any, *args: Any, **kwargs: Any) -> Awaitable[Any]: ...

    def info(self, msg: Any, *args: Any, **kwargs: Any) -> Awaitable[Any]: ...

    def warning(self, msg: Any, *args: Any, **kwargs: Any) -> Awaitable[Any]: ...

    def error(self, msg: Any, *args: Any, **kwargs: Any) -> Awaitable[Any]: ...


class SettlementChannel(Protocol):
    """The part of an AMQP channel that settles deliveries (aiormq's ``Channel`` has it)."""

    @property
    def is_closed(self) -> bool: ...

    async def basic_ack(
        self, delivery_tag: int, multiple: bool = False, wait: bool = True
    ) -> None: ...

    async def basic_reject(
        self, delivery_tag: int, *, requeue: bool = True, wait: bool = True
    ) -> None: ...


class MovePublisher(Protocol):
    """Publishes the copy a move describes and waits for the broker's confirm.

    Raises ``PublishError`` (``UnroutableError`` when the destination is gone)
    when the copy was not taken.
    """

    async def publish_move(self, move: "Move") -> None: ...


class QueueDeclarer(Protocol):
    """Declares again a queue the framework declared at start (the AMQP side has it)."""

    async def declare(self, queue: str) -> None: ...


class Intake(Protocol):
    """Starts and stops a consumer's deliveries (the AMQP subscription has it).

    ``pause`` returns once the broker sends nothing more; what arrived before
    stays with the engine, unsettled.
    """

    async def pause(self) -> None: ...

    async def resume(self) -> None: ...


class NoIntake:
    """For engines fed by hand (tests, the harness): pausing stops nothing."""

    async def pause(self) -> None:
        return None

    async def resume(self) -> None:
        return None
