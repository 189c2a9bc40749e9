"""Finding the consumer classes to run in a package, a module, or a list."""

import importlib
import inspect
import pkgutil
from collections.abc import Iterable
from types import ModuleType

from framework.core.consumer import BulkConsumer, is_runnable
from framework.errors import ConsumerDefinitionError, DiscoveryError

ConsumerSource = str | ModuleType | Iterable[type[BulkConsumer]]


def discover(source: ConsumerSource) -> list[type[BulkConsumer]]:
    """Every concrete consumer defined in ``source``, in a stable order.

    A name or module yields the concrete ``BulkConsumer`` subclasses defined in
    it and its submodules (not those it merely imports). A list is taken as is.
    """
    if isinstance(source, str):
        source = import_named(source)
    if isinstance(source, ModuleType):
        found = [cls for module in walk(source) for cls in defined_consumers(module)]
        if not found:
            raise DiscoveryError(
                f"no consumers found in {source.__name__!r}: define a BulkConsumer subclass "
                "with queues and an async handle() there"
            )
        return found
    return checked_list(source)


def import_named(name: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        if error.name and name.startswith(error.name):
            raise DiscoveryError(
                f"cannot import consumers from {name!r}: no such module on sys.path"
            ) from None
        raise


def walk(package: ModuleType) -> list[ModuleType]:
    modules = [package]
    if hasattr(package, "__path__"):
        prefix = package.__name__ + "."
        for info in pkgutil.walk_packages(package.__path__, prefix):
            modules.append(importlib.import_module(info.name))
    return modules


def defined_consumers(module: ModuleType) -> list[type[BulkConsumer]]:
    return [
        member
        for member in vars(module).values()
        if inspect.isclass(member)
        and issubclass(member, BulkConsumer)
        and member.__module__ == module.__name__
        and is_runnable(member)
    ]


def checked_list(classes: Iterable[type[BulkConsumer]]) -> list[type[BulkConsumer]]:
    found = list(dict.fromkeys(classes))
    for cls in found:
        if not (inspect.isclass(cls) and issubclass(cls, BulkConsumer)):
            raise DiscoveryError(f"{cls!r} is not a BulkConsumer subclass")
        if not is_runnable(cls):
            raise ConsumerDefinitionError(
                f"{cls.__qualname__} is abstract (declared abstract=True, or handle() "
                "not implemented) and cannot be run"
            )
    if not found:
        raise DiscoveryError("no consumers given: pass at least one BulkConsumer subclass")
    return found
