"""Per-item outcomes from a sink become each message's decision."""

import pytest

from framework import Actions
from framework.sinks import ItemOutcome, ItemResult, settle_items
from framework.sinks.sqlstate import outcome_of
from framework.testing import FakeChannel
from framework.testing.fakes import make_message


def messages(count: int) -> list:
    channel = FakeChannel()
    return [make_message({"n": n}, channel=channel, tag=n + 1) for n in range(count)]


def test_each_outcome_becomes_its_decision() -> None:
    """Stored and already stored ack; bad items reject; retry requeues; unavailable holds."""
    bulk = messages(5)
    results = [
        ItemResult(ItemOutcome.STORED),
        ItemResult(ItemOutcome.ALREADY_STORED, "duplicate key"),
        ItemResult(ItemOutcome.BAD_ITEM, "value too long"),
        ItemResult(ItemOutcome.RETRY, "throttled"),
        ItemResult(ItemOutcome.UNAVAILABLE, "shard down"),
    ]
    settle_items(bulk, results)
    decisions = [(m.decision, m.decision_reason, m.sink_unavailable) for m in bulk]
    assert [
        (Actions.ACK, None, False),
        (Actions.ACK, None, False),
        (Actions.REJECT, "value too long", False),
        (Actions.REQUEUE, "throttled", False),
        (None, "shard down", True),
    ] == decisions


def test_a_bad_item_without_a_reason_still_says_why() -> None:
    """A dead letter always carries a reason."""
    [message] = messages(1)
    settle_items([message], [ItemResult(ItemOutcome.BAD_ITEM)])
    assert "the sink refused the item" == message.decision_reason


def test_an_answer_for_another_number_of_items_decides_nothing() -> None:
    """A sink that answered for fewer items than were sent is an error, not a guess."""
    bulk = messages(3)
    with pytest.raises(ValueError, match="answered for 2 items, 3 were sent"):
        settle_items(bulk, [ItemResult(ItemOutcome.STORED)] * 2)
    assert [None, None, None] == [m.decision for m in bulk]


@pytest.mark.parametrize(
    ("sqlstate", "outcome"),
    [
        ("23505", ItemOutcome.ALREADY_STORED),
        ("23514", ItemOutcome.BAD_ITEM),
        ("23502", ItemOutcome.BAD_ITEM),
        ("23503", ItemOutcome.BAD_ITEM),
        ("22001", ItemOutcome.BAD_ITEM),
        ("21000", ItemOutcome.BAD_ITEM),
        ("40001", ItemOutcome.RETRY),
        ("40P01", ItemOutcome.RETRY),
        ("55P03", ItemOutcome.RETRY),
        ("57014", ItemOutcome.RETRY),
        ("08006", ItemOutcome.UNAVAILABLE),
        ("57P01", ItemOutcome.UNAVAILABLE),
        ("57P03", ItemOutcome.UNAVAILABLE),
        ("53300", ItemOutcome.UNAVAILABLE),
        ("53100", ItemOutcome.UNAVAILABLE),
        ("28P01", ItemOutcome.UNAVAILABLE),
        ("3D000", ItemOutcome.UNAVAILABLE),
        ("42P01", None),
        ("42601", None),
        (None, None),
    ],
)
def test_each_sqlstate_means_an_outcome(sqlstate: str | None, outcome: ItemOutcome | None) -> None:
    """PostgreSQL's error classes map to outcomes; the program's own errors to none."""
    assert outcome == outcome_of(sqlstate)
