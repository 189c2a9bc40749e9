"""The messages waiting for their bulk: one buffer per key, each with its own flush timer.

Without ``group_by`` there is one key and one buffer. With it, each key fills a
bulk of its own: ``bulk_size`` and ``flush_interval`` apply per key, the
interval counted from that key's first message. Every buffered message holds
one of the consumer's ``prefetch`` slots, so when they are all taken and no
bulk is due, the key holding the oldest message is handed over at once
(``pressure``): a long tail of keys never stops consumption.

Each buffer keeps the cut of its next bulk as messages come: how many of its
first messages the next bulk takes, their bytes, and whether it is complete —
``size`` when it holds the target number of messages, ``bytes`` when
``max_bulk_bytes`` is reached or the next message would pass it (a message
larger than the limit makes a bulk of its own). Bytes are the bodies as
received, ``len(message.raw)``.
"""

import itertools
from collections import deque
from collections.abc import Callable, Hashable, Iterator, Set
from typing import Any

import attrs

from framework.core.abc import Clock, Timer
from framework.core.consumer import ConsumerSettings
from framework.core.message import Message
from framework.core.watch import FlushReason

KeyOf = Callable[[Message[Any]], Hashable]
TargetSize = Callable[[], int]
NO_KEY = object()


@attrs.frozen
class BufferSetup:
    """What every key's buffer of one consumer shares.

    Its settings, the clock its flush timers run on, the wake-up of the
    engine's worker, and the target size a bulk fills to.
    """

    settings: ConsumerSettings
    clock: Clock
    wake: Callable[[], None]
    target: TargetSize


class Buffer:
    """One key's buffered messages, the times they came, and the key's flush timer."""

    def __init__(self, key: Hashable, setup: BufferSetup) -> None:
        self.key = key
        self._setup = setup
        self.messages: deque[Message[Any]] = deque()
        self.arrivals: deque[float] = deque()
        self._timer: Timer | None = None
        self.due = False
        self.reason = FlushReason.INTERVAL
        # The next bulk: its first `cut` messages, `cut_bytes` long, complete once `full`.
        self.cut = 0
        self.cut_bytes = 0
        self.full: FlushReason | None = None

    def __len__(self) -> int:
        return len(self.messages)

    def __repr__(self) -> str:
        return f"<Buffer key={self.key!r} messages={len(self.messages)} due={self.due}>"

    @property
    def oldest(self) -> float:
        return self.arrivals[0]

    def add(self, message: Message[Any]) -> None:
        self.messages.append(message)
        setup = self._setup
        self.arrivals.append(setup.clock.now())
        if self._timer is None and not self.due:
            self._timer = setup.clock.call_later(setup.settings.flush_interval, self._on_deadline)
        if self.full is None:
            self._extend(message, setup.target())  # until full, every message is in the cut
        if self.full is not None:
            setup.wake()

    def _extend(self, message: Message[Any], target: int) -> None:
        """Count ``message``, the one after the cut, into the next bulk if it fits."""
        limit = self._setup.settings.max_bulk_bytes
        size = len(message.raw)
        if limit is not None and self.cut and self.cut_bytes + size > limit:
            self.full = FlushReason.BYTES
            return
        self.cut += 1
        self.cut_bytes += size
        if self.cut >= target:
            self.full = FlushReason.SIZE
        elif limit is not None and self.cut_bytes >= limit:
            self.full = FlushReason.BYTES

    def recut(self) -> bool:
        """Count the next bulk afresh (the front left, or the target moved); True if full."""
        self.cut = self.cut_bytes = 0
        self.full = None
        target = self._setup.target()
        for message in self.messages:
            self._extend(message, target)
            if self.full is not None:
                return True
        return False

    def is_due(self, closing: bool) -> bool:
        return bool(self.messages) and (closing or self.due or self.full is not None)

    def force(self, reason: FlushReason) -> None:
        """Hand this key's partial bulk over without waiting for its interval."""
        if self.messages:
            self.due = True
            self.reason = reason
            self._setup.wake()

    def reason_now(self) -> FlushReason:
        if self.full is not None:
            return self.full
        return self.reason if self.due else FlushReason.SHUTDOWN

    def take(self) -> tuple[list[Message[Any]], FlushReason, float]:
        """The next bulk of this key, why it goes, and how long its first message waited."""
        size = self.cut
        reason = self.reason_now()
        waited = self._setup.clock.now() - self.arrivals[0]
        taken = [self.messages.popleft() for _ in range(size)]
        for _ in range(size):
            self.arrivals.popleft()
        self.recut()
        self.rearm()
        return taken, reason, waited

    def holds_closed(self) -> bool:
        """True if one of the next bulk's messages came on a channel that closed since."""
        checked = None
        for message in itertools.islice(self.messages, self.cut):
            channel = message.delivery.channel
            if channel is not checked:  # a bulk mostly shares one channel: check it once
                if channel.is_closed:
                    return True
                checked = channel
        return False

    def drop_closed(self) -> int:
        """Forget messages of closed channels (the broker redelivers them); how many."""
        kept = [
            (message, arrival)
            for message, arrival in zip(self.messages, self.arrivals, strict=True)
            if not message.delivery.channel.is_closed
        ]
        dropped = len(self.messages) - len(kept)
        self.messages = deque(message for message, _ in kept)
        self.arrivals = deque(arrival for _, arrival in kept)
        self.recut()
        self.rearm()
        return dropped

    def _on_deadline(self) -> None:
        self._timer = None
        self.due = True
        self.reason = FlushReason.INTERVAL
        self._setup.wake()

    def rearm(self) -> None:
        # The flush interval counts from the first message of the next bulk.
        self.cancel_timer()
        self.due = False
        if self.messages:
            clock = self._setup.clock
            delay = self.arrivals[0] + self._setup.settings.flush_interval - clock.now()
            self._timer = clock.call_later(max(0.0, delay), self._on_deadline)

    def cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None


class Buffers:
    """Every key's buffer, in the order the keys first came."""

    def __init__(
        self,
        settings: ConsumerSettings,
        clock: Clock,
        wake: Callable[[], None],
        key_of: KeyOf | None = None,
        target: TargetSize | None = None,
    ) -> None:
        self._setup = BufferSetup(settings, clock, wake, target or (lambda: settings.bulk_size))
        self.key_of = key_of
        self._by_key: dict[Hashable, Buffer] = {}
        self.total = 0

    def __iter__(self) -> Iterator[Buffer]:
        return iter(self._by_key.values())

    def __repr__(self) -> str:
        return f"<Buffers keys={len(self._by_key)} messages={self.total}>"

    def add(self, message: Message[Any], key: Hashable = NO_KEY) -> None:
        buffer = self._by_key.get(key)
        if buffer is None:
            buffer = self._by_key[key] = Buffer(key, self._setup)
        buffer.add(message)
        self.total += 1

    def due(self, closing: bool, waiting: Set[Hashable] = frozenset()) -> Buffer | None:
        """The due buffer whose first message is the oldest, if any is due.

        Keys in ``waiting`` are passed over: a bulk of theirs is being handled.
        """
        due = [
            buffer
            for key, buffer in self._by_key.items()
            if buffer.is_due(closing) and key not in waiting
        ]
        return min(due, key=oldest_first) if due else None

    def take(self, buffer: Buffer) -> tuple[list[Message[Any]], FlushReason, float]:
        taken = buffer.take()
        self.total -= len(taken[0])
        if not buffer.messages:
            del self._by_key[buffer.key]
        return taken

    def recut(self) -> None:
        """The target size moved: count every key's next bulk again."""
        full = [buffer.recut() for buffer in self._by_key.values()]  # every one, no short cut
        if any(full):
            self._setup.wake()

    def relieve(self, occupied: int, waiting: Set[Hashable] = frozenset()) -> None:
        """All prefetch slots taken and nothing due: flush the key holding the oldest message.

        A key in ``waiting`` cannot go now: the oldest of the others goes instead.
        """
        free = [buffer for key, buffer in self._by_key.items() if key not in waiting]
        if free and occupied >= self._setup.settings.prefetch:
            min(free, key=oldest_first).force(FlushReason.PRESSURE)

    def force_all(self, reason: FlushReason) -> None:
        for buffer in self._by_key.values():
            buffer.force(reason)

    def oldest_arrival(self) -> float | None:
        return min((buffer.oldest for buffer in self._by_key.values()), default=None)

    def drop_closed(self) -> int:
        dropped = sum(buffer.drop_closed() for buffer in self._by_key.values())
        self._forget_empty()
        self.total -= dropped
        return dropped

    def _forget_empty(self) -> None:
        for key in [key for key, buffer in self._by_key.items() if not buffer.messages]:
            del self._by_key[key]

    def cancel_timers(self) -> None:
        for buffer in self._by_key.values():
            buffer.cancel_timer()

    def take_everything(self) -> list[Message[Any]]:
        """Empty every buffer: what they held, in the order it came."""
        arrived = [
            (arrival, order, message)
            for order, buffer in enumerate(self._by_key.values())
            for arrival, message in zip(buffer.arrivals, buffer.messages, strict=True)
        ]
        self.cancel_timers()
        self._by_key.clear()
        self.total = 0
        return [message for _, _, message in sorted(arrived, key=lambda item: item[:2])]


def oldest_first(buffer: Buffer) -> float:
    return buffer.oldest


def key_function(group_by: Any) -> KeyOf | None:
    """``group_by`` as a function of a message: itself, or the value of the header it names."""
    if group_by is None:
        return None
    if isinstance(group_by, str):
        header = group_by

        def header_value(message: Message[Any]) -> Hashable:
            value = message.headers.get(header)
            try:
                hash(value)
            except TypeError:
                return repr(value)  # a table or an array header: its text is its key
            return value

        return header_value
    return group_by  # type: ignore[no-any-return]
