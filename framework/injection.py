"""Wiring consumers to the container, and catching what it cannot provide."""

import sys
import warnings
from collections.abc import Iterable
from types import ModuleType

from dependency_injector import containers

from framework.consumer import BulkConsumer
from framework.errors import ConsumerDefinitionError


def modules_of(classes: Iterable[type[BulkConsumer]]) -> list[ModuleType]:
    return list(dict.fromkeys(sys.modules[cls.__module__] for cls in classes))


def wire(container: containers.Container, classes: Iterable[type[BulkConsumer]]) -> None:
    """Wire the consumers' modules; a marker the container cannot resolve is an error."""
    modules = modules_of(classes)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        container.wire(modules=modules, warn_unresolved=True)
    unresolved = [str(warning.message) for warning in caught]
    if unresolved:
        container.unwire()
        names = ", ".join(module.__name__ for module in modules)
        raise ConsumerDefinitionError(
            f"{type(container).__name__} cannot provide what consumers in {names} ask for: "
            f"{'; '.join(unresolved)}. Add the provider to your container and pass it with "
            "--container (or Orchestrator(container=...))"
        )


def instantiate(cls: type[BulkConsumer]) -> BulkConsumer:
    try:
        return cls()
    except TypeError as error:
        raise ConsumerDefinitionError(
            f"{cls.__qualname__}.__init__ cannot be called by the framework ({error}): give "
            "every parameter a Provide[...] marker or a default"
        ) from None
