"""Consumer settings as people read them: ``bulkworker list`` columns and the docs' table."""

from collections.abc import Mapping
from typing import Any

from framework.core.actions import Actions
from framework.core.consumer_settings import SPECS, ConsumerSettings


def listed_cells(settings: ConsumerSettings) -> dict[str, str]:
    """The ``bulkworker list`` columns of one consumer, as text."""
    return {
        name: shown_value(getattr(settings, name), spec.unit)
        for name, spec in SPECS.items()
        if spec.listed
    }


def shown_value(value: Any, unit: str = "") -> str:
    if isinstance(value, Actions):
        return value.name
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    if isinstance(value, Mapping):
        return str(dict(value)) if value else "-"
    if isinstance(value, float):
        return f"{value:g}{unit}"
    return f"{value}{unit}"


def settings_table() -> str:
    """The Markdown table of consumer settings, as README and the reference show it."""
    rows = ["| attribute | default | meaning |", "| --- | --- | --- |"]
    rows += [f"| `{name}` | {s.shown_default} | {s.meaning} |" for name, s in SPECS.items()]
    return "\n".join(rows)
