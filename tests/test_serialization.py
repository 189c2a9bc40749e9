"""One JSON story both ways: models read strictly, published bodies written by one converter."""

import datetime
import decimal
import enum
import json
import uuid
from typing import Any

import attrs
import cattrs
import pytest

from framework import BulkConsumer, Message
from framework.core import decoding
from framework.core.consumer import ConsumerSettings
from framework.core.decoding import body_decoder
from framework.core.serialization import encode_body, to_json
from framework.errors import ConsumerDefinitionError, DecodeError, SerializationError


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@attrs.frozen
class Line:
    sku: str
    quantity: int = attrs.field(validator=attrs.validators.ge(1))


@attrs.frozen
class Order:
    id: uuid.UUID
    placed_at: datetime.datetime
    due: datetime.date
    total: decimal.Decimal
    colour: Colour
    lines: list[Line]
    note: str | None = None


@attrs.frozen
class Item:
    name: str
    price: float
    qty: int
    active: bool


ORDER = Order(
    id=uuid.UUID("12345678-1234-5678-1234-567812345678"),
    placed_at=datetime.datetime(2026, 11, 28, 7, 30, 5, 250000, tzinfo=datetime.UTC),
    due=datetime.date(2026, 12, 1),
    total=decimal.Decimal("10.10"),
    colour=Colour.BLUE,
    lines=[Line("a-1", 2), Line("b-2", 1)],
)


@pytest.fixture(params=["orjson", "stdlib"])
def json_parser(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run the test with orjson parsing bodies, then with the standard library alone."""
    if request.param == "stdlib":
        monkeypatch.setattr(decoding, "FAST_LOADS", None)
    else:
        pytest.importorskip("orjson")
        assert decoding.FAST_LOADS is not None
    return str(request.param)


def test_a_published_model_reads_back_equal(json_parser: str) -> None:
    """datetime, date, UUID, Decimal, enums and nested attrs survive publish and consume."""
    raw, content_type = encode_body(ORDER)
    assert "application/json" == content_type
    assert ORDER == body_decoder(None, Order)(raw, content_type)


def test_the_json_written_is_plain_and_exact() -> None:
    """Datetimes are ISO 8601, Decimals keep their digits as text, enums are their values."""
    written = json.loads(to_json(ORDER))
    assert "2026-11-28T07:30:05.250000+00:00" == written["placed_at"]
    assert "10.10" == written["total"]
    assert "blue" == written["colour"]
    assert "12345678-1234-5678-1234-567812345678" == written["id"]
    assert [{"sku": "a-1", "quantity": 2}, {"sku": "b-2", "quantity": 1}] == written["lines"]


def test_dicts_holding_datetimes_are_published_too() -> None:
    """A plain dict with a datetime and a Decimal is written like a model would be."""
    body = {"at": datetime.date(2026, 1, 2), "amount": decimal.Decimal("1.5"), "tags": ("a",)}
    assert {"at": "2026-01-02", "amount": "1.5", "tags": ["a"]} == json.loads(to_json(body))


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"when": object()}, "$.when"),
        ({"items": [1, 2, {1j: 3}]}, "$.items[2] key 1j"),
        ({"ratio": float("nan")}, "$.ratio"),
    ],
)
def test_a_body_json_cannot_hold_is_refused_naming_its_path(body: Any, path: str) -> None:
    """SerializationError (a TypeError) says where the bad value is, before anything is sent."""
    with pytest.raises(SerializationError) as caught:
        to_json(body)
    assert f"the body cannot be written as JSON: {path} is" in str(caught.value)
    assert isinstance(caught.value, TypeError)


@pytest.mark.parametrize(
    ("field", "value", "problem"),
    [
        ("active", "false", 'expected true or false, got a string ("false") @ $.active'),
        ("qty", 2.9, "expected a whole number, got a number (2.9) @ $.qty"),
        ("name", {"x": 1}, "expected a string, got an object @ $.name"),
        ("qty", True, "expected a whole number, got a boolean (true) @ $.qty"),
        ("price", "1.5", 'expected a number, got a string ("1.5") @ $.price'),
    ],
)
def test_a_value_of_the_wrong_json_type_is_invalid_never_coerced(
    json_parser: str, field: str, value: Any, problem: str
) -> None:
    """Strings are no booleans, fractions no ints, objects no strings: each is invalid."""
    body = {"name": "pen", "price": 1.5, "qty": 2, "active": True, field: value}
    with pytest.raises(DecodeError) as caught:
        body_decoder(None, Item)(json.dumps(body).encode(), "application/json")
    assert "invalid" == caught.value.reason
    assert f"does not fit Item: {problem}" == str(caught.value)


def test_a_whole_number_is_a_fine_float() -> None:
    """An int where a float is declared is read as that float."""
    item = body_decoder(None, Item)(b'{"name":"pen","price":2,"qty":1,"active":false}', None)
    assert Item("pen", 2.0, 1, False) == item
    assert isinstance(item.price, float)


def test_an_attrs_validator_message_is_the_reason() -> None:
    """The validator's own words reach the dead letter, not 'invalid value'."""
    raw = b'{"sku": "a", "quantity": 0}'
    with pytest.raises(DecodeError, match="'quantity' must be >= 1: 0"):
        body_decoder(None, Line)(raw, None)


def test_unknown_keys_are_ignored_unless_refused() -> None:
    """By default an extra key is ignored; refuse_unknown_keys makes it invalid."""

    class Lenient(BulkConsumer):
        queues = ["lenient"]
        model = Line

        async def handle(self, messages: list[Message[Line]]) -> None: ...

    class Strict(Lenient):
        refuse_unknown_keys = True

    raw = b'{"sku": "a", "quantity": 1, "colour": "red"}'
    lenient = ConsumerSettings.of(Lenient).model_converter()
    assert Line("a", 1) == body_decoder(None, Line, lenient)(raw, None)
    strict = ConsumerSettings.of(Strict).model_converter()
    with pytest.raises(DecodeError, match="extra fields found"):
        body_decoder(None, Line, strict)(raw, None)


def test_a_model_the_converter_cannot_read_fails_at_class_definition() -> None:
    """A field type with no structure hook is a one-line definition error naming the field."""

    @attrs.frozen
    class Event:
        at: datetime.datetime
        zone: datetime.timezone

    with pytest.raises(ConsumerDefinitionError) as caught:

        class Events(BulkConsumer):
            queues = ["events"]
            model = Event

            async def handle(self, messages: list[Message[Event]]) -> None: ...

    message = str(caught.value)
    assert message.startswith("Events.model Event.zone: no way to read datetime.timezone")
    assert "\n" not in message


def test_a_consumer_may_bring_its_own_converter() -> None:
    """converter = a cattrs converter of the user's: it reads the model, hooks and all."""
    own = cattrs.Converter()
    own.register_structure_hook(datetime.timezone, lambda value, _: datetime.UTC)

    @attrs.frozen
    class Zoned:
        zone: datetime.timezone

    class Zones(BulkConsumer):
        queues = ["zones"]
        model = Zoned
        converter = own

        async def handle(self, messages: list[Message[Zoned]]) -> None: ...

    settings = ConsumerSettings.of(Zones)
    decode = body_decoder(None, Zoned, settings.model_converter())
    assert Zoned(datetime.UTC) == decode(b'{"zone": "UTC"}', None)


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("converter", "json", "must be a cattrs converter, or None"),
        ("refuse_unknown_keys", "yes", "must be True or False"),
    ],
)
def test_serialization_settings_are_checked(name: str, value: Any, problem: str) -> None:
    """A wrong converter or flag fails at class definition naming class and attribute."""
    with pytest.raises(ConsumerDefinitionError, match=f"Bad.{name} {problem}"):
        type(
            "Bad",
            (BulkConsumer,),
            {"queues": ["bad"], name: value, "handle": _handle},
        )


def test_refusing_unknown_keys_with_an_own_converter_is_an_error() -> None:
    """refuse_unknown_keys configures bulkworker's converter; with an own one it is refused."""
    with pytest.raises(ConsumerDefinitionError, match=r"Both\.refuse_unknown_keys applies to"):

        class Both(BulkConsumer):
            queues = ["both"]
            converter = cattrs.Converter()
            refuse_unknown_keys = True

            async def handle(self, messages: list[Message[Any]]) -> None: ...


async def _handle(self: Any, messages: list[Message[Any]]) -> None:
    return None
