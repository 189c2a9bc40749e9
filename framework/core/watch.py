"""What the engine tells its watchers: arrivals, bulks, ``handle`` calls, settlements.

Logs, metrics, tracing and the test harness all learn what happened from one
place. A watcher subclasses :class:`Watcher` and overrides the events it cares
about; the others stay no-ops, so new events never break an existing watcher.
Watchers are called synchronously on the engine's task and must not block:
anything slow belongs in a task of the watcher's own.
"""

import enum
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any

import attrs

from framework.core.message import Message
from framework.core.outcome import OutcomeKind


class FlushReason(enum.StrEnum):
    """Why a bulk left the buffer."""

    SIZE = "size"  # bulk_size messages arrived (the adaptive target, with adaptive_bulk_size)
    BYTES = "bytes"  # max_bulk_bytes reached, or the next message would pass it
    INTERVAL = "interval"  # the flush interval passed since its first message
    SHUTDOWN = "shutdown"  # the consumer is stopping: what is buffered is handed over
    FORCED = "forced"  # flush_now() asked for it
    PRESSURE = "pressure"  # the buffer holds as many messages as it may
    PROBE = "probe"  # the sink was unavailable: this bulk tries it again


@attrs.frozen
class Outcome:
    """What became of one message: for observers such as the test harness and metrics.

    ``kind`` is one of :class:`OutcomeKind`; ``destination`` is where the copy
    of a retry or dead letter went.
    """

    message: Message[Any]
    kind: OutcomeKind
    reason: str | None = None
    error: str | None = None
    destination: str | None = None
    consumer: str = ""


class CallOutcome(enum.StrEnum):
    """How one ``handle`` call ended."""

    SUCCESS = "success"
    ERROR = "error"
    TIMEOUT = "timeout"


@attrs.frozen
class Bulk:
    """A bulk taken from the buffer, before its first ``handle`` call.

    ``waited`` is how long its first message waited in the buffer, in seconds;
    ``key`` is its messages' ``group_by`` key (None without ``group_by``).
    """

    consumer: str
    messages: Sequence[Message[Any]]
    reason: FlushReason
    waited: float
    key: Hashable = None

    @property
    def size(self) -> int:
        return len(self.messages)

    @property
    def bytes(self) -> int:
        """The bodies' length as received, as ``max_bulk_bytes`` counts them."""
        return sum(len(message.raw) for message in self.messages)


@attrs.frozen
class HandleCall:
    """One ``handle`` call: the whole bulk, or a part of it while failures are isolated."""

    bulk: Bulk
    messages: Sequence[Message[Any]]


@attrs.frozen
class HandleEnd:
    """How a ``handle`` call ended, and after how many seconds."""

    call: HandleCall
    outcome: CallOutcome
    seconds: float
    error: BaseException | None = None


@attrs.frozen
class BulkDone:
    """A bulk whose messages are all decided: what became of them, and how long it took.

    ``seconds`` runs from taking the bulk to its settlement; ``outcomes``
    counts the decisions by kind (retries and dead letters as decided, before
    their copies are confirmed).
    """

    bulk: Bulk
    seconds: float
    outcomes: Mapping[OutcomeKind, int]
    failed: bool


@attrs.frozen
class Pause:
    """A consumer stopped taking deliveries: its sink is unavailable.

    ``error`` is what said so; the first probe comes ``next_probe_in`` seconds later.
    """

    consumer: str
    error: str
    next_probe_in: float
    held: int


@attrs.frozen
class Resume:
    """A probe got through: the consumer takes deliveries again after ``paused`` seconds."""

    consumer: str
    paused: float
    probes: int


@attrs.frozen
class TaskRun:
    """One run of a periodic task: ``outcome`` is ``success`` or ``error``."""

    task: str
    outcome: CallOutcome
    seconds: float
    error: BaseException | None = None


class Watcher:
    """Receives the framework's events; every method is a no-op until overridden."""

    def received(self, message: Message[Any]) -> None:
        """A delivery arrived (before decoding)."""

    def bulk_taken(self, bulk: Bulk) -> None:
        """A bulk left the buffer."""

    def call_started(self, call: HandleCall) -> None:
        """A ``handle`` call is about to start, in the task that starts it."""

    def call_ended(self, end: HandleEnd) -> None:
        """A ``handle`` call ended, in the task that started it."""

    def bulk_done(self, done: BulkDone) -> None:
        """Every message of a bulk is decided."""

    def settled(self, outcome: Outcome) -> None:
        """A message was settled: acked, requeued, rejected, retried or dead-lettered."""

    def paused(self, pause: Pause) -> None:
        """A consumer's breaker opened: it takes no deliveries until a probe gets through."""

    def resumed(self, resume: Resume) -> None:
        """A consumer's breaker closed: it consumes again."""

    def task_ran(self, run: TaskRun) -> None:
        """A periodic task's run ended."""

    def task_skipped(self, task: str) -> None:
        """A periodic task's tick came while its previous run still ran: skipped."""


# The events, in the order Watcher declares them: every public method is one.
EVENTS = tuple(name for name in vars(Watcher) if not name.startswith("_"))


def listens(watcher: Watcher, event: str) -> bool:
    """Whether ``watcher`` does anything with ``event`` (a group always may)."""
    if isinstance(watcher, Watchers):
        return True
    return getattr(type(watcher), event) is not getattr(Watcher, event)


@attrs.define
class Watchers(Watcher):
    """Passes every event on to each watcher that listens to it, in the order they were added.

    Events reach only the watchers that override them: a message passes
    through a few of them per arrival and per settlement, so the no-ops are
    skipped, not called. Its method for each of the :data:`EVENTS` is made
    below the class, all alike.
    """

    members: list[Watcher] = attrs.field(factory=list)
    _listeners: dict[str, list[Any]] = attrs.field(factory=dict, init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        self._sort()

    def add(self, watcher: Watcher) -> None:
        self.members.append(watcher)
        self._sort()

    def _sort(self) -> None:
        self._listeners = {
            event: [getattr(member, event) for member in self.members if listens(member, event)]
            for event in EVENTS
        }


def _passing_on(event: str) -> Callable[[Watchers, Any], None]:
    """The method of :class:`Watchers` for ``event``: each member listening to it is told."""

    def pass_on(self: Watchers, happening: Any) -> None:
        for listener in self._listeners[event]:
            listener(happening)

    pass_on.__name__ = event
    pass_on.__qualname__ = f"Watchers.{event}"
    return pass_on


for _event in EVENTS:
    setattr(Watchers, _event, _passing_on(_event))
del _event


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
