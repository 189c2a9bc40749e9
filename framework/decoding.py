"""Turning a message body into a Python value, by its content type."""

import functools
import json
from typing import Any

from framework.errors import DecodeError


@functools.lru_cache(maxsize=256)
def is_json_type(content_type: str | None) -> bool:
    """True for ``application/json`` and ``+json`` types, parameters ignored."""
    if not content_type:
        return False
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == "application/json" or media_type.endswith("+json")


def decode_body(raw: bytes, content_type: str | None) -> Any:
    """Decode ``raw`` once, the way ``Message.body`` presents it.

    A JSON content type must hold JSON, or :class:`DecodeError` says why not.
    Without a content type the body is JSON if it parses as JSON, else bytes:
    publishers that forget the header still get their objects back. Any other
    content type is left as bytes.
    """
    if is_json_type(content_type):
        try:
            return json.loads(raw)
        except ValueError as error:
            raise DecodeError(f"invalid JSON for content type {content_type!r}: {error}") from None
    if content_type:
        return raw
    try:
        return json.loads(raw)
    except ValueError:
        return raw
