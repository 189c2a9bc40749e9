"""The JSON Schema of a model follows what bulkworker's converter reads, and never fails."""

import dataclasses
import datetime
import decimal
import enum
import typing
import uuid
from typing import Annotated, Any, Generic, Literal, NewType, TypedDict, TypeVar

import attrs
import jsonschema
import pytest

from framework.core.model_schema import ModelSchemas

T = TypeVar("T")
UserId = NewType("UserId", int)


class Size(enum.IntEnum):
    SMALL = 1
    LARGE = 2


class Odd(enum.Enum):
    WHEN = datetime.date(2024, 1, 1)


@attrs.frozen
class Node:
    name: str
    children: list["Node"] = attrs.Factory(list)


@attrs.frozen
class Page(Generic[T]):
    items: list[T]
    cursor: str | None = None


class Point(TypedDict, total=False):
    x: int
    y: int


@dataclasses.dataclass
class Plain:
    a: int
    b: list[int] = dataclasses.field(default_factory=list)


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (str, {"type": "string"}),
        (bool, {"type": "boolean"}),
        (int, {"type": "integer"}),
        (float, {"type": "number"}),
        (datetime.datetime, {"type": "string", "format": "date-time"}),
        (datetime.date, {"type": "string", "format": "date"}),
        (uuid.UUID, {"type": "string", "format": "uuid"}),
        (bytes, {"type": "string", "contentEncoding": "base85"}),
        (Any, {}),
        (UserId, {"type": "integer"}),
        (Annotated[int, "a note"], {"type": "integer"}),
        (Size, {"enum": [1, 2], "title": "Size"}),
        (Literal["a", 1, True], {"enum": ["a", 1, True]}),
        (int | None, {"anyOf": [{"type": "integer"}, {"type": "null"}]}),
        (typing.Optional[str], {"anyOf": [{"type": "string"}, {"type": "null"}]}),  # noqa: UP045
        (list[int], {"type": "array", "items": {"type": "integer"}}),
        (typing.Sequence[str], {"type": "array", "items": {"type": "string"}}),
        (frozenset[int], {"type": "array", "items": {"type": "integer"}, "uniqueItems": True}),
        (tuple[int, ...], {"type": "array", "items": {"type": "integer"}}),
        (
            tuple[int, str],
            {
                "type": "array",
                "items": [{"type": "integer"}, {"type": "string"}],
                "additionalItems": False,
                "minItems": 2,
            },
        ),
        (dict[str, float], {"type": "object", "additionalProperties": {"type": "number"}}),
        (list, {"type": "array", "items": {}}),
        (dict, {"type": "object", "additionalProperties": {}}),
    ],
    ids=repr,
)
def test_each_type_has_the_schema_of_its_json(kind: Any, expected: dict[str, Any]) -> None:
    """Scalars, containers, unions, literals, enums: the JSON the converter reads."""
    assert expected == ModelSchemas().schema_of(kind)


def test_decimals_are_text_or_numbers() -> None:
    """A Decimal is written as text and read from text or a number."""
    assert ["string", "number"] == ModelSchemas().schema_of(decimal.Decimal)["type"]


def test_a_recursive_model_refers_to_itself() -> None:
    """A tree of nodes is one definition whose children refer back to it; no default is
    claimed for a field made by a factory."""
    schemas = ModelSchemas()
    assert {"$ref": "#/definitions/Node"} == schemas.schema_of(Node)
    assert {
        "type": "object",
        "title": "Node",
        "properties": {
            "name": {"type": "string"},
            "children": {"type": "array", "items": {"$ref": "#/definitions/Node"}},
        },
        "required": ["name"],
    } == schemas.definitions["Node"]


def test_generic_typed_dict_and_dataclass_records() -> None:
    """Page[Node] has its parameter filled in; a TypedDict's optional keys are not required; a
    dataclass's generated docstring is not shown."""
    schemas = ModelSchemas()
    schemas.schema_of(Page[Node])
    schemas.schema_of(Point)
    schemas.schema_of(Plain)
    page = schemas.definitions["PageOfNode"]
    assert {"type": "array", "items": {"$ref": "#/definitions/Node"}} == page["properties"]["items"]
    assert ["items"] == page["required"]
    assert {"x": {"type": "integer"}, "y": {"type": "integer"}} == schemas.definitions["Point"][
        "properties"
    ]
    assert "required" not in schemas.definitions["Point"]
    assert "description" not in schemas.definitions["Plain"]


def test_two_classes_of_one_name_get_two_definitions() -> None:
    """Same-named classes from different places do not overwrite each other."""

    def make() -> type:
        @attrs.frozen
        class Item:
            sku: str

        return Item

    schemas = ModelSchemas()
    first, second = make(), make()
    assert {"$ref": "#/definitions/Item"} == schemas.schema_of(first)
    assert {"$ref": "#/definitions/Item_2"} == schemas.schema_of(second)
    assert {"$ref": "#/definitions/Item"} == schemas.schema_of(first)


@pytest.mark.parametrize(
    "kind",
    [complex, Odd, Literal[b"raw"], 5, [int], typing.Callable[[int], int]],
    ids=repr,
)
def test_what_has_no_schema_is_any_value_with_a_reason(kind: Any) -> None:
    """A type JSON Schema cannot say (or not a type at all) is `{}` with a description."""
    schema = ModelSchemas().schema_of(kind)
    assert ["description"] == list(schema)
    assert schema["description"]


def test_a_record_whose_annotations_do_not_resolve_is_described() -> None:
    """An annotation naming a class that does not exist: the record says so, nothing raises."""

    @attrs.frozen
    class Broken:
        ghost: "Missing"  # type: ignore[name-defined]  # noqa: F821

    schemas = ModelSchemas()
    schemas.schema_of(Broken)
    assert "cannot be read" in schemas.definitions["Broken"]["description"]


def test_schemas_are_valid_json_schema() -> None:
    """Every schema made checks against the JSON Schema draft-07 meta-schema."""
    schemas = ModelSchemas()
    made = [schemas.schema_of(kind) for kind in (Page[Node], Point, Plain, tuple[int, str], Size)]
    for schema in [*made, *schemas.definitions.values()]:
        jsonschema.Draft7Validator.check_schema(schema)
