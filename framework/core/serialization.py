"""One JSON story, both directions: attrs classes to JSON bodies and back, nothing coerced.

The converter reads consumed bodies into a consumer's ``model`` and turns what
a handler publishes into JSON. It knows datetimes and dates (ISO 8601 text),
UUIDs (text), Decimals (text, so no digit is lost; a JSON number is accepted
on the way in), enums (by value), nested attrs classes and the usual
containers. A value of the wrong JSON type is refused, never coerced: ``2.9``
is no ``int``, ``"false"`` no ``bool``; a whole number is a fine ``float``.
"""

import datetime
import decimal
import json
import typing
import uuid
from collections.abc import Callable
from typing import Any

import attrs
import cattrs
from cattrs.preconf.json import make_converter

from framework.errors import SerializationError

JSON_SCALARS = (str, int, float, bool, type(None))


class WrongType(TypeError):
    """A JSON value of the wrong type for its field; its text is what the dead letter says."""


def json_type(value: Any) -> str:
    """The JSON name of ``value``'s type, as a reader of the message would say it."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return "null" if value is None else type(value).__name__


def refuse(expected: str, value: Any) -> WrongType:
    return WrongType(f"expected {expected}, got {json_type(value)}{shown(value)}")


def shown(value: Any) -> str:
    text = json.dumps(value) if isinstance(value, JSON_SCALARS) else ""
    return f" ({text[:40]})" if text else ""


def structure_str(value: Any, _: type) -> str:
    if not isinstance(value, str):
        raise refuse("a string", value)
    return value


def structure_bool(value: Any, _: type) -> bool:
    if not isinstance(value, bool):
        raise refuse("true or false", value)
    return value


def structure_int(value: Any, _: type) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise refuse("a whole number", value)
    return value


def structure_float(value: Any, _: type) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise refuse("a number", value)
    return float(value)


def structure_decimal(value: Any, _: type) -> decimal.Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise refuse("a decimal number or its text", value)
    try:
        return decimal.Decimal(str(value))
    except decimal.InvalidOperation:
        raise refuse("a decimal number or its text", value) from None


def structure_uuid(value: Any, _: type) -> uuid.UUID:
    if not isinstance(value, str):
        raise refuse("a UUID as text", value)
    try:
        return uuid.UUID(value)
    except ValueError:
        raise refuse("a UUID as text", value) from None


def from_iso(kind: Callable[[str], Any], expected: str) -> Callable[[Any, type], Any]:
    def structure(value: Any, _: type) -> Any:
        if not isinstance(value, str):
            raise refuse(expected, value)
        try:
            return kind(value)
        except ValueError:
            raise refuse(expected, value) from None

    return structure


def json_converter(*, forbid_extra_keys: bool = False) -> cattrs.Converter:
    """A cattrs converter for JSON bodies, strict about types.

    Args:
        forbid_extra_keys: refuse objects with keys the attrs class has no
            field for (by default they are ignored).
    """
    converter = make_converter(forbid_extra_keys=forbid_extra_keys)
    converter.register_structure_hook(str, structure_str)
    converter.register_structure_hook(bool, structure_bool)
    converter.register_structure_hook(int, structure_int)
    converter.register_structure_hook(float, structure_float)
    converter.register_structure_hook(decimal.Decimal, structure_decimal)
    converter.register_structure_hook(uuid.UUID, structure_uuid)
    converter.register_structure_hook(
        datetime.datetime,
        from_iso(datetime.datetime.fromisoformat, "a date and time in ISO 8601"),
    )
    converter.register_structure_hook(
        datetime.date, from_iso(datetime.date.fromisoformat, "a date in ISO 8601")
    )
    converter.register_unstructure_hook(decimal.Decimal, str)
    converter.register_unstructure_hook(uuid.UUID, str)
    return converter


DEFAULT_CONVERTER = json_converter()


def model_problem(converter: cattrs.BaseConverter, model: Any) -> str | None:
    """Why ``converter`` cannot read ``model``, naming the field; None when it can."""
    if not attrs.has(model):
        return hook_problem(converter, model, getattr(model, "__name__", repr(model)))
    try:
        hints = typing.get_type_hints(model)
    except Exception as error:  # an unresolvable annotation names its own problem
        return f"{model.__name__}: its annotations cannot be resolved ({error})"
    for field in attrs.fields(model):
        where = f"{model.__name__}.{field.name}"
        field_type = hints.get(field.name, field.type)
        if attrs.has(field_type) and field_type is not model:
            problem = model_problem(converter, field_type)
        else:
            problem = hook_problem(converter, field_type, where)
        if problem is not None:
            return problem
    return None


def hook_problem(converter: cattrs.BaseConverter, kind: Any, where: str) -> str | None:
    try:
        converter.get_structure_hook(kind)
    except cattrs.errors.StructureHandlerNotFoundError as error:
        missing = getattr(error, "type_", kind)
        return f"{where}: no way to read {type_name(missing)} (register a structure hook)"
    except Exception as error:  # cattrs refuses some annotations outright
        return f"{where}: {type(error).__name__}: {error}"
    return None


def type_name(kind: Any) -> str:
    module = getattr(kind, "__module__", "")
    name = getattr(kind, "__qualname__", repr(kind))
    return name if module in ("builtins", "") else f"{module}.{name}"


def encode_body(
    body: Any, converter: cattrs.BaseConverter = DEFAULT_CONVERTER
) -> tuple[bytes, str | None]:
    """The bytes and content type of ``body``: bytes as they are, text as UTF-8, else JSON."""
    if isinstance(body, bytes | bytearray | memoryview):
        return bytes(body), None
    if isinstance(body, str):
        return body.encode(), "text/plain; charset=utf-8"
    return to_json(body, converter), "application/json"


def to_json(body: Any, converter: cattrs.BaseConverter = DEFAULT_CONVERTER) -> bytes:
    """``body`` as compact UTF-8 JSON; attrs instances, datetimes, UUIDs... through ``converter``.

    Raises:
        SerializationError: a value JSON cannot hold, with its path (``$.items[2].at``).
    """
    value = converter.unstructure(body)
    try:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise SerializationError(describe_unserializable(value, error)) from None
    return text.encode()


def describe_unserializable(value: Any, error: Exception) -> str:
    path, bad = first_unserializable(value, "$")
    if path is None:
        return f"the body cannot be written as JSON: {error}"
    return f"the body cannot be written as JSON: {path} is {shown_value(bad)}"


def shown_value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value!r} (not a JSON number)"
    return f"of type {type_name(type(value))}, which JSON cannot hold"


def first_unserializable(value: Any, path: str) -> tuple[str | None, Any]:
    """The path of the first value the JSON encoder refuses, and that value."""
    if isinstance(value, float):
        return (
            (path, value)
            if value != value or value in (float("inf"), -float("inf"))
            else (None, None)
        )
    if isinstance(value, JSON_SCALARS):
        return None, None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str | int | float | bool) and key is not None:
                return f"{path} key {key!r}", key
            found = first_unserializable(item, f"{path}.{key}")
            if found[0] is not None:
                return found
        return None, None
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = first_unserializable(item, f"{path}[{index}]")
            if found[0] is not None:
                return found
        return None, None
    return path, value
