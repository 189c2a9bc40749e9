"""Decoding bodies by content type."""

import pytest

from framework.decoding import decode_body
from framework.errors import DecodeError


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
        (b'{"a": 1}', "text/plain", b'{"a": 1}'),
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
