"""Finding the consumer and periodic task classes to run in a package, a module, or a list."""

import importlib
import inspect
import pkgutil
from collections.abc import Iterable
from types import ModuleType
from typing import Any

from framework.core.consumer import BulkConsumer, is_runnable
from framework.core.periodic import PeriodicTask, is_runnable_task
from framework.errors import ConsumerDefinitionError, DiscoveryError

ConsumerSource = str | ModuleType | Iterable[type[BulkConsumer] | type[PeriodicTask]]


def discover(source: ConsumerSource) -> list[type[BulkConsumer]]:
    """Every concrete consumer of ``source``: see :func:`discover_all`."""
    return discover_all(source)[0]


def discover_all(
    source: ConsumerSource,
) -> tuple[list[type[BulkConsumer]], list[type[PeriodicTask]]]:
    """Every concrete consumer and periodic task defined in ``source``, in a stable order.

    A name or module yields the concrete ``BulkConsumer`` and ``PeriodicTask``
    subclasses defined in it and its submodules (not those it merely imports).
    A list is taken as is.
    """
    if isinstance(source, str):
        source = import_named(source)
    if isinstance(source, ModuleType):
        modules = walk(source)
        consumers = [cls for module in modules for cls in defined(module, BulkConsumer)]
        tasks = [cls for module in modules for cls in defined(module, PeriodicTask)]
        if not consumers and not tasks:
            raise DiscoveryError(
                f"no consumers found in {source.__name__!r}: define a BulkConsumer subclass "
                "with queues and an async handle() there (or a PeriodicTask)"
            )
        return consumers, tasks
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


def defined(module: ModuleType, base: type) -> list[Any]:
    """The runnable subclasses of ``base`` that ``module`` itself defines."""
    runnable: Any = is_runnable if base is BulkConsumer else is_runnable_task
    return [
        member
        for member in vars(module).values()
        if inspect.isclass(member)
        and issubclass(member, base)
        and member.__module__ == module.__name__
        and runnable(member)
    ]


def checked_list(
    classes: Iterable[type[BulkConsumer] | type[PeriodicTask]],
) -> tuple[list[type[BulkConsumer]], list[type[PeriodicTask]]]:
    found = list(dict.fromkeys(classes))
    consumers: list[type[BulkConsumer]] = []
    tasks: list[type[PeriodicTask]] = []
    for cls in found:
        if inspect.isclass(cls) and issubclass(cls, PeriodicTask):
            tasks.append(checked_runnable(cls, is_runnable_task(cls), "run()"))
        elif inspect.isclass(cls) and issubclass(cls, BulkConsumer):
            consumers.append(checked_runnable(cls, is_runnable(cls), "handle()"))
        else:
            raise DiscoveryError(f"{cls!r} is not a BulkConsumer or PeriodicTask subclass")
    if not found:
        raise DiscoveryError("no consumers given: pass at least one BulkConsumer subclass")
    return consumers, tasks


def checked_runnable(cls: Any, runnable: bool, method: str) -> Any:
    if not runnable:
        raise ConsumerDefinitionError(
            f"{cls.__qualname__} is abstract (declared abstract=True, or {method} "
            "not implemented) and cannot be run"
        )
    return cls
