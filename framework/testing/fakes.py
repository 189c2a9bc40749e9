"""Test doubles for the engine: a clock you move, a channel and a publisher that record."""

import asyncio
import heapq
import itertools
import json
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from framework.core.message import Delivery, Message
from framework.core.outcome import Move
from framework.errors import ChannelGoneError


@attrs.define(eq=False)
class FakeTimer:
    when: float
    callback: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeClock:
    """A clock that moves only when told to: flush timing without sleeping."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._timers: list[tuple[float, int, FakeTimer]] = []
        self._order = itertools.count()

    def __repr__(self) -> str:
        return f"<FakeClock now={self._now} pending={self.pending}>"

    @property
    def pending(self) -> int:
        return sum(not timer.cancelled for _, _, timer in self._timers)

    def now(self) -> float:
        return self._now

    def call_later(self, delay: float, callback: Callable[[], None]) -> FakeTimer:
        timer = FakeTimer(self._now + max(0.0, delay), callback)
        heapq.heappush(self._timers, (timer.when, next(self._order), timer))
        return timer

    def next_due(self) -> float | None:
        """When the next callback that is not called off is due; None if there is none."""
        while self._timers and self._timers[0][2].cancelled:
            heapq.heappop(self._timers)
        return self._timers[0][0] if self._timers else None

    def advance(self, seconds: float) -> None:
        """Move time forward, firing due callbacks in order."""
        target = self._now + seconds
        while self._timers and self._timers[0][0] <= target:
            when, _, timer = heapq.heappop(self._timers)
            self._now = max(self._now, when)
            if not timer.cancelled:
                timer.callback()
        self._now = target


class FakeChannel:
    """Records settlements the way the broker would see them, in order."""

    def __init__(self, name: str = "channel") -> None:
        self.name = name
        self.calls: list[tuple[str, int, bool]] = []
        self.closed = False

    def __repr__(self) -> str:
        return f"<FakeChannel {self.name} calls={len(self.calls)} closed={self.closed}>"

    @property
    def is_closed(self) -> bool:
        return self.closed

    async def basic_ack(self, delivery_tag: int, multiple: bool = False, wait: bool = True) -> None:
        self._check_open()
        self.calls.append(("ack", delivery_tag, multiple))

    async def basic_reject(
        self, delivery_tag: int, *, requeue: bool = True, wait: bool = True
    ) -> None:
        self._check_open()
        self.calls.append(("requeue" if requeue else "reject", delivery_tag, False))

    def _check_open(self) -> None:
        # What the AMQP layer's channel errors mean to the engine.
        if self.closed:
            raise ChannelGoneError(f"{self.name} is closed")

    def settled_tags(self, upto_known: int) -> dict[int, str]:
        """Each tag from 1 to ``upto_known`` with the action that settled it."""
        outcome: dict[int, str] = {}
        for action, tag, multiple in self.calls:
            covered = range(1, tag + 1) if multiple else (tag,)
            for covered_tag in covered:
                if covered_tag <= upto_known:
                    outcome.setdefault(covered_tag, action)
        return outcome


class FakePublisher:
    """Records the copies the engine publishes (retries, dead letters); can fail or hold."""

    def __init__(self) -> None:
        self.published: list[tuple[str, bytes, Move]] = []  # (routing key, body, move)
        self.fail_with: Exception | None = None
        # With fail_with: fail only this many more publishes (None: every one).
        self.fail_times: int | None = None
        self.attempts = 0
        self.gate: asyncio.Event | None = None

    def __repr__(self) -> str:
        return f"<FakePublisher published={len(self.published)}>"

    async def publish_move(self, move: Move) -> None:
        if self.gate is not None:
            await self.gate.wait()
        self.attempts += 1
        if self.fail_with is not None and self.fail_times != 0:
            if self.fail_times is not None:
                self.fail_times -= 1
            raise self.fail_with
        self.published.append((move.routing_key, move.message.raw, move))

    def to(self, routing_key: str) -> list[Move]:
        """Each move whose copy was published to ``routing_key`` (its headers, expiration...)."""
        return [properties for key, _, properties in self.published if key == routing_key]


class RecordingLog:
    """An EventLog that keeps every record, for asserting what was logged."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, Any]]] = []

    def _record(self, level: str, msg: Any, **kwargs: Any) -> "Done":
        self.records.append((level, str(msg), dict(kwargs.get("extra") or {})))
        return Done()

    def debug(self, msg: Any, *args: Any, **kwargs: Any) -> "Done":
        return self._record("debug", msg, **kwargs)

    def info(self, msg: Any, *args: Any, **kwargs: Any) -> "Done":
        return self._record("info", msg, **kwargs)

    def warning(self, msg: Any, *args: Any, **kwargs: Any) -> "Done":
        return self._record("warning", msg, **kwargs)

    def error(self, msg: Any, *args: Any, **kwargs: Any) -> "Done":
        return self._record("error", msg, **kwargs)

    def messages(self, level: str) -> list[str]:
        return [msg for record_level, msg, _ in self.records if record_level == level]


class Done:
    """An awaitable that is already finished."""

    def __await__(self) -> Any:
        return iter(())


def make_message(
    body: Any,
    *,
    channel: Any,
    tag: int,
    queue: str = "test",
    headers: Mapping[str, Any] | None = None,
    message_id: str | None = None,
) -> Message[Any]:
    """A message as the transport builds it, for engine tests."""
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Message(
        body=body,
        raw=raw,
        queue=queue,
        routing_key=queue,
        delivery=Delivery(channel, tag),
        headers=dict(headers or {}),
        content_type="application/json",
        message_id=message_id,
    )
