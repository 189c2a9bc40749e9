"""Settling deliveries with the broker: each exactly once, acks coalesced where safe.

``basic.ack(multiple=True)`` acks *every* unsettled tag up to the one given on
its channel, including messages still buffered or in another bulk. So the
ledger records every delivery in tag order from arrival to settlement, and a
multiple ack only ever covers the leading run of unsettled tags that are all
being acked now. That holds however many bulks of one channel are in flight.
A decision for a tag the ledger no longer holds (settled already, or never
tracked) is not sent at all: each tag is settled at most once.
"""

import asyncio
import contextlib
from collections.abc import Iterable, Sequence

import attrs

from framework.core.abc import SettlementChannel
from framework.core.actions import Actions
from framework.core.closing import unless_closed
from framework.core.message import Delivery

# Settlement frames are tiny: a live connection takes them at once. Longer than
# this means the connection is wedged, and the broker will redeliver.
SEND_TIMEOUT = 30.0


@attrs.define
class Ledger:
    """Unsettled delivery tags per channel, in the order they arrived."""

    _unsettled: dict[SettlementChannel, dict[int, None]] = attrs.field(factory=dict)

    def track(self, delivery: Delivery) -> None:
        tags = self._unsettled.get(delivery.channel)
        if tags is None:
            tags = self._unsettled[delivery.channel] = {}
        tags[delivery.tag] = None

    def discard(self, delivery: Delivery) -> bool:
        """Stop tracking ``delivery``; False if it was not unsettled (settled, or never seen)."""
        tags = self._unsettled.get(delivery.channel)
        if tags is None or delivery.tag not in tags:
            return False
        del tags[delivery.tag]
        return True

    def forget(self, channel: SettlementChannel) -> None:
        self._unsettled.pop(channel, None)

    def forget_closed(self) -> None:
        for channel in [channel for channel in self._unsettled if channel.is_closed]:
            self.forget(channel)

    def unsettled_count(self) -> int:
        return sum(len(tags) for tags in self._unsettled.values())

    def take_leading_run(self, channel: SettlementChannel, tags: set[int]) -> list[int]:
        """Remove and return the lowest unsettled tags of ``channel`` while all are in ``tags``."""
        unsettled = self._unsettled.get(channel, {})
        run = []
        for tag in unsettled:
            if tag not in tags:
                break
            run.append(tag)
        for tag in run:
            del unsettled[tag]
        return run


@attrs.define
class SettlementReport:
    """What one settlement sent.

    ``stale`` counts deliveries of closed channels; ``unknown`` counts decisions
    for tags the ledger does not hold as unsettled (already settled, or never
    tracked): those are never sent, so no tag is settled twice.
    """

    acked: int = 0
    requeued: int = 0
    rejected: int = 0
    stale: int = 0
    unknown: int = 0
    ack_frames: int = 0

    @property
    def sent(self) -> int:
        return self.acked + self.requeued + self.rejected

    def add(self, other: "SettlementReport") -> None:
        self.acked += other.acked
        self.requeued += other.requeued
        self.rejected += other.rejected
        self.stale += other.stale
        self.unknown += other.unknown
        self.ack_frames += other.ack_frames


@attrs.define
class Settler:
    """Sends the decisions of settled work to the channels the messages came on."""

    ledger: Ledger = attrs.field(factory=Ledger)
    # What sending on a channel that closed under us raises: the AMQP layer
    # passes its client's errors; ChannelGoneError is a ConnectionError.
    gone_errors: tuple[type[BaseException], ...] = (ConnectionError,)
    # Frames must reach the channel in the order the ledger was updated: a
    # multiple ack sent before an earlier reject would ack that message too.
    _sending: asyncio.Lock = attrs.field(factory=asyncio.Lock)

    async def settle(self, outcomes: Iterable[tuple[Delivery, Actions]]) -> SettlementReport:
        report = SettlementReport()
        for channel, decisions in group_by_channel(outcomes).items():
            part = SettlementReport()
            if not channel.is_closed:
                async with self._sending:
                    with contextlib.suppress(*self.gone_errors):
                        await unless_closed(
                            channel, self._settle_on(channel, decisions, part), SEND_TIMEOUT
                        )
            part.stale = len(decisions) - part.sent - part.unknown
            if part.stale:
                # The broker requeues whatever a closed channel held; a tag sent
                # on any other channel could settle a different message.
                self.ledger.forget(channel)
            report.add(part)
        return report

    async def _settle_on(
        self,
        channel: SettlementChannel,
        decisions: Sequence[tuple[int, Actions]],
        report: SettlementReport,
    ) -> None:
        acks: set[int] = set()
        for tag, action in decisions:
            if action is Actions.ACK:
                report.unknown += tag in acks
                acks.add(tag)
                continue
            # Refusals first: once they leave the ledger the run of acks behind them grows.
            if not self.ledger.discard(Delivery(channel, tag)):
                report.unknown += 1
                continue
            await channel.basic_reject(tag, requeue=action is Actions.REQUEUE, wait=False)
            if action is Actions.REQUEUE:
                report.requeued += 1
            else:
                report.rejected += 1
        run = self.ledger.take_leading_run(channel, acks)
        if run:
            await channel.basic_ack(run[-1], multiple=len(run) > 1, wait=False)
            report.acked += len(run)
            report.ack_frames += 1
        for tag in sorted(acks.difference(run)):
            if not self.ledger.discard(Delivery(channel, tag)):
                report.unknown += 1
                continue
            await channel.basic_ack(tag, wait=False)
            report.acked += 1
            report.ack_frames += 1


def group_by_channel(
    outcomes: Iterable[tuple[Delivery, Actions]],
) -> dict[SettlementChannel, list[tuple[int, Actions]]]:
    groups: dict[SettlementChannel, list[tuple[int, Actions]]] = {}
    for delivery, action in outcomes:
        groups.setdefault(delivery.channel, []).append((delivery.tag, action))
    return groups
