"""The JSON Schema of a ``model``: what a body must look like for bulkworker's converter to read it.

It follows :mod:`framework.core.serialization`: datetimes and dates as ISO 8601
text, UUIDs as text, Decimals as text or a number, enums by value, nested attrs
classes and dataclasses as objects (each once, as a named definition, so a
recursive model is fine). A type with no JSON Schema here becomes ``{}`` (any
value) with a description that says so: describing a model never fails.
"""

import dataclasses
import datetime
import decimal
import enum
import re
import types
import typing
import uuid
from collections import abc
from typing import Any, NamedTuple

import attrs

from framework.core.serialization import JSON_SCALARS, type_name

Schema = dict[str, Any]

SCALARS: dict[Any, Schema] = {
    str: {"type": "string"},
    bool: {"type": "boolean"},
    int: {"type": "integer"},
    float: {"type": "number"},
    type(None): {"type": "null"},
    datetime.datetime: {"type": "string", "format": "date-time"},
    datetime.date: {"type": "string", "format": "date"},
    uuid.UUID: {"type": "string", "format": "uuid"},
    # cattrs' JSON converter writes bytes as base85 text.
    bytes: {"type": "string", "contentEncoding": "base85"},
    decimal.Decimal: {
        "type": ["string", "number"],
        "description": "a decimal number, as text to keep every digit (a JSON number is read too)",
    },
}
SEQUENCES = (list, abc.Sequence, abc.MutableSequence, abc.Iterable, abc.Collection)
SETS = (set, frozenset, abc.Set, abc.MutableSet)
MAPPINGS = (dict, abc.Mapping, abc.MutableMapping)
# What a definition's name may hold (AsyncAPI's component names).
NAME_CHARACTERS = re.compile(r"[^A-Za-z0-9._-]")
# A field without a default, or with one made by a factory: nothing to show.
NO_DEFAULT: Any = object()


class Field(NamedTuple):
    """One field of a record (attrs class, dataclass or TypedDict) as its JSON object shows it."""

    name: str
    kind: Any
    required: bool
    default: Any = NO_DEFAULT


def unknown(kind: Any, why: str = "") -> Schema:
    """Any value, and why nothing stricter can be said."""
    reason = why or "no JSON Schema is known for it; the converter's structure hook decides"
    return {"description": f"{type_name(kind)}: {reason}"}


def unwrapped(kind: Any) -> Any:
    """The type under ``Annotated[...]`` and ``NewType``."""
    while True:
        if typing.get_origin(kind) is typing.Annotated:
            kind = typing.get_args(kind)[0]
        elif hasattr(kind, "__supertype__"):
            kind = kind.__supertype__
        else:
            return kind


def is_record(kind: Any) -> bool:
    """An attrs class, a dataclass or a TypedDict, or a generic attrs class with its arguments."""
    origin = typing.get_origin(kind) or kind
    return isinstance(origin, type) and (
        attrs.has(origin) or dataclasses.is_dataclass(origin) or typing.is_typeddict(origin)
    )


@attrs.define
class ModelSchemas:
    """JSON Schemas of models; records become named definitions, referred to by ``$ref``.

    Several models share the definitions: a class used by two consumers is
    defined once.

    Args:
        reference_prefix: where the definitions will live in the document
            (``#/components/schemas/`` in AsyncAPI).
    """

    reference_prefix: str = "#/definitions/"
    definitions: dict[str, Schema] = attrs.field(factory=dict)
    _names: dict[Any, str] = attrs.field(factory=dict)

    def __repr__(self) -> str:
        return f"<ModelSchemas(definitions={len(self.definitions)})>"

    def schema_of(self, kind: Any) -> Schema:
        """The JSON Schema of values of ``kind``, as JSON bodies hold them; never raises."""
        try:
            return self.described(unwrapped(kind))
        except Exception as error:  # a type this module never met: say so, describe the rest
            return unknown(kind, f"it cannot be described ({type(error).__name__}: {error})")

    def described(self, kind: Any) -> Schema:
        if kind is Any:
            return {}
        if kind in SCALARS:
            return dict(SCALARS[kind])
        if isinstance(kind, type) and issubclass(kind, enum.Enum):
            return enum_schema(kind)
        if is_record(kind):
            return self.reference(kind)
        origin = typing.get_origin(kind)
        if origin is typing.Literal:
            return literal_schema(kind)
        if origin is typing.Union or origin is types.UnionType:
            return {"anyOf": [self.schema_of(arg) for arg in typing.get_args(kind)]}
        return self.container_schema(kind)

    def container_schema(self, kind: Any) -> Schema:
        origin, arguments = typing.get_origin(kind) or kind, typing.get_args(kind)
        if origin is tuple:
            return self.tuple_schema(arguments)
        if origin in SEQUENCES or origin in SETS:
            items = self.schema_of(arguments[0]) if arguments else {}
            unique = {"uniqueItems": True} if origin in SETS else {}
            return {"type": "array", "items": items, **unique}
        if origin in MAPPINGS:
            values = self.schema_of(arguments[1]) if len(arguments) == 2 else {}
            return {"type": "object", "additionalProperties": values}
        return unknown(kind)

    def tuple_schema(self, arguments: tuple[Any, ...]) -> Schema:
        if not arguments:
            return {"type": "array"}
        if len(arguments) == 2 and arguments[1] is Ellipsis:
            return {"type": "array", "items": self.schema_of(arguments[0])}
        if arguments == ((),):  # tuple[()]: the empty tuple
            return {"type": "array", "maxItems": 0}
        return {
            "type": "array",
            "items": [self.schema_of(argument) for argument in arguments],
            "additionalItems": False,
            "minItems": len(arguments),
        }

    def reference(self, kind: Any) -> Schema:
        """A ``$ref`` to the definition of record ``kind``, defined on first use."""
        name = self._names.get(kind)
        if name is None:
            name = self._names[kind] = self.unique_name(kind)
            self.definitions[name] = {}  # a recursive field refers to it while it is made
            self.definitions[name] = self.record_schema(kind, name)
        return {"$ref": f"{self.reference_prefix}{name}"}

    def unique_name(self, kind: Any) -> str:
        arguments = typing.get_args(kind)
        base = getattr(typing.get_origin(kind) or kind, "__name__", "Model")
        if arguments:
            base += "Of" + "And".join(getattr(a, "__name__", "Value") for a in arguments)
        base = NAME_CHARACTERS.sub("_", base)
        name, number = base, 1
        while name in self.definitions:
            number += 1
            name = f"{base}_{number}"
        return name

    def record_schema(self, kind: Any, name: str) -> Schema:
        try:
            fields = record_fields(kind)
        except Exception as error:  # an annotation that does not resolve: say so, go on
            return unknown(kind, f"its fields cannot be read ({type(error).__name__}: {error})")
        properties = {field.name: self.field_schema(field) for field in fields}
        schema: Schema = {"type": "object", "title": name, "properties": properties}
        required = [field.name for field in fields if field.required]
        if required:
            schema["required"] = required
        description = own_docstring(typing.get_origin(kind) or kind)
        if description:
            schema["description"] = description
        return schema

    def field_schema(self, field: Field) -> Schema:
        schema = self.schema_of(field.kind)
        # Beside a $ref, draft-07 ignores other keywords: say the default only where it counts.
        if "$ref" not in schema and is_json_scalar(field.default):
            schema["default"] = field.default
        return schema


def enum_schema(kind: type[enum.Enum]) -> Schema:
    values = [member.value for member in kind]
    if not all(is_json_scalar(value) for value in values):
        return unknown(kind, "its values are not all JSON strings, numbers or booleans")
    return {"enum": values, "title": kind.__name__}


def literal_schema(kind: Any) -> Schema:
    values = [value.value if isinstance(value, enum.Enum) else value for value in kind.__args__]
    if not all(is_json_scalar(value) for value in values):
        return unknown(kind, "its values are not all JSON strings, numbers or booleans")
    return {"enum": values}


def is_json_scalar(value: Any) -> bool:
    return isinstance(value, JSON_SCALARS)


def record_fields(kind: Any) -> list[Field]:
    """The fields a body's object holds for record ``kind``, their types resolved."""
    origin = typing.get_origin(kind) or kind
    hints = substituted(typing.get_type_hints(origin), origin, typing.get_args(kind))
    if typing.is_typeddict(origin):
        required_keys = origin.__required_keys__
        return [Field(name, hint, name in required_keys) for name, hint in hints.items()]
    if dataclasses.is_dataclass(origin):
        return [dataclass_field(field, hints) for field in dataclasses.fields(origin) if field.init]
    return [attrs_field(field, hints) for field in attrs.fields(origin) if field.init]


def attrs_field(field: "attrs.Attribute[Any]", hints: dict[str, Any]) -> Field:
    required = field.default is attrs.NOTHING
    made = required or isinstance(field.default, attrs.Factory)  # type: ignore[arg-type]
    default = NO_DEFAULT if made else field.default
    return Field(field.name, hints.get(field.name, field.type), required, default)


def dataclass_field(field: "dataclasses.Field[Any]", hints: dict[str, Any]) -> Field:
    missing = dataclasses.MISSING
    required = field.default is missing and field.default_factory is missing
    default = NO_DEFAULT if field.default is missing else field.default
    return Field(field.name, hints.get(field.name, field.type), required, default)


def substituted(hints: dict[str, Any], origin: Any, arguments: tuple[Any, ...]) -> dict[str, Any]:
    """The hints of a generic record with its type parameters replaced by ``arguments``."""
    parameters = getattr(origin, "__parameters__", ())
    if not arguments or len(parameters) != len(arguments):
        return hints
    given = dict(zip(parameters, arguments, strict=True))
    return {name: substitute(hint, given) for name, hint in hints.items()}


def substitute(hint: Any, given: dict[Any, Any]) -> Any:
    if isinstance(hint, typing.TypeVar):
        return given.get(hint, Any)
    parameters = getattr(hint, "__parameters__", ())
    if parameters and typing.get_origin(hint) is not None:
        return hint[tuple(given.get(parameter, Any) for parameter in parameters)]
    return hint


def own_docstring(kind: Any) -> str:
    """The first paragraph of the class's own docstring (not a dataclass's generated one)."""
    text = kind.__dict__.get("__doc__") or ""
    if dataclasses.is_dataclass(kind) and text.startswith(f"{getattr(kind, '__name__', '')}("):
        return ""
    return " ".join(text.strip().split("\n\n")[0].split())
