"""Settlement: exactly once, refusals per message, acks coalesced only where safe."""

from framework import Actions
from framework.core.message import Delivery
from framework.core.settlement import Settler
from framework.testing import FakeChannel


def tracked(settler: Settler, channel: FakeChannel, tags: range) -> list[Delivery]:
    deliveries = [Delivery(channel, tag) for tag in tags]
    for delivery in deliveries:
        settler.ledger.track(delivery)
    return deliveries


async def test_contiguous_acks_become_one_multiple_ack() -> None:
    """A bulk of acks that starts at the lowest unsettled tag is one basic.ack(multiple)."""
    channel = FakeChannel()
    settler = Settler()
    deliveries = tracked(settler, channel, range(1, 501))
    report = await settler.settle((d, Actions.ACK) for d in deliveries)
    assert [("ack", 500, True)] == channel.calls
    assert (500, 1) == (report.acked, report.ack_frames)


async def test_refusals_go_first_so_acks_still_coalesce() -> None:
    """A requeue in the middle is sent alone; the acks around it still become one frame."""
    channel = FakeChannel()
    settler = Settler()
    deliveries = tracked(settler, channel, range(1, 11))
    outcomes = [(d, Actions.REQUEUE if d.tag == 5 else Actions.ACK) for d in deliveries]
    outcomes[7] = (deliveries[7], Actions.REJECT)
    await settler.settle(outcomes)
    assert [("requeue", 5, False), ("reject", 8, False), ("ack", 10, True)] == channel.calls


async def test_multiple_ack_never_covers_an_unsettled_lower_tag() -> None:
    """With tags 1-3 still in another bulk, acks for 4-6 are sent one by one."""
    channel = FakeChannel()
    settler = Settler()
    deliveries = tracked(settler, channel, range(1, 7))
    await settler.settle((d, Actions.ACK) for d in deliveries[3:])
    assert [("ack", 4, False), ("ack", 5, False), ("ack", 6, False)] == channel.calls
    await settler.settle((d, Actions.ACK) for d in deliveries[:3])
    assert ("ack", 3, True) == channel.calls[-1]
    assert dict.fromkeys(range(1, 7), "ack") == channel.settled_tags(6)
    assert 0 == settler.ledger.unsettled_count()


async def test_multiple_ack_stops_below_a_buffered_message() -> None:
    """Messages still buffered (tracked, not in this bulk) are never covered by the ack."""
    channel = FakeChannel()
    settler = Settler()
    deliveries = tracked(settler, channel, range(1, 8))
    await settler.settle((d, Actions.ACK) for d in deliveries[:5])
    assert [("ack", 5, True)] == channel.calls
    assert 2 == settler.ledger.unsettled_count()


async def test_closed_channel_is_never_acked() -> None:
    """Deliveries of a closed channel are skipped and counted stale, never sent."""
    old, new = FakeChannel("old"), FakeChannel("new")
    settler = Settler()
    stale = tracked(settler, old, range(1, 4))
    fresh = tracked(settler, new, range(1, 3))
    old.closed = True
    report = await settler.settle((d, Actions.ACK) for d in stale + fresh)
    assert [] == old.calls
    assert [("ack", 2, True)] == new.calls
    assert (3, 2) == (report.stale, report.acked)


async def test_channel_closing_during_settlement_counts_the_rest_as_stale() -> None:
    """A channel that closes between two sends: the unsent part is stale, nothing raises."""

    class ClosingChannel(FakeChannel):
        async def basic_reject(
            self, delivery_tag: int, *, requeue: bool = True, wait: bool = True
        ) -> None:
            await super().basic_reject(delivery_tag, requeue=requeue, wait=wait)
            self.closed = True

    channel = ClosingChannel()
    settler = Settler()
    deliveries = tracked(settler, channel, range(1, 5))
    outcomes = [(deliveries[0], Actions.REJECT)] + [(d, Actions.ACK) for d in deliveries[1:]]
    report = await settler.settle(outcomes)
    assert [("reject", 1, False)] == channel.calls
    assert (1, 3) == (report.rejected, report.stale)
    assert 0 == settler.ledger.unsettled_count()


async def test_a_channel_that_dies_mid_send_does_not_hang_settlement() -> None:
    """A send blocked on a dead connection is abandoned when the channel closes: stale."""
    import asyncio

    class WedgedChannel(FakeChannel):
        def __init__(self) -> None:
            super().__init__("wedged")
            self.closing: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def basic_ack(
            self, delivery_tag: int, multiple: bool = False, wait: bool = True
        ) -> None:
            await asyncio.Event().wait()  # the connection's write queue never drains

    channel = WedgedChannel()
    settler = Settler()
    deliveries = tracked(settler, channel, range(1, 4))
    settling = asyncio.create_task(settler.settle((d, Actions.ACK) for d in deliveries))
    await asyncio.sleep(0)
    assert not settling.done()
    channel.closing.set_result(None)
    report = await asyncio.wait_for(settling, 5)
    assert 3 == report.stale


async def test_a_tag_decided_twice_is_settled_once() -> None:
    """Two decisions for one tag, in one settlement or two: one frame, never a second."""
    channel = FakeChannel()
    settler = Settler()
    one, two, three = tracked(settler, channel, range(1, 4))
    first = await settler.settle(
        [(one, Actions.REJECT), (one, Actions.ACK), (two, Actions.ACK), (two, Actions.ACK)]
    )
    second = await settler.settle([(one, Actions.REQUEUE), (three, Actions.ACK)])
    assert [("reject", 1, False), ("ack", 2, False), ("ack", 3, False)] == channel.calls
    assert (2, 0, 1) == (first.unknown, first.stale, second.unknown)
    assert 0 == settler.ledger.unsettled_count()
