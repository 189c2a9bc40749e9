"""AMQP properties for the copies the engine moves, built from its neutral moves.

A copy's properties must fit one frame of the connection (``frame_max``, 128 KiB
by default): the broker closes the whole connection over a larger one. A copy
that would not fit leaves out the original's largest headers, named in
``x-bulkworker-dropped-headers``; the framework's own headers always stay.

A copy carries the original's headers. One kind of value cannot be published
again as it came: a 64-bit float (AMQP ``d``, as Java, Go and .NET clients send
it) decodes to a Python ``float``, which the AMQP library encodes as a 32-bit
``f``; 1e300 then fails to encode and 0.1 would silently change. Such a value is
carried as its exact decimal text (``"1e+300"``), and the header
``x-bulkworker-converted`` lists the names of the headers that were converted.
"""

import copy
import math
import struct
from typing import Any

from aiormq import spec
from pamqp import frame
from pamqp.header import ContentHeader

from framework.core.headers import CONVERTED_HEADER, DROPPED_HEADER, OWN_PREFIX
from framework.core.message import Message
from framework.core.outcome import Move

PERSISTENT = 2


def properties_of(move: Move, frame_max: int = 0) -> spec.Basic.Properties:
    """The properties the copy of ``move`` is published with, fitted to ``frame_max``."""
    changes: dict[str, Any] = {"headers": move.headers, "expiration": move.expiration}
    if move.persistent:
        changes["delivery_mode"] = PERSISTENT
    properties = copied_properties(move.message, **changes)
    return fitted(properties, len(move.message.raw), frame_max)


def fitted(
    properties: spec.Basic.Properties, body_size: int, frame_max: int
) -> spec.Basic.Properties:
    """``properties`` without the original's largest headers, until the header frame fits.

    ``frame_max`` 0 means no limit. What still does not fit with only the
    framework's own headers is left to the broker to refuse (the move is held).
    """
    if not frame_max or header_frame_size(properties, body_size) <= frame_max:
        return properties
    headers: dict[str, Any] = dict(properties.headers or {})
    foreign = [name for name in headers if not name.startswith(OWN_PREFIX)]
    dropped: list[Any] = []  # a field array, as the AMQP library types it
    for name in sorted(foreign, key=lambda name: len(repr(headers[name])), reverse=True):
        del headers[name]
        dropped.append(name)
        properties.headers = {**headers, DROPPED_HEADER: dropped}
        if header_frame_size(properties, body_size) <= frame_max:
            break
    return properties


def header_frame_size(properties: spec.Basic.Properties, body_size: int) -> int:
    """Bytes of the content header frame these properties make."""
    return len(frame.marshal(ContentHeader(0, body_size, properties), 1))


def copied_properties(message: Message[Any], **changes: Any) -> spec.Basic.Properties:
    """The message's AMQP properties with ``changes``; user_id dropped (the broker checks it)."""
    original = message.properties
    if original is None:
        original = spec.Basic.Properties(
            content_type=message.content_type,
            message_id=message.message_id,
            headers=dict(message.headers),
        )
    properties: spec.Basic.Properties = copy.copy(original)
    properties.user_id = None
    for name, value in changes.items():
        setattr(properties, name, value)
    if properties.headers:
        properties.headers = carried_headers(properties.headers)
    return properties


def carried_headers(headers: dict[str, Any]) -> dict[str, Any]:
    """``headers`` as they can be published again without changing any value.

    A float that a 32-bit AMQP ``f`` cannot hold exactly becomes its decimal
    text, and its header's name is added to ``x-bulkworker-converted``.
    """
    carried: dict[str, Any] = {}
    converted: list[str] = []
    for name, value in headers.items():
        carried[name], changed = carried_value(value)
        if changed:
            converted.append(name)
    if converted:
        earlier = carried.get(CONVERTED_HEADER)
        named = [str(name) for name in earlier] if isinstance(earlier, list) else []
        carried[CONVERTED_HEADER] = named + [name for name in converted if name not in named]
    return carried


def carried_value(value: Any) -> tuple[Any, bool]:
    """The value to publish in its place, and whether it had to change (tables too)."""
    if isinstance(value, float):
        return (value, False) if fits_single(value) else (repr(value), True)
    if isinstance(value, dict):
        items = {key: carried_value(item) for key, item in value.items()}
        changed = any(item_changed for _, item_changed in items.values())
        return {key: item for key, (item, _) in items.items()}, changed
    if isinstance(value, list):
        pairs = [carried_value(item) for item in value]
        return [item for item, _ in pairs], any(changed for _, changed in pairs)
    return value, False


def fits_single(value: float) -> bool:
    """Whether a 32-bit float (what the AMQP library encodes a float as) holds ``value`` exactly."""
    if math.isnan(value) or math.isinf(value):
        return True
    try:
        packed = struct.pack(">f", value)
    except OverflowError:
        return False
    return bool(struct.unpack(">f", packed)[0] == value)
