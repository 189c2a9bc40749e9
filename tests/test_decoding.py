"""Decoding bodies by content type."""

import attrs
import pytest

from framework import BulkConsumer, Message
from framework.core.decoding import body_decoder, decode_body
from framework.errors import DecodeError
from framework.testing import ConsumerHarness


@pytest.mark.parametrize(
    ("raw", "content_type", "expected"),
    [
        (b'{"a": 1}', "application/json", {"a": 1}),
        (b'{"a": 1}', "application/json; charset=utf-8", {"a": 1}),
        (b'{"a": 1}', "application/vnd.items+json", {"a": 1}),
        (b'{"a": 1}', None, {"a": 1}),
        (b"[1, 2]", "", [1, 2]),
        (b"not json", None, b"not json"),
        (b"\xff\xfe", None, b"\xff\xfe"),
        (b'{"a": 1}', "text/plain", '{"a": 1}'),
        ("caf\u00e9".encode("latin-1"), "text/plain; charset=latin-1", "caf\u00e9"),
        (b"18446744073709551616", None, 18446744073709551616),
        (b"\x00\x01", "application/octet-stream", b"\x00\x01"),
    ],
)
def test_body_is_decoded_by_content_type(
    raw: bytes, content_type: str | None, expected: object
) -> None:
    """JSON types and type-less JSON become objects; everything else stays bytes."""
    assert expected == decode_body(raw, content_type)


@pytest.mark.parametrize("raw", [b"{bad", b"\xff", b""])
def test_invalid_json_with_json_type_is_an_error(raw: bytes) -> None:
    """A body that lies about being JSON raises DecodeError with the reason."""
    with pytest.raises(DecodeError, match="invalid JSON for content type 'application/json'"):
        decode_body(raw, "application/json")


def test_invalid_text_is_an_error() -> None:
    """A text body that is not valid in its charset is undecodable."""
    with pytest.raises(DecodeError, match="invalid text for content type 'text/plain'"):
        decode_body(b"\xff", "text/plain")


def test_custom_decoder_and_its_failures() -> None:
    """A consumer's decoder replaces the built-in one; anything it raises is undecodable."""

    def csv_row(raw: bytes, content_type: str | None) -> list[str]:
        if not raw:
            raise ValueError("empty row")
        return raw.decode().split(",")

    decode = body_decoder(csv_row, None)
    assert ["a", "b"] == decode(b"a,b", "text/csv")
    with pytest.raises(DecodeError, match="the decoder raised ValueError: empty row") as caught:
        decode(b"", "text/csv")
    assert "undecodable" == caught.value.reason


def test_model_structures_and_names_the_bad_fields() -> None:
    """With a model, bodies become instances; misfits say which field and why."""

    @attrs.frozen
    class Point:
        x: int
        y: int

    decode = body_decoder(None, Point)
    assert Point(1, 2) == decode(b'{"x": 1, "y": 2}', "application/json")
    with pytest.raises(DecodeError) as caught:
        decode(b'{"x": 1}', "application/json")
    assert "invalid" == caught.value.reason
    assert "does not fit Point: required field missing @ $.y" == str(caught.value)
    assert [1, 2] == body_decoder(None, list[int])(b"[1, 2]", None)


@pytest.mark.parametrize("content_type", ["application/json", None])
def test_deep_nesting_is_undecodable_with_or_without_a_type(content_type: str | None) -> None:
    """JSON nested deeper than the parser goes is a DecodeError, not a RecursionError."""
    with pytest.raises(DecodeError, match="JSON nested too deeply to decode") as caught:
        decode_body(b"[" * 100000 + b"]" * 100000, content_type)
    assert "undecodable" == caught.value.reason


def must_not_be_x(instance: object, attribute: "attrs.Attribute[str]", value: str) -> None:
    if value == "x":
        raise ValueError("must not be x")


@attrs.frozen
class Line:
    sku: str = attrs.field(validator=must_not_be_x)
    qty: int = attrs.field(default=1, validator=attrs.validators.gt(0))


@attrs.frozen
class Payment:
    amount: int = attrs.field(validator=attrs.validators.ge(0))
    currency: str = attrs.field(default="EUR", validator=attrs.validators.in_(["EUR", "USD"]))
    lines: list[Line] = attrs.field(factory=list)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'{"amount": -5}', "'amount' must be >= 0: -5 @ $.amount"),
        (
            b'{"amount": 5, "currency": "GBP"}',
            "'currency' must be in ['EUR', 'USD'] (got 'GBP') @ $.currency",
        ),
        (
            b'{"amount": 5, "lines": [{"sku": "a"}, {"sku": "b", "qty": 0}]}',
            "'qty' must be > 0: 0 @ $.lines[1].qty",
        ),
        (b'{"amount": 5, "lines": [{"sku": "x"}]}', "must not be x @ $.lines[0].sku"),
    ],
)  # fmt: skip
def test_an_attrs_validators_error_names_its_field(raw: bytes, expected: str) -> None:
    """A validator's refusal is reported at the field's path, nested ones included."""
    with pytest.raises(DecodeError) as raised:
        body_decoder(None, Payment)(raw, "application/json")
    assert f"does not fit Payment: {expected}" == str(raised.value)


class Payments(BulkConsumer):
    queues = ["payments"]
    model = Payment

    async def handle(self, messages: list[Message[Payment]]) -> None:
        pass


async def test_a_dead_letter_for_a_validator_names_the_field() -> None:
    """In the harness, the dead letter's error carries the field's path."""
    async with ConsumerHarness(Payments) as harness:
        await harness.publish({"amount": -5})
        await harness.flush()
    [dead] = harness.dead_lettered
    assert ("invalid", "does not fit Payment: 'amount' must be >= 0: -5 @ $.amount") == (
        dead.reason,
        dead.error,
    )
