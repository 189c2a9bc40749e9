"""Which field an attrs validator refused, so a misfit's path names it (``@ $.amount``).

attrs runs a class's validators inside ``__init__``, after cattrs has
structured every field: cattrs sees the class refuse, not a field, and its
error path stops at the object (``@ $``). Here each such error is traced back
to the field whose validator raised it, and marked the way cattrs marks a
field's own errors, so ``cattrs.transform_error`` writes the field's path.
"""

from collections.abc import Mapping, Sequence
from typing import Any

import attrs
import cattrs
from cattrs.errors import AttributeValidationNote, IterableValidationNote


def locate_validator_errors(
    error: BaseException, raw: Any, converter: cattrs.BaseConverter
) -> None:
    """Mark each validator error in ``error`` with its field; ``raw`` is the structured input."""
    if isinstance(error, cattrs.ClassValidationError):
        with_notes, without = error.group_exceptions()
        for inner, note in with_notes:
            locate_validator_errors(inner, field_value(raw, note.name), converter)
        for inner in without:
            field = failing_field(error.cl, raw, inner, converter)
            if field is not None:
                inner.add_note(
                    AttributeValidationNote(
                        f"validating @ attribute {field.name}", field.name, field.type
                    )
                )
    elif isinstance(error, cattrs.IterableValidationError):
        for inner, index_note in error.group_exceptions()[0]:
            locate_validator_errors(inner, item_value(raw, index_note), converter)


def field_value(raw: Any, name: str) -> Any:
    return raw.get(name) if isinstance(raw, Mapping) else None


def item_value(raw: Any, note: IterableValidationNote) -> Any:
    index = note.index
    if not isinstance(raw, Sequence) or isinstance(raw, str | bytes) or not isinstance(index, int):
        return None
    return raw[index] if 0 <= index < len(raw) else None


def failing_field(
    cls: type, raw: Any, error: BaseException, converter: cattrs.BaseConverter
) -> Any:
    """The attrs field whose validator raised ``error`` for ``raw``; None if none did."""
    if not attrs.has(cls):
        return None
    named = [arg for arg in error.args if isinstance(arg, attrs.Attribute)]
    if named:  # in_, instance_of, matches_re… pass their attribute along
        return named[0]
    try:
        with attrs.validators.disabled():
            instance = converter.structure(raw, cls)
    except Exception:
        return None
    for field in attrs.fields(cls):
        if field.validator is not None and refuses(field, instance, error):
            return field
    return None


def refuses(field: Any, instance: Any, error: BaseException) -> bool:
    """Whether ``field``'s validator raises the same error for ``instance`` again."""
    try:
        field.validator(instance, field, getattr(instance, field.name))
    except Exception as again:
        return type(again) is type(error) and again.args == error.args
    return False
