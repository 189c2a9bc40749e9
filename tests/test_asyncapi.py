"""`bulkworker asyncapi`: each document validates against the published AsyncAPI 3.0.0 schema
(vendored in tests/schemas, no network), every reference in it resolves, and it says what a
reader of the consumers would check: queues, bindings, message schemas, never a password."""

import copy
import datetime
import json
import sys
import types
import uuid
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path
from typing import Any

import aiormq
import attrs
import jsonschema
import pytest
from jsonschema.exceptions import ValidationError

from consumers.container import AppContainer
from framework import (
    Actions,
    BulkConsumer,
    ConfigurationError,
    ConsumerSettings,
    Message,
    asyncapi_document,
    json_converter,
)
from framework.amqp.asyncapi import Connection, Consumer, document_of
from framework.amqp.asyncapi_parts import DEAD_LETTER_MESSAGE, SHOWN_AS_STRUCTURE
from framework.core.consumer import SPECS
from framework.core.serialization import DEFAULT_CONVERTER
from framework.wiring.asyncapi import package_version
from tests.test_cli import run_cli

SCHEMA = json.loads(
    (Path(__file__).parent / "schemas" / "asyncapi-3.0.0.json").read_text(encoding="utf-8")
)
VALIDATOR = jsonschema.Draft7Validator(SCHEMA)
DEFAULT = Connection(name="default", url="amqp://guest:guest@localhost/", variable="URL")
PASSWORD = "s3cret-P4ss"


def validated(document: dict[str, Any]) -> dict[str, Any]:
    """``document``, after it passed the schema and every ``$ref`` in it resolved."""
    VALIDATOR.validate(document)
    for ref in references(document):
        resolve(document, ref)
    for name, operation in document["operations"].items():
        channel = operation["channel"]["$ref"]
        for message in operation["messages"]:
            assert message["$ref"].startswith(channel + "/messages/"), name
    return document


def references(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        if isinstance(value.get("$ref"), str):
            yield value["$ref"]
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list):
        for item in value:
            yield from references(item)


def resolve(document: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    found: Any = document
    for part in ref[2:].split("/"):
        found = found[part.replace("~1", "/").replace("~0", "~")]
    return found


def made(*consumers: type[BulkConsumer], connections: Any = (DEFAULT,)) -> dict[str, Any]:
    return validated(
        document_of(
            [Consumer(settings=ConsumerSettings.of(c)) for c in consumers],
            list(connections),
            title="shop",
            version="1.2.3",
        )
    )


def payload_validator(document: dict[str, Any], message: str) -> jsonschema.Draft7Validator:
    """Validates bodies against a message's payload, its references resolved in the document."""
    payload = document["components"]["messages"][message]["payload"]
    return jsonschema.Draft7Validator({**payload, "components": document["components"]})


@attrs.frozen
class Line:
    sku: str
    quantity: int = 1


@attrs.frozen
class Order:
    id: uuid.UUID
    total: float
    lines: list[Line]
    note: str | None = None


class Orders(BulkConsumer):
    queues = ["orders"]
    model = Order

    async def handle(self, messages: list[Message[Order]]) -> None:
        return None


def test_the_shipped_app_validates_and_names_its_queues_and_broker() -> None:
    """The shipped consumers: the items queue and its dead letters, on the broker of the URL,
    whose password and user appear nowhere."""
    url = f"amqp://shop-user:{PASSWORD}@rabbit.example:5673/prod"
    result = run_cli(
        "asyncapi", "consumers", "--container", "consumers.container:AppContainer",
        BULKWORKER_AMQP_URL=url,
    )  # fmt: skip
    assert 0 == result.returncode, result.stderr
    assert "" == result.stderr
    document = validated(json.loads(result.stdout))
    assert ["items", "items.dlq"] == list(document["channels"])
    server = document["servers"]["default"]
    assert ("rabbit.example:5673", "/prod", "amqp") == (
        server["host"],
        server["pathname"],
        server["protocol"],
    )
    assert PASSWORD not in result.stdout
    assert "shop-user" not in result.stdout
    receive = document["operations"]["ItemsConsumer.receive.items"]
    assert ("receive", 500, 2.0) == (
        receive["action"],
        receive["x-bulkworker-bulk-size"],
        receive["x-bulkworker-flush-interval"],
    )
    assert receive["summary"].startswith("Stores up to 500 items per transaction")
    # Counted retries without a delay go back to the tail of the queue itself.
    assert ("send", {"$ref": "#/channels/items"}) == (
        document["operations"]["ItemsConsumer.retry.items"]["action"],
        document["operations"]["ItemsConsumer.retry.items"]["channel"],
    )


def test_every_model_type_has_its_schema() -> None:
    """attrs and dataclass models: each field typed as the converter reads it, nested classes
    as components, required fields those without a default."""
    result = run_cli("asyncapi", "tests.apps.described", BULKWORKER_AMQP_URL_ANALYTICS="amqp://a/")
    assert 0 == result.returncode, result.stderr
    document = validated(json.loads(result.stdout))
    schemas = document["components"]["schemas"]
    order = schemas["Order"]
    assert {
        "id": {"type": "string", "format": "uuid"},
        "placed_at": {"type": "string", "format": "date-time"},
        "status": {"enum": ["new", "paid"], "title": "Status"},
        "paid": {"type": "boolean"},
        "weight": {"type": "number"},
        "lines": {"type": "array", "items": {"$ref": "#/components/schemas/Line"}},
        "tags": {"type": "object", "additionalProperties": {"type": "string"}},
        "note": {"anyOf": [{"type": "string"}, {"type": "null"}], "default": None},
    } == {name: schema for name, schema in order["properties"].items() if name != "total"}
    assert ["string", "number"] == order["properties"]["total"]["type"]
    assert ["id", "placed_at", "total", "status", "paid", "weight", "lines", "tags"] == order[
        "required"
    ]
    assert "An order, as the shop publishes it." == order["description"]
    assert {"sku": {"type": "string"}, "quantity": {"type": "integer", "default": 1}} == schemas[
        "Line"
    ]["properties"]
    assert {"actor": {"type": "string"}, "at": {"type": "string", "format": "date"}} == schemas[
        "Audit"
    ]["properties"]
    messages = document["components"]["messages"]
    assert {"$ref": "#/components/schemas/Order"} == messages["Orders"]["payload"]
    assert {"x-tenant", "x-bulkworker-attempts"} == set(messages["Orders"]["headers"]["properties"])


def test_the_payload_schema_accepts_what_the_converter_reads_and_refuses_what_it_refuses() -> None:
    """Bodies the converter reads validate against the payload; bodies it refuses do not."""
    document = made(Orders)
    validator = payload_validator(document, "Orders")
    good = {"id": str(uuid.uuid4()), "total": 3, "lines": [{"sku": "a"}], "note": None}
    bad = [
        {**good, "total": "3"},
        {**good, "lines": [{"sku": "a", "quantity": 1.5}]},
        {**good, "lines": [{"quantity": 1}]},
        {"total": 3, "lines": []},
        {**good, "note": 5},
    ]
    DEFAULT_CONVERTER.structure(good, Order)
    assert [] == list(validator.iter_errors(good))
    for body in bad:
        with pytest.raises(Exception):  # noqa: B017, PT011 - cattrs raises a group of errors
            DEFAULT_CONVERTER.structure(body, Order)
        assert list(validator.iter_errors(body)), body


def test_named_connections_and_clusters_are_servers_without_credentials() -> None:
    """Each node of a cluster URL is a server; a named connection's queues name its servers."""

    class Clicks(BulkConsumer):
        queues = ["clicks"]
        connection = "analytics"

        async def handle(self, messages: list[Message[Any]]) -> None:
            return None

    cluster = Connection(
        name="analytics",
        url=f"amqps://u:{PASSWORD}@r1.example/stats?heartbeat=5,amqps://u:{PASSWORD}@r2:5700/stats",
        variable="BULKWORKER_AMQP_URL_ANALYTICS",
    )
    document = made(Orders, Clicks, connections=(DEFAULT, cluster))
    assert ["default", "analytics-1", "analytics-2"] == list(document["servers"])
    assert ("r1.example:5671", "r2:5700", "amqps", "/stats") == (
        document["servers"]["analytics-1"]["host"],
        document["servers"]["analytics-2"]["host"],
        document["servers"]["analytics-2"]["protocol"],
        document["servers"]["analytics-2"]["pathname"],
    )
    channel = document["channels"]["analytics.clicks"]
    assert "clicks" == channel["address"]
    assert [{"$ref": "#/servers/analytics-1"}, {"$ref": "#/servers/analytics-2"}] == channel[
        "servers"
    ]
    assert "stats" == channel["bindings"]["amqp"]["queue"]["vhost"]
    assert [{"$ref": "#/servers/default"}] == document["channels"]["orders"]["servers"]
    assert PASSWORD not in json.dumps(document)
    assert "heartbeat" not in json.dumps(document)


def test_a_connection_without_a_url_is_a_server_to_fill_in() -> None:
    """Made where the URL is not set (in CI, say): the host is a variable naming the setting."""
    result = run_cli("asyncapi", "tests.apps.described")
    assert 0 == result.returncode, result.stderr
    document = validated(json.loads(result.stdout))
    server = document["servers"]["analytics"]
    assert "{host}" == server["host"]
    assert "BULKWORKER_AMQP_URL_ANALYTICS" in server["variables"]["host"]["description"]
    assert "vhost" not in document["channels"]["analytics.clicks"]["bindings"]["amqp"]["queue"]


def test_a_quorum_queue_shows_its_type_and_arguments_and_retries_their_queue() -> None:
    """The queue's type and arguments are in its binding; the retry queue's say where retries
    return."""

    class Quorum(BulkConsumer):
        queues = ["payments"]
        queue_arguments = {"x-queue-type": "quorum", "x-delivery-limit": 10}
        retry_delay = 1.5

        async def handle(self, messages: list[Message[Any]]) -> None:
            return None

    document = made(Quorum)
    assert ["payments", "payments.dlq", "payments.retry"] == list(document["channels"])
    binding = document["channels"]["payments"]["bindings"]["amqp"]
    assert {
        "is": "queue",
        "queue": {
            "name": "payments",
            "durable": True,
            "exclusive": False,
            "autoDelete": False,
            "vhost": "/",
        },
        "bindingVersion": "0.3.0",
        "x-bulkworker-declared": True,
        "x-bulkworker-queue-type": "quorum",
        "x-bulkworker-arguments": {"x-queue-type": "quorum", "x-delivery-limit": 10},
    } == binding
    retry = document["channels"]["payments.retry"]["bindings"]["amqp"]
    assert {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "payments"} == retry[
        "x-bulkworker-arguments"
    ]
    assert "classic" == retry["x-bulkworker-queue-type"]
    operations = document["operations"]
    assert {"Quorum.receive.payments", "Quorum.dead-letter.payments.dlq"} < set(operations)
    assert "send" == operations["Quorum.retry.payments.retry"]["action"]


def test_a_consumer_without_dead_letter_queue_has_no_dead_letter_channel() -> None:
    """dead_letter_queue = None: no dead-letter channel, operation or message; the description
    says rejected messages go back to the broker."""
    result = run_cli("asyncapi", "tests.apps.described", BULKWORKER_AMQP_URL_ANALYTICS="amqp://a/")
    assert 0 == result.returncode, result.stderr
    document = validated(json.loads(result.stdout))
    assert "audits.dlq" not in document["channels"]
    assert [] == [name for name in document["operations"] if name.startswith("Audits.dead")]
    description = document["operations"]["Audits.receive.audits"]["description"]
    assert "Rejected messages go back to the broker" in description

    class Alone(BulkConsumer):
        queues = ["alone"]
        dead_letter_queue = None
        on_exception = Actions.REJECT

        async def handle(self, messages: list[Message[Any]]) -> None:
            return None

    assert DEAD_LETTER_MESSAGE not in made(Alone)["components"]["messages"]


def test_a_shared_dead_letter_queue_is_one_channel_of_both_queues() -> None:
    """Two queues dead-lettering to one queue: one channel, both in its description."""

    class Shared(BulkConsumer):
        queues = ["a", "b"]
        dead_letter_queue = "errors"

        async def handle(self, messages: list[Message[Any]]) -> None:
            return None

    document = made(Shared)
    assert ["a", "errors", "b"] == list(document["channels"])
    description = document["channels"]["errors"]["description"]
    assert "Dead letters of a" in description
    assert "Dead letters of b" in description
    assert {"Shared.dead-letter.errors"} == {
        name for name in document["operations"] if ".dead-letter." in name
    }


def test_queues_that_must_exist_claim_no_properties() -> None:
    """declare = False: the binding names the queue and claims nothing of how it was made."""

    class Existing(BulkConsumer):
        queues = ["made.elsewhere"]
        declare = False

        async def handle(self, messages: list[Message[Any]]) -> None:
            return None

    binding = made(Existing)["channels"]["made.elsewhere"]["bindings"]["amqp"]
    assert {"name": "made.elsewhere", "vhost": "/"} == binding["queue"]
    assert binding["x-bulkworker-declared"] is False
    assert "x-bulkworker-queue-type" not in binding


def test_odd_queue_names_and_same_named_consumers_get_keys_of_their_own() -> None:
    """A queue name with spaces and slashes keys its channel safely; two consumer classes of
    one name get two messages (the dead letter's name stays its own); the address keeps the
    queue's real name."""

    def consumer(queue: str) -> type[BulkConsumer]:
        class Twin(BulkConsumer):
            queues = [queue]

            async def handle(self, messages: list[Message[Any]]) -> None:
                return None

        return Twin

    class BulkworkerDeadLetter(BulkConsumer):
        queues = ["impostor"]

        async def handle(self, messages: list[Message[Any]]) -> None:
            return None

    impostor = made(BulkworkerDeadLetter)["components"]["messages"]
    assert {"BulkworkerDeadLetter_2", DEAD_LETTER_MESSAGE} == set(impostor)
    assert "A dead letter" == impostor[DEAD_LETTER_MESSAGE]["title"]
    document = made(consumer("eu/orders v1"), consumer("eu_orders_v1"))
    assert {"eu_orders_v1": "eu/orders v1", "eu_orders_v1_2": "eu_orders_v1"} == {
        name: channel["address"]
        for name, channel in document["channels"].items()
        if not name.endswith(".dlq") and not name.endswith(".dlq_2")
    }
    assert {"Twin", "Twin_2", DEAD_LETTER_MESSAGE} == set(document["components"]["messages"])


def test_every_other_setting_is_an_extension_of_the_receive_operation() -> None:
    """Settings the channels, servers and messages do not show are x-bulkworker- fields, as
    JSON: actions by name, exception classes by name."""

    class Tuned(BulkConsumer):
        queues = ["tuned"]
        bulk_size = 50
        max_concurrent_bulks = 2
        handler_timeout = 9
        group_by = "x-key"

        async def handle(self, messages: list[Message[Any]]) -> None:
            return None

    operation = made(Tuned)["operations"]["Tuned.receive.tuned"]
    expected = {f"x-bulkworker-{n.replace('_', '-')}" for n in SPECS if n not in SHOWN_AS_STRUCTURE}
    assert expected == {name for name in operation if name.startswith("x-bulkworker-")}
    assert (50, 150, 2, 9.0, "x-key", "REQUEUE") == (
        operation["x-bulkworker-bulk-size"],
        operation["x-bulkworker-prefetch"],
        operation["x-bulkworker-max-concurrent-bulks"],
        operation["x-bulkworker-handler-timeout"],
        operation["x-bulkworker-group-by"],
        operation["x-bulkworker-on-exception"],
    )
    assert ["ConnectionError", "TimeoutError", "OSError"] == operation["x-bulkworker-outage-errors"]


def test_a_consumer_without_model_reads_any_body_its_decoder_makes() -> None:
    """No model: any JSON value; a decoder of its own: no content type claimed, decoder named."""

    def csv_rows(raw: bytes, content_type: str | None) -> list[str]:
        return raw.decode().splitlines()

    class Csv(BulkConsumer):
        queues = ["csv"]
        decoder = csv_rows

        async def handle(self, messages: list[Message[Any]]) -> None:
            return None

    messages = made(Orders, Csv)["components"]["messages"]
    assert {} == messages["Csv"]["payload"]
    assert "contentType" not in messages["Csv"]
    assert "csv_rows" in messages["Csv"]["description"]
    assert "application/json" == messages["Orders"]["contentType"]


def test_a_broken_document_fails_validation() -> None:
    """The check can fail: no `asyncapi` field, or a queue binding that also names an exchange."""
    document = made(Orders)
    missing = {name: value for name, value in document.items() if name != "asyncapi"}
    with pytest.raises(ValidationError, match="'asyncapi' is a required property"):
        validated(missing)
    both = copy.deepcopy(document)
    both["channels"]["orders"]["bindings"]["amqp"]["exchange"] = {"name": "x"}
    with pytest.raises(ValidationError):
        validated(both)
    dangling = copy.deepcopy(document)
    dangling["operations"]["Orders.receive.orders"]["channel"] = {"$ref": "#/channels/nowhere"}
    with pytest.raises(KeyError):
        validated(dangling)


def test_output_file_title_and_version() -> None:
    """--output writes the document to a file (nothing on stdout); --title and --app-version
    set info."""
    path = Path(__file__).parent / "schemas" / f"out-{uuid.uuid4().hex}.json"
    try:
        result = run_cli(
            "asyncapi", "consumers", "--output", str(path), "--title", "Items",
            "--app-version", "2.0.1",
        )  # fmt: skip
        assert 0 == result.returncode, result.stderr
        assert "" == result.stdout
        document = validated(json.loads(path.read_text(encoding="utf-8")))
    finally:
        path.unlink(missing_ok=True)
    assert {"title": "Items", "version": "2.0.1"} == {
        name: document["info"][name] for name in ("title", "version")
    }


def test_an_orchestrator_target_and_its_version() -> None:
    """MODULE:ATTRIBUTE works as for run; the title is its module; a package with no version
    and no distribution says it is unversioned."""
    result = run_cli("asyncapi", "examples.orders.main:orchestrator")
    assert 0 == result.returncode, result.stderr
    document = validated(json.loads(result.stdout))
    assert ("examples.orders.main", "unversioned") == (
        document["info"]["title"],
        document["info"]["version"],
    )
    assert document["operations"]


def test_unwritable_output_and_unknown_target_are_one_line_errors() -> None:
    """A directory that does not exist, a package that does not: one line, exit 1, no output."""
    result = run_cli("asyncapi", "consumers", "--output", "/nonexistent/dir/doc.json")
    assert 1 == result.returncode
    assert ["bulkworker: error: No such file or directory: /nonexistent/dir/doc.json"] == (
        result.stderr.strip().splitlines()
    )
    result = run_cli("asyncapi", "no_such_package")
    assert 1 == result.returncode
    assert "" == result.stdout
    assert 1 == len(result.stderr.strip().splitlines())


def test_help_describes_every_option() -> None:
    """`bulkworker asyncapi --help` explains the target and each option."""
    result = run_cli("asyncapi", "--help")
    assert 0 == result.returncode
    for option in ("TARGET", "--container", "--output", "--title", "--app-version"):
        assert option in result.stdout


def contains(actual: Any, excerpt: Any) -> bool:
    """``excerpt`` is ``actual`` with some object keys left out."""
    if isinstance(excerpt, dict):
        return isinstance(actual, dict) and all(
            name in actual and contains(actual[name], value) for name, value in excerpt.items()
        )
    if isinstance(excerpt, list):
        return (
            isinstance(actual, list)
            and len(actual) == len(excerpt)
            and all(contains(a, e) for a, e in zip(actual, excerpt, strict=True))
        )
    return bool(actual == excerpt)


def test_the_documented_excerpt_is_what_the_command_prints() -> None:
    """docs/asyncapi.md shows part of the shipped app's document exactly as it is made."""
    page = (Path(__file__).parent.parent / "docs" / "asyncapi.md").read_text(encoding="utf-8")
    excerpt = json.loads(page.split("```json\n", 1)[1].split("```", 1)[0])
    result = run_cli(
        "asyncapi", "consumers", "--container", "consumers.container:AppContainer",
        BULKWORKER_AMQP_URL="amqp://user:secret@rabbit.internal:5672/shop",
    )  # fmt: skip
    assert 0 == result.returncode, result.stderr
    assert contains(json.loads(result.stdout), excerpt)
    assert not contains(json.loads(result.stdout), {"channels": {"items": {"title": "other"}}})


def test_what_json_cannot_say_is_described_and_the_document_still_validates() -> None:
    """A field only the consumer's own converter reads, a list model, queue arguments that are
    no JSON: the document is made, each part says what it is."""
    own = json_converter()
    own.register_structure_hook(complex, lambda value, _: complex(value))

    @attrs.frozen
    class Signal:
        level: complex

    class Signals(BulkConsumer):
        queues = ["signals"]
        model = list[Signal]
        converter = own
        queue_arguments = {"x-expires-at": datetime.datetime(2030, 1, 2, 3, 4), "x-ratio": 0.5}

        async def handle(self, messages: list[Message[Any]]) -> None:
            return None

    document = made(Signals)
    message = document["components"]["messages"]["Signals"]
    assert {"type": "array", "items": {"$ref": "#/components/schemas/Signal"}} == message["payload"]
    level = document["components"]["schemas"]["Signal"]["properties"]["level"]
    assert ["description"] == list(level)
    assert "complex" in level["description"]
    assert "by the converter cattrs" in message["description"]
    assert {"x-expires-at": "2030-01-02T03:04:00", "x-ratio": 0.5} == document["channels"][
        "signals"
    ]["bindings"]["amqp"]["x-bulkworker-arguments"]


def test_a_bad_url_is_a_one_line_error_without_its_password() -> None:
    """A URL that is no AMQP URL stops the command with one line that hides the password."""
    result = run_cli("asyncapi", "consumers", BULKWORKER_AMQP_URL=f"http://u:{PASSWORD}@h/")
    assert 1 == result.returncode
    assert "" == result.stdout
    assert 1 == len(result.stderr.strip().splitlines()), result.stderr
    assert "BULKWORKER_AMQP_URL" in result.stderr
    assert PASSWORD not in result.stderr


def test_the_version_comes_from_the_package_or_its_distribution(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A package's __version__ first, else the version of the distribution that installs it."""
    assert metadata.version("bulkworker") == package_version("framework")
    versioned = types.ModuleType("versioned_shop")
    versioned.__version__ = "3.1.4"  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "versioned_shop", versioned)
    assert "3.1.4" == package_version("versioned_shop")
    assert "unversioned" == package_version("no_such_shop")


def test_an_ipv6_broker_and_a_connection_left_out() -> None:
    """An IPv6 host keeps its brackets; a consumer whose connection is not given is an error
    naming the consumer and the connection."""
    ipv6 = Connection(name="default", url=f"amqp://u:{PASSWORD}@[::1]/", variable="URL")
    assert "[::1]:5672" == made(Orders, connections=(ipv6,))["servers"]["default"]["host"]

    class Elsewhere(BulkConsumer):
        queues = ["elsewhere"]
        connection = "audit"

        async def handle(self, messages: list[Message[Any]]) -> None:
            return None

    with pytest.raises(ConfigurationError, match=r"Elsewhere.connection is 'audit'"):
        made(Elsewhere)


def test_the_public_function_takes_a_package_and_its_container() -> None:
    """asyncapi_document("consumers", container): the URL from the container's config, the
    consumers from the package, as a run would have them."""
    container = AppContainer()
    container.config.amqp_url.from_value(f"amqp://app:{PASSWORD}@mq.example:5672/items")
    document = validated(asyncapi_document("consumers", container, title="items", version="0.1.0"))
    assert ("mq.example:5672", "/items") == (
        document["servers"]["default"]["host"],
        document["servers"]["default"]["pathname"],
    )
    assert "items" == document["channels"]["items"]["bindings"]["amqp"]["queue"]["vhost"]
    assert PASSWORD not in json.dumps(document)


def test_the_same_consumers_make_the_same_document() -> None:
    """Made twice, byte for byte the same: a document kept in a repository diffs cleanly."""
    first = run_cli("asyncapi", "tests.apps.described")
    second = run_cli("asyncapi", "tests.apps.described")
    assert 0 == first.returncode, first.stderr
    assert first.stdout == second.stdout


@pytest.mark.parametrize(
    ("url", "vhost", "pathname"),
    [
        ("amqp://h", "/", "/"),
        ("amqp://h/", "/", "/"),
        ("amqp://h/%2F", "/", "/"),
        ("amqp://h/shop", "shop", "/shop"),
        ("amqp://h/my%20shop", "my shop", "/my%20shop"),
        ("amqp://h/eu%2Fshop", "eu/shop", "/eu%2Fshop"),
    ],
)
async def test_the_vhost_is_the_one_the_client_connects_to(
    url: str, vhost: str, pathname: str
) -> None:
    """The binding's vhost is what aiormq makes of the URL's path; the server's path selects it."""
    document = made(Orders, connections=(Connection(name="default", url=url, variable="URL"),))
    assert vhost == document["channels"]["orders"]["bindings"]["amqp"]["queue"]["vhost"]
    assert pathname == document["servers"]["default"]["pathname"]
    assert vhost == aiormq.Connection(url).vhost


def test_a_stream_shows_its_type_and_offset_and_no_retries() -> None:
    """A stream queue: its type in the binding, where reading starts, and no retry operation,
    since a stream takes nothing back."""

    class Ticks(BulkConsumer):
        queues = ["ticks"]
        queue_arguments = {"x-queue-type": "stream"}
        stream_offset = "first"
        on_exception = Actions.REJECT

        async def handle(self, messages: list[Message[Any]]) -> None:
            return None

    document = made(Ticks)
    assert "stream" == document["channels"]["ticks"]["bindings"]["amqp"]["x-bulkworker-queue-type"]
    receive = document["operations"]["Ticks.receive.ticks"]
    assert "first" == receive["x-bulkworker-stream-offset"]
    assert "A stream, read from first" in receive["description"]
    assert ["Ticks.receive.ticks", "Ticks.dead-letter.ticks.dlq"] == list(document["operations"])


def test_partitions_are_an_exchange_in_front_of_single_active_queues() -> None:
    """partitions = 3: a channel for the consistent-hash exchange publishers send to, and one
    per partition queue, each with a single active consumer."""

    class Balances(BulkConsumer):
        queues = ["balances"]
        partitions = 3
        partition_key = "headers.account"

        async def handle(self, messages: list[Message[Any]]) -> None:
            return None

    document = made(Balances)
    partitions = ["balances.p0", "balances.p1", "balances.p2"]
    assert set(partitions) | {"balances"} < set(document["channels"])
    exchange = document["channels"]["balances"]["bindings"]["amqp"]
    assert ("routingKey", "balances", "x-consistent-hash", partitions) == (
        exchange["is"],
        exchange["exchange"]["name"],
        exchange["x-bulkworker-exchange-type"],
        exchange["x-bulkworker-partition-queues"],
    )
    queue = document["channels"]["balances.p1"]["bindings"]["amqp"]
    assert queue["x-bulkworker-arguments"]["x-single-active-consumer"] is True
    receive = document["operations"]["Balances.receive.balances.p1"]
    assert (3, "headers.account") == (
        receive["x-bulkworker-partitions"],
        receive["x-bulkworker-partition-key"],
    )
