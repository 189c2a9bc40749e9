"""Elasticsearch/OpenSearch ``_bulk`` answers become per-message outcomes.

No Elasticsearch runs here: the answers are recorded responses in the format the
reference documents (tests/recorded/elasticsearch_*.json), served over real HTTP
to the real ``elasticsearch`` client where the client's part matters.
"""

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import attrs
import elastic_transport
import opensearchpy
import pytest
from aiohttp import web
from elasticsearch import ApiError, AsyncElasticsearch

from framework import Actions
from framework.errors import SinkUnavailable
from framework.sinks import ItemOutcome, ItemResult
from framework.sinks.elasticsearch import bulk_actions, bulk_results, is_outage, write_bulk
from framework.testing import FakeChannel
from framework.testing.fakes import make_message

RECORDED = Path(__file__).parent / "recorded"


def recorded(name: str) -> dict[str, Any]:
    return json.loads((RECORDED / f"elasticsearch_{name}.json").read_text())


def messages(bodies: list[Any], ids: bool = True) -> list:
    channel = FakeChannel()
    return [
        make_message(body, channel=channel, tag=n + 1, message_id=f"m-{n + 1}" if ids else None)
        for n, body in enumerate(bodies)
    ]


def decisions(bulk: list) -> list[tuple[Actions | None, bool]]:
    return [(m.decision, m.sink_unavailable) for m in bulk]


def test_each_status_class_has_its_outcome() -> None:
    """2xx stored; 400 and 404 bad; 409 on create already stored; 429/5xx retried."""
    results = bulk_results(recorded("mixed"), 10)
    assert [
        ItemOutcome.STORED,  # 201 created
        ItemOutcome.BAD_ITEM,  # 400 document_parsing_exception
        ItemOutcome.ALREADY_STORED,  # 409 on create: stored before
        ItemOutcome.RETRY,  # 429 es_rejected_execution_exception
        ItemOutcome.RETRY,  # 503 unavailable_shards_exception
        ItemOutcome.BAD_ITEM,  # 404 document_missing_exception on update
        ItemOutcome.ALREADY_STORED,  # 404 not_found on delete: already gone
        ItemOutcome.RETRY,  # 409 on update: changed meanwhile
        ItemOutcome.STORED,  # 200 updated
        ItemOutcome.BAD_ITEM,  # 404 index_not_found_exception
    ] == [r.outcome for r in results]


def test_a_bad_item_carries_the_clusters_type_and_reason_and_cause() -> None:
    """The dead letter names status, error type, reason and what caused it."""
    results = bulk_results(recorded("mixed"), 10)
    assert (
        "400 document_parsing_exception: [1:31] failed to parse field [amount] of type [long] "
        "in document with id 'm-2'. Preview of field's value: 'twelve' (caused by "
        'illegal_argument_exception: For input string: "twelve")'
    ) == results[1].reason
    assert "404 document_missing_exception: [m-6]: document missing" == results[5].reason
    assert results[3].reason is not None
    assert results[3].reason.startswith("429 es_rejected_execution_exception: rejected")


def test_a_bulk_the_cluster_refused_entirely_is_an_outage() -> None:
    """All items 429/5xx: every one unavailable, so the breaker pauses the consumer."""
    results = bulk_results(recorded("all_rejected"), 2)
    assert [ItemOutcome.UNAVAILABLE, ItemOutcome.UNAVAILABLE] == [r.outcome for r in results]


def test_no_errors_means_every_item_stored() -> None:
    """``errors: false``: each item stored, no reason."""
    assert [ItemResult(ItemOutcome.STORED)] * 2 == bulk_results(recorded("created"), 2)


def test_what_a_conflict_means_can_be_chosen() -> None:
    """``conflicts=`` overrides the default meaning of a 409 per action."""
    results = bulk_results(recorded("mixed"), 10, conflicts={"create": ItemOutcome.BAD_ITEM})
    assert ItemOutcome.BAD_ITEM == results[2].outcome
    assert ItemOutcome.RETRY == results[7].outcome


@pytest.mark.parametrize("sent", [9, 11])
def test_another_number_of_items_than_sent_is_an_error(sent: int) -> None:
    """A response that does not line up with the request decides nothing."""
    with pytest.raises(ValueError, match=f"has 10 items, {sent} actions were sent"):
        bulk_results(recorded("mixed"), sent)


@pytest.mark.parametrize(
    "response",
    [
        {"errors": True},
        {"items": [{"upsert": {"status": 200}}]},
        {"items": [{"index": {}}]},
        {"items": ["created"]},
        None,
    ],
)
def test_a_malformed_response_is_an_error(response: Any) -> None:
    """No items, an unknown action or no status: refused, not guessed at."""
    with pytest.raises(ValueError, match="_bulk response"):
        bulk_results(response, 1)


def test_the_actions_pair_an_action_line_with_its_source() -> None:
    """create/index send the document; update sends it as an upsert."""
    assert [
        {"create": {"_index": "orders", "_id": "a"}},
        {"n": 1},
    ] == bulk_actions([("a", {"n": 1})], index="orders")
    assert [
        {"update": {"_index": "orders", "_id": "a"}},
        {"doc": {"n": 1}, "doc_as_upsert": True},
    ] == bulk_actions([("a", {"n": 1})], index="orders", op_type="update")
    with pytest.raises(ValueError, match="op_type must be"):
        bulk_actions([], index="orders", op_type="delete")


class FakeClient:
    """Answers ``bulk`` with a recorded response; records what was sent."""

    def __init__(self, response: Any) -> None:
        self.response = response
        self.sent: list[Any] = []

    async def bulk(self, *, body: list[Any], **options: Any) -> Any:
        self.sent.append((body, options))
        if isinstance(self.response, BaseException):
            raise self.response
        return self.response


async def test_write_bulk_settles_each_message_by_its_item() -> None:
    """The first message acked, the second dead-lettered with the reason."""
    bulk = messages([{"n": 1}, {"n": "twelve"}])
    response = recorded("mixed")
    response["items"] = response["items"][:2]
    client = FakeClient(response)
    await write_bulk(client, bulk, index="orders", refresh="wait_for")
    assert [(Actions.ACK, False), (Actions.REJECT, False)] == decisions(bulk)
    assert "document_parsing_exception" in (bulk[1].decision_reason or "")
    [(body, options)] = client.sent
    assert {"create": {"_index": "orders", "_id": "m-1"}} == body[0]
    assert {"refresh": "wait_for"} == options


async def test_a_message_without_an_id_is_refused_before_sending() -> None:
    """No message id and no id field: dead-lettered, the others still sent."""
    channel = FakeChannel()
    bulk = [
        make_message({"n": 1}, channel=channel, tag=1, message_id="m-1"),
        make_message({"n": 2}, channel=channel, tag=2),
        make_message([1, 2], channel=channel, tag=3, message_id="m-3"),
    ]
    client = FakeClient({"errors": False, "items": [{"create": {"status": 201}}]})
    results = await write_bulk(client, bulk, index="orders")
    assert [Actions.ACK, Actions.REJECT, Actions.REJECT] == [m.decision for m in bulk]
    assert "no message_id" in (results[1].reason or "")
    assert "not an object" in (results[2].reason or "")
    assert 2 == len(client.sent[0][0])


@attrs.frozen
class Order:
    order_id: str
    amount: int


async def test_the_id_can_come_from_a_field_of_an_attrs_body() -> None:
    """``id_field=`` reads the document's field; an attrs body is unstructured."""
    bulk = [attrs.evolve(m, body=Order("o-7", 12)) for m in messages([{}], ids=False)]
    client = FakeClient({"errors": False, "items": [{"index": {"status": 201}}]})
    await write_bulk(client, bulk, index="orders", op_type="index", id_field="order_id")
    assert [
        {"index": {"_index": "orders", "_id": "o-7"}},
        {"order_id": "o-7", "amount": 12},
    ] == client.sent[0][0]


def api_error(status: int) -> ApiError:
    meta = elastic_transport.ApiResponseMeta(
        status=status, http_version="1.1", headers=elastic_transport.HttpHeaders(),
        duration=0.0, node=elastic_transport.NodeConfig("http", "localhost", 9200),
    )  # fmt: skip
    return ApiError("refused", meta=meta, body={"error": {"type": "x"}, "status": status})


@pytest.mark.parametrize(
    ("error", "outage"),
    [
        (elastic_transport.ConnectionError("refused"), True),
        (elastic_transport.ConnectionTimeout("timed out"), True),
        (api_error(429), True),
        (api_error(503), True),
        (api_error(400), False),
        (api_error(413), False),
        (ValueError("a bug"), False),
        (opensearchpy.ConnectionError("N/A", "refused", None), True),
        (opensearchpy.TransportError(429, "rejected_execution_exception", {}), True),
        (opensearchpy.TransportError(400, "mapper_parsing_exception", {}), False),
    ],
)
def test_which_request_errors_mean_the_cluster_is_down(error: Exception, outage: bool) -> None:
    """Unreachable, throttled or 5xx is an outage; a refused request is not."""
    assert outage == is_outage(error)


async def test_a_whole_request_outage_raises_sink_unavailable() -> None:
    """A connection error becomes SinkUnavailable: the breaker holds the bulk."""
    bulk = messages([{"n": 1}])
    client = FakeClient(elastic_transport.ConnectionError("refused"))
    with pytest.raises(SinkUnavailable, match="_bulk request failed"):
        await write_bulk(client, bulk, index="orders")
    assert [None] == [m.decision for m in bulk]


async def test_any_other_request_error_propagates() -> None:
    """A 400 on the whole request is the handler's error, for on_exception."""
    with pytest.raises(ApiError):
        await write_bulk(FakeClient(api_error(400)), messages([{"n": 1}]), index="orders")


class RecordedCluster:
    """An HTTP server answering ``_bulk`` with a recorded response, keeping each request body."""

    def __init__(self, response: dict[str, Any]) -> None:
        self.response = response
        self.bodies: list[bytes] = []

    async def bulk(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.read())
        return web.json_response(self.response, headers={"X-Elastic-Product": "Elasticsearch"})


@pytest.fixture
async def recorded_cluster() -> AsyncIterator[tuple[str, RecordedCluster]]:
    cluster = RecordedCluster(recorded("created"))
    app = web.Application()
    app.router.add_route("*", "/_bulk", cluster.bulk)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield f"http://127.0.0.1:{port}", cluster
    finally:
        await runner.cleanup()


async def test_the_real_client_sends_the_actions_as_ndjson(
    recorded_cluster: tuple[str, RecordedCluster],
) -> None:
    """Through AsyncElasticsearch, the actions arrive as one NDJSON line each."""
    url, cluster = recorded_cluster
    bulk = messages([{"n": 1}, {"n": 2}])
    async with AsyncElasticsearch(url) as client:
        results = await write_bulk(client, bulk, index="orders")
    assert [ItemResult(ItemOutcome.STORED)] * 2 == results
    [body] = cluster.bodies
    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert [
        {"create": {"_index": "orders", "_id": "m-1"}},
        {"n": 1},
        {"create": {"_index": "orders", "_id": "m-2"}},
        {"n": 2},
    ] == lines
    assert body.endswith(b"\n")


async def test_the_real_client_against_a_closed_port_is_an_outage() -> None:
    """Nothing listening: the client's ConnectionError becomes SinkUnavailable."""
    async with AsyncElasticsearch("http://127.0.0.1:9", max_retries=0) as client:
        with pytest.raises(SinkUnavailable):
            await write_bulk(client, messages([{"n": 1}]), index="orders")
