"""Does the container provide every service the consumers, tasks and hooks ask for?

Used by ``bulkworker check``: each marker is resolved against the container
without calling anything, so a missing provider is found before a start.
"""

from collections.abc import Iterable
from typing import Any

from framework.core.consumer import BulkConsumer
from framework.core.periodic import PeriodicTask
from framework.wiring.hooks import Hook
from framework.wiring.injection import Resolver


def check_injections(classes: list[type[BulkConsumer]], container: Any) -> None:
    """Raise ConsumerDefinitionError for any marker the container cannot resolve."""
    check_class_injections(classes, "handle", container)


def check_task_injections(tasks: Iterable[type[PeriodicTask]], container: Any) -> None:
    """The same for periodic tasks: their ``__init__``, attributes and ``run``."""
    check_class_injections(tasks, "run", container)


def check_class_injections(classes: Iterable[Any], method: str, container: Any) -> None:
    resolver = Resolver(container)
    for cls in classes:
        resolver.injections(cls.__init__, f"{cls.__name__}.__init__")
        resolver.attribute_injections(cls)
        resolver.injections(getattr(cls, method), f"{cls.__name__}.{method}")


def check_hook_injections(hooks: Iterable[Hook], container: Any) -> None:
    """The same for startup and shutdown hooks."""
    resolver = Resolver(container)
    for hook in hooks:
        resolver.injections(hook.function, f"hook {hook.name}")
