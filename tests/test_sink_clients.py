"""The container's ``elasticsearch`` and ``mongodb`` clients: opened when asked, closed at the end.

No server runs here; both clients connect lazily, so opening and closing them
needs none.
"""

from typing import Any

import pytest
from dependency_injector.wiring import Provide
from elasticsearch import AsyncElasticsearch
from pymongo import AsyncMongoClient
from pymongo.errors import InvalidOperation

from framework import BulkConsumer, Container, Message
from framework.config.deployment import resolve_deployment
from framework.errors import ConfigurationError
from framework.testing import ConsumerHarness
from tests.test_sink_mongodb import NO_SERVER


def container(**urls: str) -> Container:
    made = Container()
    for key, url in urls.items():
        getattr(made.config, key).from_value(url)
    return made


async def test_the_mongodb_client_opens_on_first_use_and_closes_on_shutdown() -> None:
    """One AsyncMongoClient per container; unusable once the resources shut down."""
    made = container(mongodb_url=f"{NO_SERVER}/?serverSelectionTimeoutMS=100")
    first = await made.mongodb()
    assert isinstance(first, AsyncMongoClient)
    assert first is await made.mongodb()
    await made.shutdown_resources()
    with pytest.raises(InvalidOperation, match="after close"):
        await first["shop"]["orders"].insert_one({"_id": 1})


async def test_the_elasticsearch_client_opens_on_first_use_and_closes_on_shutdown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One AsyncElasticsearch per container, on every node of the URL, closed once."""
    closed: list[Any] = []
    close = AsyncElasticsearch.close

    async def recording_close(self: AsyncElasticsearch) -> None:
        closed.append(self)
        await close(self)

    monkeypatch.setattr(AsyncElasticsearch, "close", recording_close)
    made = container(elasticsearch_url="http://127.0.0.1:9201, http://127.0.0.1:9202")
    client = await made.elasticsearch()
    assert client is await made.elasticsearch()
    hosts = sorted(node.config.port for node in client.transport.node_pool.all())
    assert [9201, 9202] == hosts
    await made.shutdown_resources()
    await made.shutdown_resources()
    assert [client] == closed


@pytest.mark.parametrize(
    ("name", "variable"),
    [("mongodb", "BULKWORKER_MONGODB_URL"), ("elasticsearch", "BULKWORKER_ELASTICSEARCH_URL")],
)
async def test_a_missing_url_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, variable: str
) -> None:
    """Asking for a client whose URL is unset says which variable to set."""
    monkeypatch.delenv(variable, raising=False)
    made = container()
    with pytest.raises(ConfigurationError, match=f"the {name} client has no URL: set {variable}"):
        await getattr(made, name)()
    await made.shutdown_resources()


def test_the_urls_come_from_the_environment() -> None:
    """BULKWORKER_ELASTICSEARCH_URL and BULKWORKER_MONGODB_URL fill the deployment settings."""
    settings = resolve_deployment(
        environ={
            "BULKWORKER_ELASTICSEARCH_URL": "http://es:9200",
            "BULKWORKER_MONGODB_URL": "mongodb://mongo:27017",
        }
    )
    assert ("http://es:9200", "mongodb://mongo:27017") == (
        settings.elasticsearch_url,
        settings.mongodb_url,
    )
    assert (None, None) == (
        resolve_deployment(environ={}).elasticsearch_url,
        resolve_deployment(environ={}).mongodb_url,
    )


class OrdersConsumer(BulkConsumer):
    queues = ["orders"]

    def __init__(self, mongo: Any = Provide["mongodb"]) -> None:
        self.orders = mongo["shop"]["orders"]

    async def handle(self, messages: list[Message[Any]]) -> None:
        for message in messages:
            message.ack()


async def test_a_consumer_asking_for_a_client_without_its_url_fails_at_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The start fails naming the variable, before any message is taken."""
    monkeypatch.delenv("BULKWORKER_MONGODB_URL", raising=False)
    with pytest.raises(ConfigurationError, match="set BULKWORKER_MONGODB_URL"):
        async with ConsumerHarness(OrdersConsumer):
            pass


async def test_a_consumer_gets_the_client_and_a_test_overrides_it() -> None:
    """``overrides={"mongodb": fake}`` replaces the client for the harness."""

    class FakeMongo(dict[str, Any]):
        pass

    fake = FakeMongo(shop={"orders": "the orders collection"})
    async with ConsumerHarness(OrdersConsumer, overrides={"mongodb": fake}) as harness:
        await harness.publish({"n": 1})
        await harness.flush()
    assert [{"n": 1}] == harness.acked
