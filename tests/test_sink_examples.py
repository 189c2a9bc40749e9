"""The Elasticsearch and MongoDB example consumers, run in the harness with a fake client.

No Elasticsearch or MongoDB server runs here: the fakes answer with recorded
responses, so what is checked is the path from the store's answer to each
message's fate.
"""

import json
from pathlib import Path
from typing import Any

import elastic_transport
from pymongo.errors import BulkWriteError

from examples.elasticsearch_orders import OrdersIndexer
from examples.mongodb_orders import OrdersArchiver
from framework.testing import ConsumerHarness

RECORDED = Path(__file__).parent / "recorded"
ORDERS = [
    {"order_id": f"o-{n}", "customer": "ada", "amount": n} for n in range(1, 6)
]  # fmt: skip


def recorded(name: str) -> dict[str, Any]:
    return json.loads((RECORDED / f"{name}.json").read_text())


class FakeElasticsearch:
    """Answers ``bulk`` with the first items of a recorded response, or raises."""

    def __init__(self, answer: Any) -> None:
        self.answer = answer
        self.calls = 0

    async def bulk(self, *, body: list[Any], **options: Any) -> Any:
        self.calls += 1
        if isinstance(self.answer, BaseException):
            raise self.answer
        return {**self.answer, "items": self.answer["items"][: len(body) // 2]}


async def test_the_indexer_acks_stored_and_conflicting_orders_and_dead_letters_bad_ones() -> None:
    """201 and 409 acked; the 400 dead-lettered with the parsing error; 429/503 requeued."""
    client = FakeElasticsearch(recorded("elasticsearch_mixed"))
    async with ConsumerHarness(OrdersIndexer, overrides={"elasticsearch": client}) as harness:
        await harness.publish_many(ORDERS)
        await harness.flush()
        acked = [order.order_id for order in harness.acked]
        dead = [(d.body.order_id, d.reason) for d in harness.dead_lettered]
        [error] = [d.error for d in harness.dead_lettered]
        requeued = [order.order_id for order in harness.requeued]
    assert ["o-1", "o-3"] == acked
    assert [("o-2", "rejected")] == dead
    assert "400 document_parsing_exception: [1:31] failed to parse field [amount]" in (error or "")
    assert ["o-4", "o-5"] == requeued


async def test_an_unreachable_cluster_pauses_the_indexer() -> None:
    """A connection error settles nothing: the consumer pauses holding its bulk."""
    client = FakeElasticsearch(elastic_transport.ConnectionError("refused"))
    async with ConsumerHarness(OrdersIndexer, overrides={"elasticsearch": client}) as harness:
        await harness.publish_many(ORDERS[:2])
        await harness.flush()
        assert harness.paused
        assert ([], [], []) == (harness.acked, harness.dead_lettered, harness.requeued)


class FakeCollection:
    def __init__(self, error: BaseException | None) -> None:
        self.error = error
        self.inserted: list[list[dict[str, Any]]] = []

    async def insert_many(self, documents: list[dict[str, Any]], ordered: bool) -> None:
        self.inserted.append(documents)
        if self.error is not None:
            raise self.error


async def test_the_archiver_acks_duplicates_and_dead_letters_invalid_orders() -> None:
    """11000 acked, 121 and 17419 dead-lettered, WriteConflict requeued, the rest acked."""
    orders = FakeCollection(BulkWriteError(recorded("mongodb_unordered")))
    client = {"shop": {"orders": orders}}
    async with ConsumerHarness(OrdersArchiver, overrides={"mongodb": client}) as harness:
        await harness.publish_many(ORDERS)
        await harness.flush()
        acked = [order.order_id for order in harness.acked]
        dead = [d.body.order_id for d in harness.dead_lettered]
        requeued = [order.order_id for order in harness.requeued]
    assert (["o-1", "o-2"], ["o-3", "o-5"], ["o-4"]) == (acked, dead, requeued)
    assert ["o-1", "o-2", "o-3", "o-4", "o-5"] == [d["_id"] for d in orders.inserted[0]]
